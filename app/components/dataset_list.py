"""The datasets list of the upload page: each dataset one may see, what it holds, who owns it,
and its callbacks (retention, deletion, refresh), which the guard gives the page's role."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask_login import current_user

from app.access import visible_datasets
from app.components.grid import PICK_ONE_ROW, picked, row_id
from app.components.group_actions import VISIBLE_TO
from app.components.upload import alert
from app.dataset_admin import (
    MAX_RETENTION_DAYS,
    DatasetChangeError,
    change_retention,
    delete_managed_dataset,
    deletion_question,
)
from app.models import User
from app.queries import DatasetOverview, dataset_overview

COLUMNS: list[dict[str, Any]] = [
    # A link into Explore; names are identifiers, so the markdown holds nothing but the link.
    {"field": "dataset", "cellRenderer": "markdown", "filter": True, "minWidth": 150},
    {"field": "events", "minWidth": 100, "type": "rightAligned"},
    {"field": "last_event", "headerName": "Last event (UTC)", "minWidth": 170},
    {"field": "columns", "minWidth": 220, "tooltipField": "columns"},
    {"field": "time_column", "headerName": "Time column", "minWidth": 120},
    {"field": "key", "headerName": "Dedupe key", "minWidth": 120},
    {"field": "owner", "minWidth": 160},
    {"field": "visible_to", "headerName": "Seen by", "minWidth": 180},
    {"field": "retention", "minWidth": 110},
]


def dataset_rows(overviews: list[DatasetOverview]) -> list[dict[str, Any]]:
    """One grid row a dataset, in words."""
    rows = []
    for overview in overviews:
        dataset = overview.dataset
        explore = "/explore?" + urlencode({"dataset": dataset.name})
        last = overview.last_event
        rows.append(
            {
                "name": dataset.name,
                "retention_days": dataset.retention_days or 0,
                "dataset": f"[{dataset.name}]({explore})",
                "events": overview.events,
                "last_event": last.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if last else "",
                "columns": ", ".join(f"{c['name']} ({c['type']})" for c in dataset.columns),
                "time_column": dataset.time_column or "(load time)",
                "key": ", ".join(dataset.key_columns or []) or "(whole row)",
                "owner": overview.owner or "(none)",
                "visible_to": VISIBLE_TO.get(dataset.visibility, dataset.visibility),
                "retention": (
                    f"{dataset.retention_days} days" if dataset.retention_days else "forever"
                ),
            }
        )
    return rows


def dataset_list(overviews: list[DatasetOverview]) -> Any:
    """The datasets grid (rows picked by a click) and what its owner or an admin can do."""
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Datasets", order=2),
                    dmc.Button("Refresh", id="datasets-list-refresh", variant="light"),
                ],
                justify="space-between",
            ),
            dmc.Text(
                "Every dataset you may see: click a name to explore it, or a row to change "
                "it (its owner or an admin). Events are counted from the hourly rollups.",
                c="dimmed",
                size="sm",
            ),
            dag.AgGrid(
                id="datasets-list-grid",
                columnDefs=COLUMNS,
                rowData=dataset_rows(overviews),
                getRowId=row_id("name"),
                columnSize="responsiveSizeToFit",
                dashGridOptions=PICK_ONE_ROW,
            ),
            dmc.Group(
                [
                    dmc.NumberInput(
                        id="datasets-retention-days",
                        label="Keep events for (days; 0: forever)",
                        min=0,
                        max=MAX_RETENTION_DAYS,
                        allowDecimal=False,
                        w=240,
                    ),
                    dmc.Button("Set retention", id="datasets-retention-set", variant="light"),
                    dmc.Button(
                        "Delete dataset", id="datasets-delete", color="red", variant="light"
                    ),
                ],
                align="flex-end",
            ),
            html.Div(id="datasets-manage-message"),
            dcc.ConfirmDialog(id="datasets-delete-confirm"),
        ]
    )


def dataset_action(trigger: object, user: User, selected: object, days: object) -> tuple[Any, ...]:
    """Answer the datasets list's buttons: (rows, the names offered as existing datasets,
    message, confirm shown, confirm question).

    Delete asks first; the confirmation deletes. Any refusal leaves the list as it is.
    """
    name = picked(selected, "name")
    try:
        if trigger == "datasets-delete":
            return no_update, no_update, None, True, deletion_question(user, name)
        message = None
        if trigger == "datasets-retention-set":
            message = alert("Retention set", change_retention(user, name, days), "teal")
        elif trigger == "datasets-delete-confirm":
            message = alert("Deleted", delete_managed_dataset(user, name), "teal")
    except DatasetChangeError as exc:
        return no_update, no_update, alert("Nothing was changed", str(exc)), False, no_update
    visible = visible_datasets(user)
    names = [dataset.name for dataset in visible]
    return dataset_rows(dataset_overview(visible)), names, message, False, no_update


@callback(
    Output("datasets-retention-days", "value"),
    Input("datasets-list-grid", "selectedRows"),
    prevent_initial_call=True,
)
def show_retention(selected: object) -> Any:
    """Start from the picked dataset's retention (0: forever)."""
    days = picked(selected, "retention_days")
    return days if isinstance(days, int) and not isinstance(days, bool) else no_update


@callback(
    Output("datasets-list-grid", "rowData"),
    Output("datasets-existing", "data"),
    Output("datasets-manage-message", "children"),
    Output("datasets-delete-confirm", "displayed"),
    Output("datasets-delete-confirm", "message"),
    Input("datasets-list-refresh", "n_clicks"),
    Input("datasets-run-store", "data"),
    Input("datasets-retention-set", "n_clicks"),
    Input("datasets-delete", "n_clicks"),
    Input("datasets-delete-confirm", "submit_n_clicks"),
    State("datasets-list-grid", "selectedRows"),
    State("datasets-retention-days", "value"),
    prevent_initial_call=True,
)
def manage_datasets(
    _refresh: object,
    _run_id: object,
    _retention: object,
    _delete: object,
    _confirmed: object,
    selected: object,
    days: object,
) -> tuple[Any, ...]:
    """Refresh the list (and the datasets a file may go into); set a dataset's retention;
    ask, then delete it (its owner or an admin)."""
    return dataset_action(dash.ctx.triggered_id, current_user, selected, days)
