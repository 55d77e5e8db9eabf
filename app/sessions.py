"""Server-side sign-in sessions: the cookie holds a random token, the store its SHA-256.

The store is PostgreSQL (table ``user_sessions``), or Redis when ``REDIS_URL`` is set, so
that several web processes share them without a database write per request. Either way a
user lists and ends their own sessions and an admin ends all of someone's at once.

A session ends at the first of: sign-out or revocation, its absolute expiry (``expires_at``,
``INSIGHTWAVE_SESSION_DAYS`` after sign-in) and its idle limit (``last_seen_at`` older than
``INSIGHTWAVE_SESSION_IDLE_MINUTES``). The user must still be active.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from flask import current_app, request
from sqlalchemy import select, update

from app.extensions import db
from app.models import User, UserSession

_TOUCH_EVERY = timedelta(minutes=1)
REDIS_PREFIX = "insightwave:session:"
REDIS_USER_PREFIX = "insightwave:user-sessions:"


@dataclass
class SessionRecord:
    id: str  # the token's SHA-256, hex
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None


class SessionStore(Protocol):
    def add(self, record: SessionRecord) -> None: ...
    def get(self, digest: str) -> SessionRecord | None: ...
    def touch(self, digest: str, moment: datetime) -> None: ...
    def of_user(self, user_id: int) -> list[SessionRecord]: ...
    def revoke(self, digests: list[str]) -> None: ...
    def revoke_user(self, user_id: int) -> None: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(user: User, lifetime: timedelta) -> str:
    """Start a session for ``user`` and return its token (PostgreSQL: in this transaction)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    agent = (request.user_agent.string or "")[:512] or None
    record = SessionRecord(
        _digest(token), user.id, now, now, now + lifetime, request.remote_addr, agent
    )
    _store().add(record)
    user.session_id = token
    return token


def load_session(token: str) -> User | None:
    """Return the user of a live session (not revoked, not expired, user active), or None."""
    if not token or len(token) > 128:
        return None
    found = _live_session(_digest(token))
    if found is None:
        return None
    record, user = found
    now = datetime.now(UTC)
    if now - record.last_seen_at > _TOUCH_EVERY:
        _store().touch(record.id, now)
        db.session.commit()
    user.session_id = token
    return user


def session_holder(digest: str) -> User | None:
    """Return the active user of the live session stored as ``digest`` (its SHA-256), or None."""
    found = _live_session(digest)
    return found[1] if found is not None else None


def user_sessions(user_id: int) -> list[SessionRecord]:
    """Return a user's live sessions, the most recently seen first."""
    now = datetime.now(UTC)
    live = [record for record in _store().of_user(user_id) if _is_live(record, now)]
    return sorted(live, key=lambda record: (record.last_seen_at, record.created_at), reverse=True)


def revoke_session(token: str) -> None:
    """End one session (PostgreSQL: in the current transaction)."""
    _store().revoke([_digest(token)])


def revoke_sessions(digests: list[str]) -> None:
    _store().revoke(digests)


def revoke_all_sessions(user_id: int) -> None:
    """End every session of a user (PostgreSQL: in the current transaction)."""
    _store().revoke_user(user_id)


def _live_session(digest: str) -> tuple[SessionRecord, User] | None:
    record = _store().get(digest)
    if record is None or not _is_live(record, datetime.now(UTC)):
        return None
    user = db.session.get(User, record.user_id)
    return (record, user) if user is not None and user.active else None


def _is_live(record: SessionRecord, now: datetime) -> bool:
    idle = timedelta(minutes=current_app.config["INSIGHTWAVE"].session_idle_minutes)
    return record.expires_at > now and record.last_seen_at > now - idle


def _store() -> SessionStore:
    stores = current_app.extensions.setdefault("insightwave_sessions", {})
    if "store" not in stores:
        url = current_app.config["INSIGHTWAVE"].redis_url
        stores["store"] = RedisStore(redis.Redis.from_url(url)) if url else PostgresStore()
    store: SessionStore = stores["store"]
    return store


class PostgresStore:
    """Sessions as rows of ``user_sessions``; a revoked one keeps its row (``revoked_at``)."""

    def add(self, record: SessionRecord) -> None:
        db.session.add(
            UserSession(
                id=record.id,
                user_id=record.user_id,
                created_at=record.created_at,
                last_seen_at=record.last_seen_at,
                expires_at=record.expires_at,
                ip=record.ip,
                user_agent=record.user_agent,
            )
        )

    def get(self, digest: str) -> SessionRecord | None:
        row = db.session.scalar(
            select(UserSession).where(UserSession.id == digest, UserSession.revoked_at.is_(None))
        )
        return _record(row) if row is not None else None

    def touch(self, digest: str, moment: datetime) -> None:
        db.session.execute(
            update(UserSession).where(UserSession.id == digest).values(last_seen_at=moment)
        )

    def of_user(self, user_id: int) -> list[SessionRecord]:
        rows = db.session.scalars(
            select(UserSession).where(
                UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
            )
        )
        return [_record(row) for row in rows]

    def revoke(self, digests: list[str]) -> None:
        db.session.execute(
            update(UserSession)
            .where(UserSession.id.in_(digests), UserSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )

    def revoke_user(self, user_id: int) -> None:
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )


def _record(row: UserSession) -> SessionRecord:
    return SessionRecord(
        row.id,
        row.user_id,
        row.created_at,
        row.last_seen_at,
        row.expires_at,
        row.ip,
        row.user_agent,
    )


class RedisStore:
    """Sessions as Redis hashes that expire with the session, and a set of them per user.

    Writes are immediate (outside the SQL transaction); a revoked session is deleted.
    """

    FIELDS = ("user_id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent")

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def add(self, record: SessionRecord) -> None:
        key = REDIS_PREFIX + record.id
        values: dict[Any, Any] = {
            "user_id": str(record.user_id),
            "created_at": record.created_at.isoformat(),
            "last_seen_at": record.last_seen_at.isoformat(),
            "expires_at": record.expires_at.isoformat(),
            "ip": record.ip or "",
            "user_agent": record.user_agent or "",
        }
        with self.client.pipeline() as pipe:
            pipe.hset(key, mapping=values)
            pipe.expireat(key, record.expires_at)
            pipe.sadd(REDIS_USER_PREFIX + str(record.user_id), record.id)
            pipe.execute()

    def get(self, digest: str) -> SessionRecord | None:
        values: dict[bytes, bytes] = self.client.hgetall(REDIS_PREFIX + digest)  # type: ignore[assignment]
        return self._record(digest, values)

    def touch(self, digest: str, moment: datetime) -> None:
        key = REDIS_PREFIX + digest
        if self.client.exists(key):
            self.client.hset(key, "last_seen_at", moment.isoformat())

    def of_user(self, user_id: int) -> list[SessionRecord]:
        members: set[bytes] = self.client.smembers(REDIS_USER_PREFIX + str(user_id))  # type: ignore[assignment]
        found = []
        for member in members:
            record = self.get(member.decode())
            if record is None:  # expired: forget it
                self.client.srem(REDIS_USER_PREFIX + str(user_id), member)
            else:
                found.append(record)
        return found

    def revoke(self, digests: list[str]) -> None:
        for digest in digests:
            record = self.get(digest)
            self.client.delete(REDIS_PREFIX + digest)
            if record is not None:
                self.client.srem(REDIS_USER_PREFIX + str(record.user_id), digest)

    def revoke_user(self, user_id: int) -> None:
        members: set[bytes] = self.client.smembers(REDIS_USER_PREFIX + str(user_id))  # type: ignore[assignment]
        keys: list[Any] = [REDIS_PREFIX + member.decode() for member in members]
        self.client.delete(*keys, REDIS_USER_PREFIX + str(user_id))

    @staticmethod
    def _record(digest: str, values: dict[bytes, bytes]) -> SessionRecord | None:
        if not values:
            return None
        text = {key.decode(): value.decode() for key, value in values.items()}
        return SessionRecord(
            id=digest,
            user_id=int(text["user_id"]),
            created_at=datetime.fromisoformat(text["created_at"]),
            last_seen_at=datetime.fromisoformat(text["last_seen_at"]),
            expires_at=datetime.fromisoformat(text["expires_at"]),
            ip=text.get("ip") or None,
            user_agent=text.get("user_agent") or None,
        )
