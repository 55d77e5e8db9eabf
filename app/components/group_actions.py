"""What the groups page's buttons do, through app.groups; each change is audited there."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from app.components.groups import strings
from app.groups import (
    Access,
    AccessError,
    create_group,
    delete_group,
    set_dataset_access,
    set_members,
)


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
        return f"Stop {', '.join(removed)} seeing {dataset}?" if removed else None
    return None


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
        return f"{dataset}: " + ", ".join(made.added + made.removed or ["no change"]) + "."
    raise AccessError("nothing to do")
