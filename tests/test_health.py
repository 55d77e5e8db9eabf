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


def test_an_idle_connection_the_server_closed_is_replaced_unseen(
    make_app, database_url, monkeypatch
):
    app = make_app()
    _kill_the_pooled_connection(app, database_url)
    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)  # every pooled connection is "idle"
    response = app.test_client().get("/healthz")
    assert response.status_code == 200, response.get_json()


def test_a_busy_connection_the_server_closed_fails_one_request_then_heals(make_app, database_url):
    # A connection in steady use is not tested before use (no round trip per request): the
    # request that meets it dead answers 503, and the pool then replaces its connections.
    app = make_app()
    _kill_the_pooled_connection(app, database_url)
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz").status_code == 200
