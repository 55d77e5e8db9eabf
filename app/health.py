"""Health checks: ``/healthz`` (is the process up and its database reachable?) and ``/readyz``.

``/readyz`` says whether this process should get traffic: the database answers, its schema is
at the newest migration, and the live hub running in this process (``insightwave serve``)
listens. When not, it answers 503 and names each check that failed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from alembic.runtime.migration import MigrationContext
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.migrate import head_revision

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")


@bp.get("/readyz")
def readyz() -> Any:
    checks = {"database": "ok", "migrations": _migrations()}
    if checks["migrations"] == "unreachable":
        checks["database"] = checks["migrations"] = "unreachable"
    hub = current_app.extensions.get("live_hub")
    if hub is not None:
        checks["hub"] = _hub(hub)
    not_ready = sorted(name for name, state in checks.items() if state != "ok")
    body: dict[str, object] = {"status": "not_ready" if not_ready else "ready", "checks": checks}
    if not_ready:
        body["not_ready"] = not_ready
    return jsonify(body), 503 if not_ready else 200


def _migrations() -> str:
    # Its own connection: a failure here must not leave db.session's transaction aborted.
    try:
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError:
        return "unreachable"
    head = _head()
    if current == head:
        return "ok"
    if current is None:
        return "not migrated: run insightwave db upgrade"
    return f"at {current}, newest is {head}: run insightwave db upgrade"


@cache
def _head() -> str | None:
    return head_revision()  # the migration files do not change while the process runs


def _hub(hub: Any) -> str:
    if hub.bound_port is None:
        return "not listening for clients"
    if not hub.stats["listening"]:
        return "lost its LISTEN connection to the database"
    return "ok"
