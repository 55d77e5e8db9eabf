"""API tokens: bearer secrets for programs, shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update

from app import audit
from app.database import attached, run
from app.extensions import db
from app.models import ApiToken, User

TOKEN_PREFIX = "iw_"  # noqa: S105 (a visible prefix, not a secret)
_TOUCH_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    user: User, name: str, expires_at: datetime | None = None, actor: User | None = None
) -> str:
    """Create a token for ``user`` and return it; only its hash is kept.

    ``actor`` is who asked, for the audit log: the user on the tokens page, None on the
    command line (an operator, not the token's owner).
    """
    name = name.strip() or "token"
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            user_id=user.id,
            name=name[:100],
            token_hash=_digest(token),
            prefix=token[:10],
            expires_at=expires_at,
        )
    )
    audit.record("token.create", actor, user.email, name=name)
    db.session.commit()
    return token


def user_for_token(token: str) -> User | None:
    """Return the active user a live token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = _live_token(_digest(token))
    if row is None:
        return None
    user, token_id, last_used_at = row
    now = datetime.now(UTC)
    if last_used_at is None or now - last_used_at > _TOUCH_EVERY:
        db.session.execute(_TOUCH, {"token_id": token_id, "now": now})
        db.session.commit()
    user.session_id = None
    return user


def token_holder(digest: str) -> User | None:
    """Return the active user of the live API token stored as ``digest`` (its SHA-256)."""
    row = _live_token(digest)
    return row[0] if row is not None else None


# Built once: building them per request cost more than running them. The token's own row is
# read as three columns, not an entity: a request needs only its id and two times.
_LIVE_TOKEN = (
    select(*User.__table__.columns, ApiToken.id, ApiToken.last_used_at, ApiToken.expires_at)
    .select_from(ApiToken)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None), User.active)
)
_TOUCH = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


def _live_token(digest: str) -> tuple[User, int, datetime | None] | None:
    """The user of the token stored as ``digest`` (not revoked, not expired, user active),
    the token's id and its last use."""
    rows = run(_LIVE_TOKEN, {"digest": digest})  # every API request: not through the ORM
    if not rows:
        return None
    *user, token_id, last_used_at, expires_at = rows[0]
    if expires_at is not None and expires_at <= datetime.now(UTC):
        return None
    return attached(User, user), token_id, last_used_at


def list_tokens(user: User) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        )
    )


def revoke_token(token_id: int, actor: User | None) -> bool:
    """Revoke a token of ``actor`` (any token for an admin, or None: the command line)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    if actor is not None and token.user_id != actor.id and actor.role != "admin":
        return False
    token.revoked_at = datetime.now(UTC)
    audit.record("token.revoke", actor, str(token_id), name=token.name)
    db.session.commit()
    return True
