"""The audit log: one row per thing someone did, in the transaction of the change itself."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from app.extensions import db
from app.models import AuditEntry, User


def record(action: str, actor: User | None, target: str | None = None, **details: Any) -> None:
    """Add an audit row to the current transaction; the caller commits it with its change."""
    entry = AuditEntry(
        action=action,
        actor_id=actor.id if actor is not None else None,
        actor_email=actor.email if actor is not None else None,
        target=target,
        details=details,
    )
    if has_request_context():
        entry.ip = request.remote_addr
        entry.user_agent = (request.user_agent.string or "")[:512] or None
    db.session.add(entry)
