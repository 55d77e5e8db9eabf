"""The pieces of the audit log page: filters, the count with paging, and the grid."""

from __future__ import annotations

import math
from typing import Any

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import dcc, html

from app.components.grid import row_id
from app.queries import AUDIT_EXPORT_MAX, AUDIT_PAGE_SIZE

COLUMNS: list[dict[str, Any]] = [
    {"field": "at", "headerName": "When (UTC)", "minWidth": 180},
    {"field": "actor", "minWidth": 180},
    {"field": "action", "minWidth": 140},
    {"field": "target", "flex": 2, "minWidth": 160, "tooltipField": "target"},
    {"field": "ip", "headerName": "IP", "minWidth": 120},
    {"field": "user_agent", "headerName": "Browser", "minWidth": 160, "tooltipField": "user_agent"},
    {"field": "details", "flex": 2, "minWidth": 200, "tooltipField": "details"},
]


def pages(count: int) -> int:
    """Return how many pages ``count`` entries fill (at least one)."""
    return max(1, math.ceil(count / AUDIT_PAGE_SIZE))


def count_text(count: int, page: int) -> str:
    if count == 0:
        return "No entries match."
    first = (page - 1) * AUDIT_PAGE_SIZE + 1
    last = min(page * AUDIT_PAGE_SIZE, count)
    return f"{count} entries match; showing {first} to {last}, newest first."


def _time(component_id: str, label: str) -> Any:
    return dmc.DateTimePicker(
        id=component_id,
        label=label,
        withSeconds=False,
        valueFormat="YYYY-MM-DD HH:mm",
        clearable=True,
        w=180,
    )


def filters(actors: list[str], actions: list[str]) -> Any:
    return dmc.Group(
        [
            dmc.Select(
                id="admin-audit-actor",
                label="User",
                placeholder="anyone",
                data=actors,
                searchable=True,
                clearable=True,
                w=240,
            ),
            dmc.Select(
                id="admin-audit-action",
                label="Action",
                placeholder="any (job.* is every job action)",
                data=actions,
                searchable=True,
                clearable=True,
                w=280,
            ),
            _time("admin-audit-since", "From (UTC)"),
            _time("admin-audit-until", "To (UTC)"),
        ],
        align="flex-end",
    )


def audit_page(
    actors: list[str], actions: list[str], rows: list[dict[str, Any]], count: int
) -> Any:
    export_note = f"Export CSV (up to {AUDIT_EXPORT_MAX:,} rows)"
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Audit log", order=2),
                    dmc.Group(
                        [
                            dmc.Button("Refresh", id="admin-audit-refresh", variant="light"),
                            dmc.Button(export_note, id="admin-audit-export", variant="light"),
                        ],
                        gap="xs",
                    ),
                ],
                justify="space-between",
            ),
            dmc.Text(
                "Sign-ins, sign-outs, lockouts, user, token, dataset and job changes, uploads "
                "and exports. Each entry is written with the change it records.",
                c="dimmed",
                size="sm",
            ),
            filters(actors, actions),
            dmc.Group(
                [
                    dmc.Text(count_text(count, 1), id="admin-audit-count", size="sm"),
                    dmc.Pagination(id="admin-audit-page", total=pages(count), value=1),
                ],
                justify="space-between",
            ),
            html.Div(id="admin-audit-message"),
            dag.AgGrid(
                id="admin-audit-grid",
                columnDefs=COLUMNS,
                rowData=rows,
                getRowId=row_id(),
                columnSize="responsiveSizeToFit",
                dashGridOptions={"domLayout": "autoHeight", "tooltipShowDelay": 300},
            ),
            dcc.Download(id="admin-audit-download"),
        ]
    )
