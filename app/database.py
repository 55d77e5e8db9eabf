"""Database access beside the ORM: direct psycopg connections (COPY, LISTEN/NOTIFY), the pooled
connections' checks, and the few statements every API read runs on the session's own connection."""

from __future__ import annotations

import functools
import select
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from flask import current_app, request
from psycopg.rows import RowFactory
from sqlalchemy import ClauseElement, Engine, create_engine, event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.pool import ConnectionPoolEntry

from app.extensions import db
from etl.connection import connect as connect_url
from etl.connection import libpq_url

__all__ = [
    "connect",
    "libpq_url",
    "attached",
    "check_before_use",
    "run",
    "run_sql",
    "reads_from_replica",
    "reads_without_transaction",
]

Model = TypeVar("Model", bound=Any)
READ_ENGINE = "insightwave_read_engine"  # app.extensions key of the READ_DATABASE_URL engine
# SQLAlchemy's pool_pre_ping tests every checkout with a round trip: a tenth of the cheapest
# API request's cost under load (BENCHMARKS.md, "Load"). Instead, a pooled connection is
# looked at without a round trip: a server that restarted or ended the session has sent its
# goodbye and closed the socket, which then reads as ready. Only a connection idle this long
# is also pinged (a silent network fault shows nothing on the socket).
IDLE_BEFORE_PING = 10.0


def check_before_use(engine: Engine) -> None:
    """Check ``engine``'s pooled connections before use: closed by the server, or idle long."""

    @event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None:
            return  # new
        if closed_by_server(dbapi_connection):
            raise DisconnectionError("the server closed the pooled connection")
        if time.monotonic() - since < IDLE_BEFORE_PING:
            return  # in steady use
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool opens another one
        if not alive:
            raise DisconnectionError("the pooled connection did not answer")


def reads_without_transaction(paths: tuple[str, ...]) -> Callable[[], None]:
    """A before-request hook: GET and HEAD requests under ``paths`` run in autocommit.

    A transaction costs two round trips of its own (psycopg sends BEGIN before the first
    query, and the pool rolls back when the session ends): for a read API request that is
    half its database work. Each statement then stands alone; the one write such a request
    makes (an API token's last-used time) is a single UPDATE. psycopg's autocommit is a
    client-side switch, reset when the connection goes back to the pool.
    """

    def autocommit_reads() -> None:
        if request.method in {"GET", "HEAD"} and request.path.startswith(paths):
            db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    return autocommit_reads


def run_sql(
    sql: str, params: Mapping[str, Any], row_factory: RowFactory[Any] | None = None
) -> list[Any]:
    """Run ``sql`` (psycopg's ``%(name)s`` parameters) on ``db.session``'s own connection.

    For the statements every API read makes (its bearer token, the dataset's visibility, the
    events): sent through the ORM, each cost about three times its database work in Python
    (167 against 59 us for the token lookup, BENCHMARKS.md "Load"). The session's pending
    changes are flushed first, as its autoflush would, and the statement takes part in the
    session's transaction. A failure is raised as SQLAlchemy raises it, and a connection
    found lost is invalidated, so the pool replaces it and the error handlers answer 503.
    """
    db.session.flush()
    connection = db.session.connection()
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    try:
        cursor = driver.cursor(row_factory=row_factory) if row_factory else driver.cursor()
        return cursor.execute(sql, params).fetchall()
    except psycopg.Error as exc:
        lost = connection.dialect.is_disconnect(exc, connection.connection, None)  # type: ignore[arg-type]
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            dict(params),
            exc,
            psycopg.Error,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc


@functools.lru_cache(maxsize=1024)
def _compiled(statement: ClauseElement) -> tuple[str, dict[str, Any]]:
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), dict(compiled.params)


_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


def run(
    statement: ClauseElement,
    params: Mapping[str, Any],
    row_factory: RowFactory[Any] | None = None,
) -> list[Any]:
    """Run a statement built once (bound parameters by name) with ``run_sql``.

    It is compiled once; the values it holds itself (literals in its conditions) are sent
    with ``params``.
    """
    sql, values = _compiled(statement)
    return run_sql(sql, values | dict(params), row_factory)


def attached(model: type[Model], row: Sequence[Any]) -> Model:
    """The ``model`` instance of a row of its table's columns, in table order, read by ``run``,
    in ``db.session`` as if loaded there.

    An instance of the same row already in the session is returned instead, as the ORM does.
    """
    values = dict(zip(model.__table__.columns.keys(), row, strict=True))
    mapper = model.__mapper__
    key = mapper.identity_key_from_primary_key([values[c.key] for c in mapper.primary_key])
    existing: Model | None = db.session.identity_map.get(key)
    if existing is not None:
        return existing
    instance: Model = model(**values)
    make_transient_to_detached(instance)  # persistent with these values, not new
    db.session.add(instance)
    return instance


def closed_by_server(connection: psycopg.Connection[Any]) -> bool:
    """True when an idle connection has something to read: only the server's goodbye can be."""
    if connection.closed:
        return True
    # poll, not select: select refuses descriptors past 1023, and a hub serving a thousand
    # WebSockets has its database sockets there.
    poller = select.poll()
    try:
        poller.register(connection.fileno(), select.POLLIN)
    except (OSError, ValueError):
        return True
    return bool(poller.poll(0))


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
        engine = create_engine(url)
        check_before_use(engine)
        current_app.extensions[READ_ENGINE] = engine
    return engine
