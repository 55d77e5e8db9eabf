"""The audit log: one row per thing someone did, in the transaction of the change itself."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import has_request_context, request

from app.extensions import db
from app.models import AuditEntry, User
from etl.audit import Actor, record_audit


def actor_of(user: User | None) -> Actor:
    """Return who ``user`` is, with the address and browser of the current request if any."""
    ip = user_agent = None
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or "")[:512] or None
    return Actor(
        id=user.id if user is not None else None,
        email=user.email if user is not None else None,
        ip=ip,
        user_agent=user_agent,
    )


def record(action: str, actor: User | None, target: str | None = None, **details: Any) -> None:
    """Add an audit row to the current transaction; the caller commits it with its change."""
    who = actor_of(actor)
    entry = AuditEntry(
        action=action,
        actor_id=who.id,
        actor_email=who.email,
        target=target,
        ip=who.ip,
        user_agent=who.user_agent,
        details=details,
    )
    db.session.add(entry)


def record_on(
    conn: psycopg.Connection[Any],
    action: str,
    actor: User | None,
    target: str | None = None,
    **details: Any,
) -> None:
    """Add an audit row to ``conn``'s open transaction, for changes made through psycopg."""
    record_audit(conn, action, actor_of(actor), target, details)


def record_export(what: str, actor: User, target: str | None = None, **details: Any) -> None:
    """Audit an export as ``export.<what>`` and commit it: an export changes nothing else."""
    record(f"export.{what}", actor, target, **details)
    db.session.commit()
