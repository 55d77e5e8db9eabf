"""The pieces of the users page: the new-user form, filters, actions and the users grid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash_mantine_components as dmc
from dash import dcc, html

from app.access import visible_datasets
from app.components.grid import selectable_grid
from app.models import Role, User
from app.set_password import LINK_HOURS

ROLES = [role.value for role in Role]
METHODS = [
    {"value": "password", "label": "Generated password"},
    {"value": "link", "label": f"Set-password link ({LINK_HOURS} h)"},
]
COLUMNS = [
    {"field": "email", "flex": 2, "minWidth": 240, "tooltipField": "email"},
    {"field": "role"},
    {"field": "status"},
    {"field": "locked_until", "headerName": "Locked until (UTC)"},
    {"field": "datasets", "headerName": "Can see", "flex": 2, "tooltipField": "datasets"},
    {"field": "last_login_at", "headerName": "Last sign-in (UTC)"},
    {"field": "created_at", "headerName": "Created (UTC)"},
]
ACTIVE_FILTER = {"active": True, "inactive": False}
LOCKED_FILTER = {"locked": True, "unlocked": False}


def users_page(rows: list[dict[str, Any]]) -> dmc.Stack:
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Users", order=2),
                    dmc.Anchor("Groups and dataset access", href="/admin/groups"),
                ],
                justify="space-between",
            ),
            _new_user_form(),
            html.Div(id="admin-users-secret"),
            _filters(),
            _actions(),
            dcc.ConfirmDialog(id="admin-users-confirm"),
            dcc.Store(id="admin-users-pending"),
            dcc.Store(id="admin-users-changed"),
            dcc.Store(id="admin-users-filters"),
            html.Div(id="admin-users-message"),
            selectable_grid("admin-users-grid", COLUMNS, rows, "email"),
        ],
        gap="md",
    )


def _new_user_form() -> dmc.Group:
    return dmc.Group(
        [
            dmc.TextInput(id="admin-users-email", label="New user's email", w=280),
            dmc.Select(
                id="admin-users-role",
                label="Role",
                data=ROLES,
                value="viewer",
                allowDeselect=False,  # a click on the chosen role keeps it (it cleared it)
                w=130,
            ),
            dmc.Select(
                id="admin-users-method",
                label="Password",
                data=METHODS,
                value="password",
                allowDeselect=False,
                w=240,
            ),
            dmc.Button("Create user", id="admin-users-create", mt="lg"),
        ],
        align="flex-start",
    )


def _filters() -> dmc.Group:
    return dmc.Group(
        [
            dmc.TextInput(
                id="admin-users-search", placeholder="Search by email", debounce=300, w=240
            ),
            dmc.Select(
                id="admin-users-filter-role", placeholder="any role", data=ROLES, clearable=True
            ),
            dmc.Select(
                id="admin-users-filter-active",
                placeholder="active or not",
                data=list(ACTIVE_FILTER),
                clearable=True,
            ),
            dmc.Select(
                id="admin-users-filter-locked",
                placeholder="locked or not",
                data=list(LOCKED_FILTER),
                clearable=True,
            ),
            dmc.Button("Refresh", id="admin-users-refresh", variant="light"),
        ]
    )


def _actions() -> dmc.Group:
    return dmc.Group(
        [
            dmc.Text("Selected user:", size="sm", fw=600),
            dmc.Select(
                id="admin-users-new-role", data=ROLES, value="analyst", allowDeselect=False, w=120
            ),
            dmc.Button("Change role", id="admin-users-set-role", variant="light"),
            dmc.Button("Deactivate", id="admin-users-deactivate", color="red", variant="light"),
            dmc.Button("Reactivate", id="admin-users-reactivate", variant="light"),
            dmc.Button("Unlock", id="admin-users-unlock", variant="light"),
            dmc.Select(
                id="admin-users-reset-method",
                data=METHODS,
                value="password",
                allowDeselect=False,
                w=240,
            ),
            dmc.Button("Reset password", id="admin-users-reset", color="orange", variant="light"),
        ],
        gap="xs",
    )


def user_rows(users: list[User]) -> list[dict[str, Any]]:
    """Return the grid rows for ``users``, with the datasets each of them can see."""
    now = datetime.now(UTC)

    def stamp(value: datetime | None) -> str | None:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else None

    return [
        {
            "email": user.email,
            "role": user.role,
            "active": user.active,
            "status": "active" if user.active else "inactive",
            "locked_until": stamp(user.locked_until)
            if user.locked_until and user.locked_until > now
            else None,
            "datasets": "every dataset (admin)"
            if user.role == Role.ADMIN
            else ", ".join(dataset.name for dataset in visible_datasets(user)),
            "last_login_at": stamp(user.last_login_at),
            "created_at": stamp(user.created_at),
        }
        for user in users
    ]


def filter_value(choice: Any, choices: dict[str, bool]) -> bool | None:
    """Turn a yes/no filter's choice into True, False or None (no filter)."""
    return choices.get(choice) if isinstance(choice, str) else None


def done(text: str) -> dmc.Alert:
    return dmc.Alert(text, id="admin-users-done", color="green")


def refused(text: str) -> dmc.Alert:
    return dmc.Alert(text, id="admin-users-error", color="red")


def shown_once(what: str, secret: str, email: str) -> dmc.Alert:
    """Show a generated password or a set-password link, once."""
    return dmc.Alert(
        [
            dmc.Text(
                f"Give it to {email} now: it will not be shown again. They can change it "
                "on their Account page; a set-password link lets them choose their own."
            ),
            dmc.Group(
                [
                    dmc.Code(secret, id="admin-users-secret-value"),
                    dcc.Clipboard(target_id="admin-users-secret-value"),
                ]
            ),
        ],
        title=what,
        color="blue",
    )
