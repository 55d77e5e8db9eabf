"""Direct psycopg connections, for COPY and LISTEN/NOTIFY (the ORM covers the rest)."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import current_app

from etl.connection import connect as connect_url
from etl.connection import libpq_url

__all__ = ["connect", "libpq_url"]


def connect(url: str | None = None) -> psycopg.Connection[Any]:
    """Open an autocommit connection to ``url`` (default: the current app's database)."""
    return connect_url(url or current_app.config["SQLALCHEMY_DATABASE_URI"], "insightwave-web")
