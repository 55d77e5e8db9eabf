"""/healthz reports the database's state."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

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


def _kill_the_pooled_connection(app, database_url):
    """Close, from the server's side, the one connection ``app``'s pool holds."""
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool, alive as far as the pool knows
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


def test_a_connection_the_server_closed_is_replaced_before_use(make_app, database_url):
    # No ping (the connection was in use a moment ago): the closed socket alone tells.
    app = make_app()
    _kill_the_pooled_connection(app, database_url)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200, response.get_json()


def test_an_idle_connection_that_does_not_answer_is_replaced(make_app, database_url, monkeypatch):
    # A connection idle past IDLE_BEFORE_PING is pinged: here the socket shows nothing (as
    # after a silent network fault) and only the ping finds the server gone.
    app = make_app()
    _kill_the_pooled_connection(app, database_url)
    monkeypatch.setattr(database, "closed_by_server", lambda connection: False)
    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200, response.get_json()


def test_a_lost_connection_answers_503_then_the_pool_heals(make_app, database_url, monkeypatch):
    # Neither check catches it (a connection lost between checkout and query, say): that
    # request answers 503 with Retry-After, not 500, and the next finds new connections.
    app = make_app()
    _kill_the_pooled_connection(app, database_url)
    monkeypatch.setattr(database, "closed_by_server", lambda connection: False)
    client = app.test_client()
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer iw_" + "x" * 43})
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200
