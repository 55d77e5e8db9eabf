"""A user's own account: change the password, list and end their own sign-in sessions."""

from __future__ import annotations

import hashlib

from app import audit
from app.extensions import db
from app.models import User
from app.passwords import verify_password
from app.sessions import SessionRecord, revoke_sessions, user_sessions
from app.users import UserError, change_password

SESSION_KEY_LENGTH = 16  # the part of a session's stored digest that names it on the page


def session_key(session_token: str | None) -> str:
    """Return the short name of the session whose cookie token is ``session_token``."""
    digest = hashlib.sha256((session_token or "").encode()).hexdigest()
    return digest[:SESSION_KEY_LENGTH]


def change_own_password(user: User, current: str, new: str, confirm: str) -> None:
    """Change ``user``'s password after checking the current one; end their other sessions.

    :raises UserError: for a wrong current password, a mismatch or a password the policy refuses.
    """
    if not current:
        raise UserError("enter your current password first")
    if not verify_password(user.password_hash, current):
        raise UserError("the current password is wrong")
    if new != confirm:
        raise UserError("the two new passwords differ")
    if new == current:
        raise UserError("the new password is the same as the current one")
    _end_sessions(user, keep=session_key(user.session_id))
    change_password(user, new, user, "user.change_password")


def live_sessions(user: User) -> list[SessionRecord]:
    """Return ``user``'s live sessions, the most recently seen first."""
    return user_sessions(user.id)


def revoke_own_session(user: User, key: str) -> bool:
    """End the live session of ``user`` named ``key``; False when there is none such."""
    if len(key) != SESSION_KEY_LENGTH or not all(c in "0123456789abcdef" for c in key):
        return False
    if not _end_sessions(user, only=key):
        return False
    audit.record("session.revoke", user, user.email, session=key)
    db.session.commit()
    return True


def _end_sessions(user: User, keep: str | None = None, only: str | None = None) -> list[str]:
    """Revoke ``user``'s live sessions (all but ``keep``, or just ``only``); return their keys."""
    chosen = [
        record.id
        for record in live_sessions(user)
        if record.id[:SESSION_KEY_LENGTH] != keep and only in (None, record.id[:SESSION_KEY_LENGTH])
    ]
    revoke_sessions(chosen)
    return [digest[:SESSION_KEY_LENGTH] for digest in chosen]
