"""Typed read queries for pages; pages never hold SQL themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, User


def user_rows() -> list[dict[str, Any]]:
    """Return every user as a table row, by email."""
    users = db.session.scalars(select(User).order_by(User.email))
    return [
        {
            "email": user.email,
            "role": user.role,
            "active": user.active,
            "locked_until": user.locked_until.isoformat() if user.locked_until else None,
            "created_at": user.created_at.isoformat(timespec="seconds"),
            "last_login_at": user.last_login_at.isoformat(timespec="seconds")
            if user.last_login_at
            else None,
        }
        for user in users
    ]


def recent_audit_rows(limit: int = 200) -> list[dict[str, Any]]:
    """Return the newest audit entries as table rows."""
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [
        {
            "at": entry.at.isoformat(timespec="seconds"),
            "actor": entry.actor_email,
            "action": entry.action,
            "target": entry.target,
            "ip": entry.ip,
            "details": entry.details,
        }
        for entry in entries
    ]
