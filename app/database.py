"""Direct psycopg connections, for COPY and LISTEN/NOTIFY (the ORM covers the rest)."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import current_app
from sqlalchemy.engine import make_url


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (postgresql+psycopg://...) into one libpq accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str | None = None, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """Open a psycopg connection to ``url`` (default: the current app's database)."""
    target = url or current_app.config["SQLALCHEMY_DATABASE_URI"]
    return psycopg.connect(libpq_url(target), autocommit=autocommit, connect_timeout=5)
