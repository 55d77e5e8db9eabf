"""Audit rows written on a psycopg connection, inside the transaction of the change they record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Actor:
    """Who did something: a user id (None for the command line) and where they came from."""

    id: int | None
    email: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def record_audit(
    conn: psycopg.Connection[Any],
    action: str,
    actor: Actor | None,
    target: str | None,
    details: dict[str, Any],
) -> None:
    """Add an audit row to ``conn``'s open transaction.

    :raises RuntimeError: on an autocommit connection outside a transaction, where the row
        would commit on its own whether or not the change it records does.
    """
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        raise RuntimeError("record_audit runs inside the caller's transaction")
    who = actor or Actor(id=None)
    conn.execute(
        "INSERT INTO audit_log (action, actor_id, actor_email, target, ip, user_agent, details) "
        "VALUES (%s, %s, coalesce(%s, (SELECT email FROM users WHERE id = %s)), %s, %s, %s, %s)",
        (action, who.id, who.email, who.id, target, who.ip, who.user_agent, Jsonb(details)),
    )
