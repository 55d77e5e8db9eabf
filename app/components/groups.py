"""The pieces of the groups page: groups and their members, datasets and who may see them."""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
from dash import dcc, html

from app.components.grid import picked, selectable_grid
from app.groups import dataset_access, list_datasets, list_groups, members_of
from app.users import list_users

GROUP_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "flex": 1},
    {"field": "members", "flex": 3},
]
DATASET_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "flex": 1},
    {"field": "visibility"},
    {"field": "groups", "flex": 2},
    {"field": "users", "flex": 2},
]
VISIBILITY_CHOICES = [
    {"value": "all", "label": "everyone signed in"},
    {"value": "restricted", "label": "restricted: owner, admins and grantees"},
]


def groups_page() -> dmc.Stack:
    group_rows, dataset_rows, emails, names = page_data()
    return dmc.Stack(
        [
            dmc.Title("Groups and dataset access", order=2),
            dcc.ConfirmDialog(id="admin-groups-confirm"),
            dcc.Store(id="admin-groups-pending"),
            dcc.Store(id="admin-groups-changed"),
            html.Div(id="admin-groups-message"),
            dmc.Title("Groups", order=4),
            dmc.Group(
                [
                    dmc.TextInput(id="admin-groups-name", placeholder="New group's name", w=240),
                    dmc.Button("Create group", id="admin-groups-create"),
                    dmc.Button(
                        "Delete selected", id="admin-groups-delete", color="red", variant="light"
                    ),
                ]
            ),
            _grid("admin-groups-grid", GROUP_COLUMNS, group_rows),
            dmc.Group(
                [
                    dmc.MultiSelect(
                        id="admin-groups-members",
                        label="Members of the selected group",
                        data=emails,
                        searchable=True,
                        w=520,
                    ),
                    dmc.Button("Save members", id="admin-groups-save-members", mt="lg"),
                ],
                align="flex-start",
            ),
            dmc.Title("Datasets", order=4),
            _grid("admin-groups-datasets-grid", DATASET_COLUMNS, dataset_rows),
            dmc.Group(
                [
                    dmc.Select(
                        id="admin-groups-visibility",
                        label="Who may see the selected dataset",
                        data=VISIBILITY_CHOICES,
                        w=300,
                    ),
                    dmc.MultiSelect(
                        id="admin-groups-grant-groups", label="Groups", data=names, w=260
                    ),
                    dmc.MultiSelect(
                        id="admin-groups-grant-users",
                        label="Users",
                        data=emails,
                        searchable=True,
                        w=320,
                    ),
                    dmc.Button("Save access", id="admin-groups-save-access", mt="lg"),
                ],
                align="flex-start",
            ),
        ],
        gap="md",
    )


def _grid(grid_id: str, columns: list[dict[str, Any]], rows: list[dict[str, Any]]) -> Any:
    return selectable_grid(grid_id, columns, rows, "name")


def page_data() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[str]]:
    """Return the group rows, the dataset rows, every user's email and every group's name."""
    groups = list_groups()
    group_rows = [{"name": group.name, "members": ", ".join(members_of(group))} for group in groups]
    dataset_rows: list[dict[str, Any]] = []
    for dataset in list_datasets():
        access = dataset_access(dataset)
        dataset_rows.append(
            {
                "name": dataset.name,
                "visibility": access.visibility,
                "groups": ", ".join(access.groups),
                "users": ", ".join(access.users),
            }
        )
    emails = [user.email for user in list_users()]
    return group_rows, dataset_rows, emails, [group.name for group in groups]


def selected_name(selected: Any) -> str | None:
    """Return the name in the one selected grid row, or None for anything else."""
    name = picked(selected, "name")
    return name if isinstance(name, str) and 0 < len(name) <= 100 else None


def strings(values: Any) -> list[str]:
    """Return ``values`` if it is a short list of strings, else an empty list."""
    if not isinstance(values, list) or len(values) > 10_000:
        return []
    return [value for value in values if isinstance(value, str) and len(value) <= 254]


def done(text: str) -> dmc.Alert:
    return dmc.Alert(text, id="admin-groups-done", color="green")


def refused(text: str) -> dmc.Alert:
    return dmc.Alert(text, id="admin-groups-error", color="red")
