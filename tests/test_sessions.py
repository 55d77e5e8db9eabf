"""Server-side sessions in PostgreSQL (the default) and in Redis (when REDIS_URL is set)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import redis

from app.account import live_sessions
from app.extensions import db
from app.models import Role
from app.sessions import REDIS_PREFIX, RedisStore, revoke_all_sessions, user_sessions
from app.users import get_user
from tests.conftest import AuthActions

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["postgres", "redis"])
def store_app(request, make_app, database_url):
    if request.param == "postgres":
        return make_app()
    redis.Redis.from_url(REDIS_URL).flushdb()
    return make_app(REDIS_URL=REDIS_URL)


def signed_in(app, email: str, role: Role = Role.VIEWER) -> tuple[AuthActions, object]:
    client = app.test_client()
    actions = AuthActions(app, client)
    actions.create(email, role)
    assert actions.login(email).status_code == 302
    return actions, client


def sessions_of(app, email: str):
    with app.app_context():
        found = live_sessions(get_user(email))
        db.session.remove()
    return found


def test_a_session_is_listed_and_ends_when_revoked(store_app):
    _, first = signed_in(store_app, "ann@example.com")
    second = store_app.test_client()
    assert AuthActions(store_app, second).login("ann@example.com").status_code == 302
    found = sessions_of(store_app, "ann@example.com")
    assert len(found) == 2 and all(record.ip == "127.0.0.1" for record in found)
    assert first.get("/explore").status_code == 200
    with store_app.app_context():
        revoke_all_sessions(get_user("ann@example.com").id)
        db.session.commit()
        db.session.remove()
    assert first.get("/explore").status_code == 302  # back to the sign-in page
    assert second.get("/api/v1/me").status_code == 401
    assert sessions_of(store_app, "ann@example.com") == []


def test_signing_out_ends_only_that_session(store_app):
    actions, client = signed_in(store_app, "bo@example.com")
    other = store_app.test_client()
    AuthActions(store_app, other).login("bo@example.com")
    actions.logout()
    assert client.get("/api/v1/me").status_code == 401
    assert other.get("/api/v1/me").status_code == 200
    assert len(sessions_of(store_app, "bo@example.com")) == 1


def test_an_idle_session_ends(store_app):
    _, client = signed_in(store_app, "cy@example.com")
    (record,) = sessions_of(store_app, "cy@example.com")
    idle = store_app.config["INSIGHTWAVE"].session_idle_minutes
    stale = datetime.now(UTC) - timedelta(minutes=idle + 1)
    with store_app.app_context():
        from app.sessions import _store

        _store().touch(record.id, stale)
        db.session.commit()
        assert user_sessions(get_user("cy@example.com").id) == []
        db.session.remove()
    assert client.get("/api/v1/me").status_code == 401


def test_web_processes_share_sessions_through_redis(make_app, database_url):
    redis.Redis.from_url(REDIS_URL).flushdb()
    first, second = make_app(REDIS_URL=REDIS_URL), make_app(REDIS_URL=REDIS_URL)
    _, client = signed_in(first, "di@example.com")
    cookie = client.get_cookie("insightwave_session")
    assert cookie is not None
    elsewhere = second.test_client()
    elsewhere.set_cookie(cookie.key, cookie.value)
    assert elsewhere.get("/api/v1/me").get_json()["email"] == "di@example.com"


def test_a_redis_session_expires_with_its_lifetime(make_app, database_url):
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    app = make_app(REDIS_URL=REDIS_URL, INSIGHTWAVE_SESSION_DAYS="2")
    signed_in(app, "ed@example.com")
    (key,) = connection.keys(REDIS_PREFIX + "*")
    assert 2 * 86400 - 60 < connection.ttl(key) <= 2 * 86400
    record = RedisStore(connection).get(key.decode()[len(REDIS_PREFIX) :])
    assert record is not None and record.expires_at - record.created_at == timedelta(days=2)
