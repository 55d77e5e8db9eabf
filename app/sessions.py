"""Server-side sign-in sessions: the cookie holds a random token, PostgreSQL its hash.

A session ends at the first of: sign-out or revocation, its absolute expiry (``expires_at``,
``INSIGHTWAVE_SESSION_DAYS`` after sign-in) and its idle limit (``last_seen_at`` older than
``INSIGHTWAVE_SESSION_IDLE_MINUTES``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, request
from sqlalchemy import select, update

from app.extensions import db
from app.models import User, UserSession

_TOUCH_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(user: User, lifetime: timedelta) -> str:
    """Start a session for ``user`` in the current transaction and return its token."""
    token = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(
            id=_digest(token),
            user_id=user.id,
            expires_at=datetime.now(UTC) + lifetime,
            ip=request.remote_addr,
            user_agent=(request.user_agent.string or "")[:512] or None,
        )
    )
    user.session_id = token
    return token


def load_session(token: str) -> User | None:
    """Return the user of a live session (not revoked, not expired, user active), or None."""
    if not token or len(token) > 128:
        return None
    row = _live_session(_digest(token))
    if row is None:
        return None
    user_session, user = row
    now = datetime.now(UTC)
    if now - user_session.last_seen_at > _TOUCH_EVERY:
        user_session.last_seen_at = now
        db.session.commit()
    user.session_id = token
    return user


def session_holder(digest: str) -> User | None:
    """Return the active user of the live session stored as ``digest`` (its SHA-256), or None."""
    row = _live_session(digest)
    return row[1] if row is not None else None


def _live_session(digest: str) -> tuple[UserSession, User] | None:
    now = datetime.now(UTC)
    idle = timedelta(minutes=current_app.config["INSIGHTWAVE"].session_idle_minutes)
    row = db.session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(
            UserSession.id == digest,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
            UserSession.last_seen_at > now - idle,
            User.active,
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def revoke_session(token: str) -> None:
    """End one session (in the current transaction)."""
    db.session.execute(
        update(UserSession)
        .where(UserSession.id == _digest(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


def revoke_all_sessions(user_id: int) -> None:
    """End every session of a user (in the current transaction)."""
    db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
