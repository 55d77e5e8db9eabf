"""What a hub connection may do, decided with the app's own rules (run in a worker thread).

The hub is asyncio; these checks use the app's SQLAlchemy models and ``app.access`` (the
same dataset visibility as pages and the API), so the hub calls them via ``asyncio.to_thread``
inside an app context.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from flask import Flask

from app.access import find_visible_dataset, visible_pairs
from app.extensions import db
from app.guard import hub_message_role
from app.hub.tokens import LiveClaims
from app.models import Role, User
from app.sessions import session_holder
from app.tokens import token_holder


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

    def still_visible(self, asked: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """Return the (user id, dataset id) pairs of ``asked`` whose user may still subscribe.

        One query for all of them, however many clients and subscriptions they come from.
        """
        needed = hub_message_role("subscribe")
        roles = [role for role in Role if needed is not None and role.includes(needed)]
        with self.server.app_context():
            try:
                return visible_pairs(asked, roles)
            finally:
                db.session.remove()


def _holder(claims: LiveClaims) -> User | None:
    """The user of the session or API token the claims stand on, if it still holds."""
    if claims.session_hash is not None:
        user = session_holder(claims.session_hash)
    elif claims.api_token_hash is not None:
        user = token_holder(claims.api_token_hash)
    else:
        return None
    return user if user is not None and user.id == claims.user_id else None
