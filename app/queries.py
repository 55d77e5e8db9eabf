"""Typed read queries for pages; pages never hold SQL themselves."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select, text

from app.event_queries import NUMERIC_TYPES
from app.extensions import db
from app.models import AuditEntry, Dataset, User


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


def numeric_fields(dataset: Dataset) -> list[str]:
    """Return the dataset's columns that can be plotted as numbers, in schema order."""
    return [column["name"] for column in dataset.columns if column["type"] in NUMERIC_TYPES]


def recent_points(dataset: Dataset, fields: list[str], limit: int) -> dict[str, Any]:
    """Return the newest ``limit`` events of ``dataset`` (by id) in time order, column-wise.

    The shape is that of the hub's ``points`` message (``ids``, ``ts``, ``values``), so the
    live page draws its first window and its pushed points the same way.
    """
    rows = db.session.execute(
        text(
            "SELECT id, ts, payload FROM ("
            " SELECT id, ts, payload FROM events WHERE dataset_id = :dataset"
            " ORDER BY id DESC LIMIT :limit) AS newest ORDER BY ts, id"
        ),
        {"dataset": dataset.id, "limit": limit},
    ).all()
    return {
        "ids": [row.id for row in rows],
        "ts": [row.ts.astimezone(UTC).isoformat(timespec="milliseconds") for row in rows],
        "values": {field: [row.payload.get(field) for row in rows] for field in fields},
        "last_id": max(row.id for row in rows) if rows else _last_id(dataset),
    }


def _last_id(dataset: Dataset) -> int:
    found = db.session.execute(
        text("SELECT coalesce(max(id), 0) FROM events WHERE dataset_id = :dataset"),
        {"dataset": dataset.id},
    ).scalar()
    return int(found or 0)
