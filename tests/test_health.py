"""/healthz reports the database's state."""

from __future__ import annotations

import os
import resource
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

from app import database
from app.database import libpq_url
from app.extensions import db


def test_healthz_is_ok_with_the_database_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(make_app):
    # Port 9 (discard) has no PostgreSQL behind it: the connection is refused.
    app = make_app(DATABASE_URL="postgresql://postgres@127.0.0.1:9/nowhere")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}


@pytest.fixture
def app_with_a_dead_connection(make_app, database_url):
    """An app whose pool holds one connection the server has closed from its side."""
    app = make_app()
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool, alive as far as the pool knows
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    return app


@pytest.fixture
def silent_socket(monkeypatch):
    """The socket shows nothing, as after a silent network fault."""
    monkeypatch.setattr(database, "closed_by_server", lambda connection: False)


def test_a_connection_the_server_closed_is_replaced_before_use(app_with_a_dead_connection):
    # No ping (the connection was in use a moment ago): the closed socket alone tells.
    response = app_with_a_dead_connection.test_client().get("/healthz")
    assert response.status_code == 200, response.get_json()


def test_an_idle_connection_that_does_not_answer_is_replaced(
    app_with_a_dead_connection, silent_socket, monkeypatch
):
    # A connection idle past IDLE_BEFORE_PING is pinged, and only the ping finds it gone.
    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)
    response = app_with_a_dead_connection.test_client().get("/healthz")
    assert response.status_code == 200, response.get_json()


def test_a_lost_connection_answers_503_then_the_pool_heals(
    app_with_a_dead_connection, silent_socket
):
    # Neither check catches it (a connection lost between checkout and query, say): that
    # request answers 503 with Retry-After, not 500, and the next finds new connections.
    client = app_with_a_dead_connection.test_client()
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer iw_" + "x" * 43})
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


class _OnDescriptor:
    """A psycopg connection seen through another descriptor of its socket."""

    def __init__(self, connection: psycopg.Connection, descriptor: int) -> None:
        self.closed = connection.closed
        self.descriptor = descriptor

    def fileno(self) -> int:
        return self.descriptor


def test_the_socket_check_reads_descriptors_past_1023(database_url):
    # A hub with a thousand WebSockets has its database sockets past select()'s limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1600:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1600, hard), hard))
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        high = os.dup2(conn.fileno(), 1500)
        try:
            assert not database.closed_by_server(_OnDescriptor(conn, high))  # idle and alive
            with psycopg.connect(libpq_url(database_url), autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            deadline = time.monotonic() + 5
            while not database.closed_by_server(_OnDescriptor(conn, high)):
                assert time.monotonic() < deadline, "the server's goodbye never showed"
                time.sleep(0.05)
        finally:
            os.close(high)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_failed_statement_run_beside_the_orm_raises_as_the_orm_would(app):
    # The API's read statements run on the session's psycopg connection; their errors must
    # still reach the error handlers as SQLAlchemy's, the connection kept when it is fine.
    with app.test_request_context("/api/v1/datasets"):
        with pytest.raises(DataError) as raised:
            database.run_sql("SELECT 1 / %(zero)s", {"zero": 0})
        assert isinstance(raised.value.orig, psycopg.errors.DivisionByZero)
        assert not raised.value.connection_invalidated
        db.session.rollback()
        assert database.run_sql("SELECT %(one)s", {"one": 1}) == [(1,)]
        db.session.remove()
