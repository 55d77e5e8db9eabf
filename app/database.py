"""Direct psycopg connections, for COPY and LISTEN/NOTIFY (the ORM covers the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import current_app
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from app.extensions import db
from etl.connection import connect as connect_url
from etl.connection import libpq_url

__all__ = ["connect", "libpq_url", "reads_from_replica"]

READ_ENGINE = "insightwave_read_engine"  # app.extensions key of the READ_DATABASE_URL engine


def connect(url: str | None = None) -> psycopg.Connection[Any]:
    """Open an autocommit connection to ``url`` (default: the current app's database)."""
    return connect_url(url or current_app.config["SQLALCHEMY_DATABASE_URI"], "insightwave-web")


@contextmanager
def reads_from_replica() -> Iterator[None]:
    """Send ``db.session`` to READ_DATABASE_URL inside the block (nothing changes when unset).

    Only for reads: the block's session is never committed.
    """
    engine = _read_engine()
    if engine is None:
        yield
        return
    primary = db.session()
    # A plain Session: Flask-SQLAlchemy's own picks the app's engine whatever it is bound to.
    replica = Session(bind=engine, autoflush=False)
    db.session.registry.set(replica)  # type: ignore[arg-type]
    try:
        yield
    finally:
        replica.close()
        db.session.registry.set(primary)


def _read_engine() -> Engine | None:
    url = current_app.config["INSIGHTWAVE"].read_database_url
    if url is None:
        return None
    engine: Engine | None = current_app.extensions.get(READ_ENGINE)
    if engine is None:
        engine = create_engine(url, pool_pre_ping=True)
        current_app.extensions[READ_ENGINE] = engine
    return engine
