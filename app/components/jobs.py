"""The pieces of the jobs page: the new-job form, the jobs grid and the runs grid."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import dcc, html, no_update

from app.components.grid import PICK_ONE_ROW, row_id
from app.models import RUN_STATUSES
from etl.jobs import MAX_INTERVAL_SECONDS

HIDDEN = {"display": "none"}
SHOWN: dict[str, str] = {}
REFRESH_MS = 5000
# Which form field each source kind and schedule kind needs; the others are hidden.
SOURCE_FIELDS = {
    "file": "jobs-path",
    "folder": "jobs-folder",
    "url": "jobs-url",
    "demo": "jobs-rows",
}
SCHEDULE_FIELDS = {"interval": "jobs-interval", "cron": "jobs-cron"}
FORM_FIELDS = {
    "name": "jobs-name",
    "dataset": "jobs-dataset",
    "source_kind": "jobs-source-kind",
    "path": "jobs-path",
    "folder": "jobs-folder",
    "url": "jobs-url",
    "rows": "jobs-rows",
    "schedule_kind": "jobs-schedule-kind",
    "interval": "jobs-interval",
    "cron": "jobs-cron",
    "time_column": "jobs-time-column",
}
# The edit dialog's fields, by create_job_for's form keys; a job keeps its kind of source.
EDIT_SOURCE_FIELDS = {
    "file": "jobs-edit-path",
    "folder": "jobs-edit-folder",
    "url": "jobs-edit-url",
    "demo": "jobs-edit-rows",
}
EDIT_SCHEDULE_FIELDS = {"interval": "jobs-edit-interval", "cron": "jobs-edit-cron"}
EDIT_FIELDS = {
    "name": "jobs-edit-name",
    "path": "jobs-edit-path",
    "folder": "jobs-edit-folder",
    "url": "jobs-edit-url",
    "rows": "jobs-edit-rows",
    "schedule_kind": "jobs-edit-schedule-kind",
    "interval": "jobs-edit-interval",
    "cron": "jobs-edit-cron",
}
STATUS_COLOURS = {
    "queued": "gray",
    "running": "blue",
    "succeeded": "teal",
    "failed": "orange",
    "dead": "red",
    "refused": "grape",
}
JOB_COLUMNS: list[dict[str, Any]] = [
    {"field": "id", "headerName": "Job", "minWidth": 80, "maxWidth": 90},
    {"field": "name", "filter": True, "minWidth": 140},
    {"field": "dataset", "filter": True, "minWidth": 130},
    {"field": "source", "minWidth": 90},
    {"field": "where", "minWidth": 220, "tooltipField": "where"},
    {"field": "schedule", "minWidth": 130},
    {"field": "paused", "minWidth": 100, "maxWidth": 110},
    {"field": "owner", "minWidth": 160},
]
RUN_COLUMNS: list[dict[str, Any]] = [
    {"field": "id", "headerName": "Run", "minWidth": 80, "maxWidth": 90},
    {"field": "dataset", "filter": True, "minWidth": 130},
    {"field": "job", "minWidth": 120},
    {
        "field": "status",
        "minWidth": 110,
        "cellStyle": {
            "styleConditions": [
                {
                    "condition": f"params.value === '{status}'",
                    "style": {"color": f"var(--mantine-color-{colour}-filled)", "fontWeight": 600},
                }
                for status, colour in STATUS_COLOURS.items()
            ]
        },
    },
    {"field": "attempts", "headerName": "Tries", "minWidth": 85, "maxWidth": 90},
    *({"field": count, "minWidth": 95} for count in ("read", "loaded", "rejected", "duplicate")),
    {"field": "error", "minWidth": 200, "tooltipField": "error"},
    {"field": "started", "minWidth": 180},
    {"field": "finished", "minWidth": 180},
]
DEAD_ROW = {
    "styleConditions": [
        {
            "condition": "params.data.status === 'dead'",
            "style": {"backgroundColor": "var(--mantine-color-red-light)"},
        }
    ]
}


def field_styles(source_kind: object, schedule_kind: object) -> list[dict[str, str]]:
    """Show the source and schedule fields the chosen kinds need, in FORM_FIELDS order."""
    wanted = {SOURCE_FIELDS.get(str(source_kind)), SCHEDULE_FIELDS.get(str(schedule_kind))}
    fields = [*SOURCE_FIELDS.values(), *SCHEDULE_FIELDS.values()]
    return [SHOWN if field in wanted else HIDDEN for field in fields]


def edit_styles(source_kind: object) -> list[dict[str, str]]:
    """Show the one source field a job's kind of source has, in EDIT_SOURCE_FIELDS order."""
    return [SHOWN if kind == source_kind else HIDDEN for kind in EDIT_SOURCE_FIELDS]


def schedule_styles(schedule_kind: object) -> list[dict[str, str]]:
    """Show the schedule field the chosen kind needs, in EDIT_SCHEDULE_FIELDS order."""
    return [SHOWN if kind == schedule_kind else HIDDEN for kind in EDIT_SCHEDULE_FIELDS]


def edit_reply(**changes: Any) -> dict[str, Any]:
    """The edit callback's outputs: ``changes``, with nothing else changed and no message."""
    unchanged = {
        "opened": no_update,
        "job": no_update,
        "values": dict.fromkeys(EDIT_FIELDS, no_update),
        "styles": [no_update] * len(EDIT_SOURCE_FIELDS),
        "error": None,
        "message": None,
        "edited": no_update,
    }
    return unchanged | changes


def _kinds(component_id: str, label: str, kinds: list[tuple[str, str]], value: str) -> Any:
    return dmc.Stack(
        [
            dmc.Text(label, size="sm", fw=500),
            dmc.SegmentedControl(
                id=component_id,
                data=[{"value": kind, "label": text} for kind, text in kinds],
                value=value,
            ),
        ],
        gap=4,
    )


def create_form(datasets: list[str], inbox: str) -> Any:
    hidden = field_styles("demo", "interval")
    source_kinds = [("demo", "Demo"), ("file", "File"), ("folder", "Folder"), ("url", "URL")]
    return dmc.Card(
        dmc.Stack(
            [
                dmc.Title("New job", order=3),
                dmc.SimpleGrid(
                    [
                        dmc.TextInput(id="jobs-name", label="Name", placeholder="nightly_sales"),
                        dmc.Autocomplete(
                            id="jobs-dataset",
                            label="Dataset",
                            description="A dataset you can see; a demo job may name a new one",
                            data=datasets,
                        ),
                        dmc.TextInput(
                            id="jobs-time-column",
                            label="Time column (optional)",
                            description="A column of the dataset",
                        ),
                    ],
                    cols={"base": 1, "md": 3},
                ),
                dmc.Group(
                    [
                        _kinds("jobs-source-kind", "Source", source_kinds, "demo"),
                        _kinds(
                            "jobs-schedule-kind",
                            "Schedule",
                            [("interval", "Every N seconds"), ("cron", "Cron")],
                            "interval",
                        ),
                    ],
                    gap="xl",
                ),
                dmc.SimpleGrid(
                    [
                        dmc.TextInput(
                            id="jobs-path",
                            label="File",
                            description=f"A path inside the inbox folder {inbox}",
                            style=hidden[0],
                        ),
                        dmc.TextInput(
                            id="jobs-folder",
                            label="Folder",
                            description=f"A folder inside {inbox}; each new CSV is loaded once",
                            style=hidden[1],
                        ),
                        dmc.TextInput(
                            id="jobs-url",
                            label="URL",
                            placeholder="https://example.com/data.csv",
                            style=hidden[2],
                        ),
                        dmc.NumberInput(
                            id="jobs-rows", label="Rows per tick", value=20, min=1, style=hidden[3]
                        ),
                        dmc.NumberInput(
                            id="jobs-interval",
                            label="Every (seconds)",
                            value=60,
                            min=1,
                            max=MAX_INTERVAL_SECONDS,
                            clampBehavior="none",  # the server says what is wrong, not a silent 1
                            style=hidden[4],
                        ),
                        dmc.TextInput(
                            id="jobs-cron",
                            label="Cron expression",
                            placeholder="*/15 * * * *",
                            style=hidden[5],
                        ),
                    ],
                    cols={"base": 1, "md": 2},
                ),
                dmc.Group(dmc.Button("Create job", id="jobs-create")),
                html.Div(id="jobs-create-message"),
            ]
        ),
        withBorder=True,
        padding="lg",
    )


def edit_dialog(inbox: str) -> Any:
    """The dialog that changes a job's name, source settings and schedule."""
    return dmc.Modal(
        id="jobs-edit-modal",
        title="Edit job",
        size="lg",
        children=dmc.Stack(
            [
                dcc.Store(id="jobs-edit-job"),
                dmc.TextInput(id="jobs-edit-name", label="Name"),
                dmc.TextInput(
                    id="jobs-edit-path", label="File", description=f"A path inside {inbox}"
                ),
                dmc.TextInput(
                    id="jobs-edit-folder", label="Folder", description=f"A folder inside {inbox}"
                ),
                dmc.TextInput(id="jobs-edit-url", label="URL"),
                dmc.NumberInput(id="jobs-edit-rows", label="Rows per tick", min=1),
                _kinds(
                    "jobs-edit-schedule-kind",
                    "Schedule",
                    [("interval", "Every N seconds"), ("cron", "Cron")],
                    "interval",
                ),
                dmc.NumberInput(
                    id="jobs-edit-interval",
                    label="Every (seconds)",
                    min=1,
                    max=MAX_INTERVAL_SECONDS,
                    clampBehavior="none",
                ),
                dmc.TextInput(
                    id="jobs-edit-cron", label="Cron expression", placeholder="*/15 * * * *"
                ),
                html.Div(id="jobs-edit-error"),
                dmc.Group(dmc.Button("Save", id="jobs-edit-save"), justify="flex-end"),
            ]
        ),
    )


def _section(title: str, controls: list[Any], note: str) -> list[Any]:
    return [
        dmc.Group(
            [dmc.Title(title, order=3), dmc.Group(controls, gap="xs")], justify="space-between"
        ),
        dmc.Text(note, c="dimmed", size="sm"),
    ]


def jobs_section(jobs: list[dict[str, Any]], admin: bool) -> Any:
    buttons = [
        dmc.Button("Pause", id="jobs-pause", variant="light"),
        dmc.Button("Resume", id="jobs-resume", variant="light"),
        dmc.Button("Edit", id="jobs-edit", variant="light"),
        dmc.Button("Run now", id="jobs-run", variant="light", color="teal"),
        dmc.Button("Delete", id="jobs-delete", variant="light", color="red"),
        dmc.Button("Refresh", id="jobs-refresh", variant="subtle"),
    ]
    whose = "every job" if admin else "your jobs"
    return dmc.Stack(
        [
            *_section("Jobs", buttons, f"Select a row to act on it; you see {whose}."),
            dag.AgGrid(
                id="jobs-grid",
                columnDefs=JOB_COLUMNS,
                rowData=jobs,
                getRowId=row_id(),
                columnSize="responsiveSizeToFit",
                dashGridOptions=PICK_ONE_ROW,
            ),
            html.Div(id="jobs-action-message"),
            html.Div(id="jobs-edit-message"),
            dcc.ConfirmDialog(id="jobs-delete-confirm"),
        ]
    )


def runs_section(runs: list[dict[str, Any]], admin: bool) -> Any:
    controls = [
        dmc.Select(
            id="jobs-runs-status",
            data=[{"value": "all", "label": "All statuses"}, *RUN_STATUSES],
            value="all",
            allowDeselect=False,
            w=150,
        ),
        # Analysts retry their own jobs' runs; the server checks whose job a run belongs to.
        dmc.Button("Retry", id="jobs-runs-retry", variant="light", color="orange"),
        dmc.Button("Refresh", id="jobs-runs-refresh", variant="subtle"),
    ]
    note = "The newest 100 runs" + ("." if admin else " of your jobs and the datasets you can see.")
    return dmc.Stack(
        [
            *_section(
                "Runs",
                controls,
                note + " Dead runs (every attempt failed) are shown in red; refused runs had input"
                " that will not load as it is (the error says why) and are not retried.",
            ),
            dag.AgGrid(
                id="jobs-runs-grid",
                columnDefs=RUN_COLUMNS,
                rowData=runs,
                getRowId=row_id(),
                getRowStyle=DEAD_ROW,
                columnSize="responsiveSizeToFit",
                dashGridOptions=PICK_ONE_ROW,
            ),
            html.Div(id="jobs-runs-message"),
            dcc.Interval(id="jobs-runs-interval", interval=REFRESH_MS),
        ]
    )


def jobs_page(
    datasets: list[str],
    inbox: str,
    jobs: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    admin: bool,
) -> Any:
    return dmc.Stack(
        [
            dmc.Title("Ingest jobs", order=2),
            dmc.Text("Scheduled ingest jobs, their runs and retries.", c="dimmed"),
            dcc.Store(id="jobs-created-store"),
            dcc.Store(id="jobs-action-store"),
            dcc.Store(id="jobs-retry-store"),
            dcc.Store(id="jobs-edited-store"),
            create_form(datasets, inbox),
            edit_dialog(inbox),
            jobs_section(jobs, admin),
            runs_section(runs, admin),
        ],
        id="jobs-page",
    )
