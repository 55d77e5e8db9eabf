"""Users: creation, roles, activation, sign-in checks and the first admin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select

from app import audit
from app.extensions import db
from app.models import Role, User
from app.passwords import (
    PasswordPolicyError,
    check_password_policy,
    generate_password,
    hash_password,
    needs_rehash,
    unusable_password,
    verify_password,
)

DEFAULT_ADMIN_EMAIL = "admin@localhost"
# A deliberately plain check: email-validator refuses single-label domains such as the
# documented first admin, admin@localhost.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class UserError(ValueError):
    """A user change was refused; the message says why in words for the person asking."""


@dataclass(frozen=True)
class NewUser:
    user: User
    generated_password: str | None


def normalize_email(raw: str) -> str:
    """Return the canonical (trimmed, lower-case) form of an email address.

    :raises UserError: when it is not an email address.
    """
    email = raw.strip().lower()
    if not email:
        raise UserError("enter an email address")
    if len(email) > 254 or not _EMAIL.match(email) or ".." in email:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise UserError(f"{shown!r} is not a valid email address")
    return email


def parse_role(raw: str) -> Role:
    """Return the role named ``raw``; :raises UserError: for an unknown role."""
    try:
        return Role(raw.strip().lower())
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise UserError(f"unknown role {raw!r}: choose one of {names}") from None


def find_user(email: str) -> User | None:
    """Return the user with ``email``, or None."""
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def get_user(email: str) -> User:
    user = find_user(email)
    if user is None:
        raise UserError(f"no user with email {email!r}")
    return user


def list_users() -> list[User]:
    """Return every user, by email."""
    return list(db.session.scalars(select(User).order_by(User.email)))


def find_users(
    search: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    locked: bool | None = None,
) -> list[User]:
    """Return the users matching every filter given (email contains ``search``), by email."""
    query = select(User).order_by(User.email)
    if search:
        query = query.where(User.email.contains(search.strip().lower(), autoescape=True))
    if role:
        query = query.where(User.role == parse_role(role).value)
    if active is not None:
        query = query.where(User.active.is_(active))
    if locked is not None:
        now = datetime.now(UTC)
        is_locked = User.locked_until > now
        query = query.where(
            is_locked if locked else or_(User.locked_until.is_(None), User.locked_until <= now)
        )
    return list(db.session.scalars(query))


def create_user(
    email: str,
    role: Role | str,
    password: str | None = None,
    actor: User | None = None,
    invite: bool = False,
) -> NewUser:
    """Create an active user; without ``password`` one is generated and returned once.

    With ``invite`` the user has no password yet and sets one through a link
    (``app.set_password.link_for``).

    :raises UserError: for a bad email, role or password, or an email already taken.
    """
    address = normalize_email(email)
    chosen_role = role if isinstance(role, Role) else parse_role(role)
    generated = None
    if invite:
        stored = unusable_password()
    else:
        if password is None:
            password = generated = generate_password()
        _check_policy(password)
        stored = hash_password(password)
    if find_user(address) is not None:
        raise UserError(f"a user with email {address} already exists")
    user = User(email=address, role=chosen_role.value, password_hash=stored)
    db.session.add(user)
    db.session.flush()
    method = "link" if invite else ("generated" if generated else "given")
    audit.record("user.create", actor, address, role=chosen_role.value, password=method)
    db.session.commit()
    return NewUser(user, generated)


def reset_password(email: str, actor: User | None = None, invite: bool = False) -> str | None:
    """Replace a user's password and end their sessions; return the new one (None: a link).

    With ``invite`` the old password stops working and a set-password link is to be sent.
    """
    from app.sessions import revoke_all_sessions

    user = get_user(email)
    generated = None if invite else generate_password()
    user.password_hash = unusable_password() if generated is None else hash_password(generated)
    revoke_all_sessions(user.id)
    audit.record("user.reset_password", actor, user.email, method="link" if invite else "generated")
    db.session.commit()
    return generated


def change_password(user: User, new_password: str, actor: User | None, action: str) -> None:
    """Store ``new_password`` for ``user`` (the policy applies) and record ``action``.

    :raises UserError: when the password breaks the policy.
    """
    _check_policy(new_password)
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(action, actor, user.email)
    db.session.commit()


def unlock(email: str, actor: User | None = None) -> User:
    """End a lockout after failed sign-ins."""
    user = get_user(email)
    user.locked_until = None
    user.failed_logins = 0
    audit.record("user.unlock", actor, user.email)
    db.session.commit()
    return user


def _check_policy(password: str) -> None:
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise UserError(f"password {exc}") from exc


def set_role(email: str, role: Role | str, actor: User | None = None) -> User:
    """Change a user's role; the last active admin cannot be demoted."""
    user = get_user(email)
    new_role = role if isinstance(role, Role) else parse_role(role)
    if user.role == Role.ADMIN and new_role != Role.ADMIN:
        _refuse_if_last_admin(user, "demoted")
    old_role = user.role
    user.role = new_role.value
    audit.record("user.set_role", actor, user.email, old=old_role, new=new_role.value)
    db.session.commit()
    return user


def set_active(email: str, active: bool, actor: User | None = None) -> User:
    """Deactivate (ending every session at once) or reactivate a user."""
    from app.sessions import revoke_all_sessions

    user = get_user(email)
    if not active and user.role == Role.ADMIN and user.active:
        _refuse_if_last_admin(user, "deactivated")
    user.active = active
    if not active:
        revoke_all_sessions(user.id)
    audit.record("user.activate" if active else "user.deactivate", actor, user.email)
    db.session.commit()
    return user


_ACTIVE_ADMINS = select(User.email).where(User.role == Role.ADMIN.value, User.active)


def is_last_active_admin(email: str) -> bool:
    """Say whether ``email`` is the only active admin (a question; the change still checks)."""
    return list(db.session.scalars(_ACTIVE_ADMINS)) == [normalize_email(email)]


def _refuse_if_last_admin(user: User, verb: str) -> None:
    # Lock the admin rows so two concurrent demotions cannot both see "another admin left".
    admins = db.session.scalars(_ACTIVE_ADMINS.with_for_update()).all()
    if set(admins) <= {user.email}:
        db.session.rollback()
        raise UserError(f"{user.email} is the last active admin and cannot be {verb}")


def seed_first_admin(email: str | None, password: str | None) -> NewUser | None:
    """Create the first admin when there is no admin yet; return it, or None if one exists."""
    admins = db.session.scalar(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN.value)
    )
    if admins:
        return None
    return create_user(email or DEFAULT_ADMIN_EMAIL, Role.ADMIN, password)


def authenticate(email: str, password: str, max_failures: int, lockout: timedelta) -> User | None:
    """Return the user when the credentials are right and the account is usable, else None.

    Failures are counted; at ``max_failures`` the account locks for ``lockout``. Callers
    show one message for every refusal, so a response never tells whether an email exists.
    """
    try:
        address = normalize_email(email)
    except UserError:
        verify_password(None, password)
        return None
    user: User | None = db.session.scalar(
        select(User).where(User.email == address).with_for_update()
    )
    now = datetime.now(UTC)
    if user is None:
        verify_password(None, password)
        audit.record("login.failure", None, address, reason="unknown email")
        db.session.commit()
        return None
    if user.locked_until is not None and user.locked_until > now:
        verify_password(None, password)
        audit.record("login.failure", user, address, reason="locked")
        db.session.commit()
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        reason = "inactive" if user.active is False else "wrong password"
        user.failed_logins += 1
        audit.record("login.failure", user, address, reason=reason)
        if user.failed_logins >= max_failures:
            user.failed_logins = 0
            user.locked_until = now + lockout
            audit.record("login.lockout", user, address, minutes=lockout.total_seconds() / 60)
        db.session.commit()
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record("login.success", user, address)
    return user
