"""What the users page's action buttons do, through app.users; each change is audited there."""

from __future__ import annotations

from typing import Any

from dash import no_update
from flask_login import current_user

from app.components.grid import picked
from app.components.messages import sentence
from app.components.users import done, refused, shown_once
from app.models import Role
from app.set_password import link_for
from app.users import (
    UserError,
    get_user,
    is_last_active_admin,
    reset_password,
    set_active,
    set_role,
    unlock,
)

# Buttons whose change is applied only after the confirmation dialog.
CONFIRM = {
    "admin-users-set-role": "Change the role of {email} to {role}?",
    "admin-users-deactivate": "Deactivate {email}? Their sessions and API tokens stop at once.",
    "admin-users-reset": "Reset the password of {email}? Their old password and sessions stop.",
}


def apply(change: dict[str, Any]) -> tuple[Any, Any]:
    """Make the change; return the message and what to show once (or no_update)."""
    action, email = change.get("action"), str(change.get("email") or "")
    try:
        if action == "admin-users-set-role":
            user = set_role(email, str(change.get("role") or ""), actor=current_user)
            return done(f"{user.email} is now {user.role}."), no_update
        if action in ("admin-users-deactivate", "admin-users-reactivate"):
            active = action == "admin-users-reactivate"
            user = set_active(email, active, actor=current_user)
            return done(f"{user.email} is {'active' if active else 'deactivated'}."), no_update
        if action == "admin-users-unlock":
            return done(f"{unlock(email, actor=current_user).email} is unlocked."), no_update
        if action == "admin-users-reset":
            invite = change.get("method") == "link"
            password = reset_password(email, actor=current_user, invite=invite)
            if password is None:
                link = link_for(get_user(email))
                return done("Password reset."), shown_once("Set-password link", link, email)
            return done("Password reset."), shown_once("Generated password", password, email)
    except UserError as exc:
        return refused(sentence(exc)), no_update
    return refused("Unknown action."), no_update


def refusal(change: dict[str, Any]) -> str | None:
    """Say why ``change`` would be refused before asking to confirm it, if it is plain now:
    the last active admin is neither demoted nor deactivated."""
    action, email = change.get("action"), str(change.get("email") or "")
    demoting = action == "admin-users-set-role" and change.get("role") != Role.ADMIN.value
    if (demoting or action == "admin-users-deactivate") and is_last_active_admin(email):
        verb = "demoted" if demoting else "deactivated"
        return f"{email} is the last active admin and cannot be {verb}."
    return None


def selected_email(selected: Any) -> str | None:
    """Return the email of the one selected grid row, or None for anything else."""
    email = picked(selected, "email")
    return email if isinstance(email, str) and 0 < len(email) <= 254 else None
