"""What a hub connection may do, decided with the app's own rules (run in a worker thread).

The hub is asyncio; these checks use the app's SQLAlchemy models and ``app.access`` (the
same dataset visibility as pages and the API), so the hub calls them via ``asyncio.to_thread``
inside an app context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select

from app.access import find_visible_dataset
from app.extensions import db
from app.guard import hub_message_role
from app.hub.tokens import LiveClaims
from app.models import ApiToken, Role, User, UserSession


@dataclass(frozen=True)
class Viewer:
    """The user behind a hub connection, as of the last check."""

    user_id: int
    role: Role


@dataclass(frozen=True)
class Grant:
    dataset_id: int
    dataset: str


class HubAccess:
    """Answer the hub's questions: does this token still hold, may this user do that."""

    def __init__(self, server: Flask) -> None:
        self.server = server

    def viewer(self, claims: LiveClaims) -> Viewer | None:
        """Return the user if the session or API token behind ``claims`` still holds."""
        with self.server.app_context():
            try:
                user = _holder(claims)
                return Viewer(user.id, Role(user.role)) if user is not None else None
            finally:
                db.session.remove()

    def authorize(self, claims: LiveClaims, message_type: str, dataset: str) -> Grant | str:
        """Return the dataset grant, or the error code (``forbidden``, ``not_found``, ...)."""
        with self.server.app_context():
            try:
                user = _holder(claims)
                if user is None:
                    return "session_ended"
                required = hub_message_role(message_type)
                if required is None or not Role(user.role).includes(required):
                    return "forbidden"
                found = find_visible_dataset(user, dataset)
                if found is None:
                    return "not_found"  # invisible datasets look absent, as in the API
                return Grant(found.id, found.name)
            finally:
                db.session.remove()


def _holder(claims: LiveClaims) -> User | None:
    now = datetime.now(UTC)
    if claims.session_hash is not None:
        query = (
            select(User)
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                UserSession.id == claims.session_hash,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > now,
            )
        )
    elif claims.api_token_hash is not None:
        query = (
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(
                ApiToken.token_hash == claims.api_token_hash,
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
            )
        )
    else:
        return None
    user: User | None = db.session.scalars(
        query.where(User.id == claims.user_id, User.active)
    ).first()
    return user
