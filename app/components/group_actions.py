"""What the groups page's buttons do, through app.groups; each change is audited there."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from app.components.groups import strings
from app.groups import (
    VISIBILITY,
    Access,
    AccessError,
    create_group,
    delete_group,
    set_dataset_access,
    set_members,
)

# How the groups page names who sees a dataset of each visibility.
VISIBLE_TO = {"all": "everyone signed in", "restricted": "its owner, admins and its grantees"}


def ask(change: dict[str, Any]) -> str | None:
    """Return the question to ask before ``change`` (None: nothing is taken away)."""
    action, name, dataset = change["action"], change["name"], change["dataset"]
    if action in ("admin-groups-delete", "admin-groups-save-members") and not name:
        raise AccessError("select a group first")
    if action == "admin-groups-save-access" and not dataset:
        raise AccessError("select a dataset first")
    if action == "admin-groups-delete":
        return f"Delete the group {name}? Its members lose the access it gave them."
    if action == "admin-groups-save-members":
        removed = set_members(name, change["members"], current_user, dry_run=True).removed
        return f"Remove {', '.join(removed)} from {name}?" if removed else None
    if action == "admin-groups-save-access":
        removed = set_dataset_access(dataset, Access(*change["access"]), None, dry_run=True).removed
        return _access_question(dataset, removed) if removed else None
    return None


def _access_question(dataset: str, removed: list[str]) -> str:
    """Ask before taking ``dataset`` away: from everyone (made restricted) or from grantees."""
    revoked = _grants(removed)
    question = []
    if len(revoked) < len(removed):
        question.append(
            f"Restrict {dataset}? Only its owner, admins and the users and groups granted it "
            "will see it; everyone else stops seeing it."
        )
    if revoked:
        question.append(f"Take {dataset} away from {_listed(revoked)}?")
    return " ".join(question)


def _access_result(dataset: str, added: list[str], removed: list[str]) -> str:
    """Say what a saved access change did, in words: granted, taken away, who sees it now."""
    changed = [
        f"now seen by {VISIBLE_TO[item.removeprefix(VISIBILITY)]}"
        for item in added + removed
        if item.startswith(VISIBILITY)
    ]
    granted, revoked = _grants(added), _grants(removed)
    if granted:
        changed.append(f"granted to {_listed(granted)}")
    if revoked:
        changed.append(f"taken away from {_listed(revoked)}")
    return f"{dataset}: {'; '.join(changed)}." if changed else f"{dataset}: no change."


def _grants(items: list[str]) -> list[str]:
    """The grants ('group g', 'user u') among a Change's items, not a new visibility."""
    return [item for item in items if not item.startswith(VISIBILITY)]


def _listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def apply(change: dict[str, Any]) -> str:
    action, name, dataset = change.get("action"), change.get("name"), change.get("dataset")
    if action == "admin-groups-create":
        return f"Group {create_group(str(name or ''), current_user).name} created."
    if action == "admin-groups-delete":
        delete_group(str(name), current_user)
        return f"Group {name} deleted."
    if action == "admin-groups-save-members":
        made = set_members(str(name), strings(change.get("members")), current_user)
        return f"{name}: {len(made.added)} added, {len(made.removed)} removed."
    if action == "admin-groups-save-access":
        access = change.get("access")
        if not isinstance(access, list) or len(access) != 3:
            raise AccessError("nothing to do")
        wanted = Access(str(access[0]), strings(access[1]), strings(access[2]))
        made = set_dataset_access(str(dataset), wanted, current_user)
        return _access_result(str(dataset), made.added, made.removed)
    raise AccessError("nothing to do")
