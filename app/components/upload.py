"""The pieces of the upload page: drop zone, preview, target form, load summary, runs grid."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import Output, dcc, html, no_update
from dash_extensions import EventListener

from app.components.grid import FILL_WIDTH, refreshable_grid
from app.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES, LoadResult, UploadPreview
from etl.types import Column, ColumnType, suggest_time_column

HIDDEN = {"display": "none"}
COLUMN_TYPES = [kind.value for kind in ColumnType]
# dcc.Upload drops a file over max_size or of another type without a word, so the page
# listens to the file input's change and the drop itself to say why nothing happened.
FILE_EVENTS = [
    {"event": "change", "props": ["target.files.0.name", "target.files.0.size"]},
    {"event": "drop", "props": ["dataTransfer.files.0.name", "dataTransfer.files.0.size"]},
]
PREVIEW_OUTPUTS = {
    "upload_id": Output("datasets-upload-store", "data"),
    "message": Output("datasets-upload-message", "children"),
    "section": Output("datasets-preview-section", "style"),
    "preview": Output("datasets-preview", "children"),
    "columns": Output("datasets-columns-grid", "rowData"),
    "name": Output("datasets-name", "value"),
    "key_choices": Output("datasets-key-columns", "data"),
    "keys": Output("datasets-key-columns", "value"),
    "decimal_mark": Output("datasets-decimal-mark", "value"),
}
DECIMAL_CHOICES = [
    {"value": "point", "label": "1,234.5: decimal point"},
    {"value": "comma", "label": "1.234,5: decimal comma"},
]
RUN_COLUMNS: list[dict[str, Any]] = [
    {"field": "id", "headerName": "Run", "minWidth": 80},
    {"field": "dataset", "filter": True, "minWidth": 140},
    {"field": "source", "minWidth": 100},
    {"field": "status", "filter": True, "minWidth": 120},
    *({"field": count, "minWidth": 105} for count in ("read", "loaded", "rejected", "duplicate")),
    {"field": "error", "minWidth": 200, "tooltipField": "error"},
    {"field": "finished", "minWidth": 190},
]
TYPE_COLUMNS = [
    {"field": "name", "headerName": "Column"},
    {"field": "label", "headerName": "In the file"},
    {
        "field": "type",
        "headerName": "Type (click to change)",
        "editable": True,
        "cellEditor": "agSelectCellEditor",
        "cellEditorParams": {"values": COLUMN_TYPES},
    },
]


def alert(title: str, message: str, color: str = "red", alert_id: str | None = None) -> Any:
    extra = {"id": alert_id} if alert_id else {}
    return dmc.Alert(message, title=title, color=color, variant="light", **extra)


def upload_area() -> Any:
    limit = f"{MAX_UPLOAD_BYTES // 2**20} MiB"
    zone = dcc.Upload(
        id="datasets-upload",
        children=dmc.Stack(
            [
                dmc.Text("Drag and drop a CSV file here, or click to browse", fw=500),
                dmc.Text(f"CSV, TSV or TXT, up to {limit}", size="sm", c="dimmed"),
            ],
            align="center",
            gap=4,
        ),
        max_size=MAX_UPLOAD_BYTES,
        accept=",".join(ALLOWED_SUFFIXES),
        multiple=False,
        style={
            "border": "2px dashed var(--mantine-color-gray-5)",
            "borderRadius": "8px",
            "padding": "28px",
            "cursor": "pointer",
        },
    )
    return EventListener(zone, id="datasets-upload-events", events=FILE_EVENTS)


def _target_form(existing: list[str]) -> Any:
    return dmc.Stack(
        [
            dmc.SegmentedControl(
                id="datasets-target",
                data=[
                    {"value": "new", "label": "New dataset"},
                    {"value": "existing", "label": "Existing dataset"},
                ],
                value="new",
            ),
            dmc.SimpleGrid(
                [
                    dmc.TextInput(
                        id="datasets-name",
                        label="New dataset name",
                        description="Lower-case letters, digits and _",
                    ),
                    dmc.Select(
                        id="datasets-existing",
                        label="Existing dataset",
                        description="Rows are checked against its columns",
                        data=existing,
                        searchable=True,
                        disabled=True,
                    ),
                    dmc.Select(
                        id="datasets-time-column",
                        label="Time column",
                        description="Empty: each row gets the time it was loaded",
                        data=[],
                        clearable=True,
                    ),
                    dmc.MultiSelect(
                        id="datasets-key-columns",
                        label="Dedupe key (optional)",
                        description="Rows with the same values here count once",
                        data=[],
                        clearable=True,
                    ),
                ],
                cols={"base": 1, "md": 2},
            ),
            dmc.Group(dmc.Button("Load", id="datasets-load", size="md")),
        ]
    )


def preview_section(existing: list[str]) -> Any:
    """The format, first rows, column types and target form; hidden until a file is read."""
    return html.Div(
        dmc.Stack(
            [
                html.Div(id="datasets-preview"),
                dmc.Group(
                    [
                        dmc.Text("Numbers are written with a", size="sm"),
                        dmc.SegmentedControl(
                            id="datasets-decimal-mark", data=DECIMAL_CHOICES, value="point"
                        ),
                        dmc.Text(
                            "as detected: change it if the numbers below were read the wrong way",
                            size="sm",
                            c="dimmed",
                        ),
                    ],
                    gap="xs",
                ),
                dmc.Title("Columns", order=4),
                dag.AgGrid(
                    id="datasets-columns-grid",
                    columnDefs=TYPE_COLUMNS,
                    rowData=[],
                    defaultColDef=FILL_WIDTH,  # hidden until a file is read
                    dashGridOptions={"domLayout": "autoHeight", "singleClickEdit": True},
                ),
                _target_form(existing),
            ]
        ),
        id="datasets-preview-section",
        style=HIDDEN,
    )


def upload_page(existing: list[str], runs: list[dict[str, Any]], datasets: Any) -> Any:
    return dmc.Stack(
        [
            dmc.Title("Datasets & upload", order=2),
            dmc.Text(
                "Upload a file, check how it is read and typed, then load it into a new "
                "or an existing dataset.",
                c="dimmed",
            ),
            upload_area(),
            html.Div(id="datasets-upload-check"),
            dcc.Store(id="datasets-upload-store"),
            dcc.Store(id="datasets-run-store"),
            dcc.Loading(
                [html.Div(id="datasets-upload-message"), preview_section(existing)],
                id="datasets-preview-loading",
                # Dash's stub types this dict as an empty TypedDict.
                target_components={"datasets-preview": "children"},  # type: ignore[arg-type]
                delay_show=200,
            ),
            dcc.Loading(
                html.Div(id="datasets-result"), id="datasets-result-loading", type="circle"
            ),
            html.Div(id="datasets-download-message"),
            dcc.Download(id="datasets-rejected-download"),
            datasets,
            refreshable_grid(
                "datasets-runs",
                "Recent runs",
                "The newest files loaded here or by the command line, into datasets you "
                "can see or by you. Scheduled runs are on the jobs page.",
                RUN_COLUMNS,
                runs,
            ),
        ],
        id="datasets-page",
    )


def preview_values(preview: UploadPreview, dataset_name: str | None) -> dict[str, Any]:
    """Fill PREVIEW_OUTPUTS from a stored upload's preview; without a dataset name (the same
    file read again) the form keeps its name and key."""
    names = [column.name for column in preview.columns]
    note = (
        f" Rows get their time of day from column {preview.time_of_day_column}."
        if preview.time_of_day_column
        else ""
    )
    grid = dag.AgGrid(
        id="datasets-preview-grid",
        columnDefs=[
            {"field": column.name, "headerName": column.label, "headerTooltip": column.name}
            for column in preview.columns
        ],
        rowData=preview.rows,
        dashGridOptions={"domLayout": "autoHeight"},
        defaultColDef={"minWidth": 110, "resizable": True},
    )
    return {
        "upload_id": preview.upload_id,
        "message": None,
        "section": {},
        "preview": dmc.Stack(
            [
                dmc.Text(f"Read as {preview.format}.{note}", id="datasets-format"),
                dmc.Title(f"The first {len(preview.rows)} rows", order=4),
                grid,
            ]
        ),
        "columns": [column.to_json() for column in preview.columns],
        "name": no_update if dataset_name is None else dataset_name,
        "key_choices": names,
        "keys": no_update if dataset_name is None else [],
        "decimal_mark": preview.decimal_mark,
    }


def refused_values(message: str) -> dict[str, Any]:
    """Fill PREVIEW_OUTPUTS for a refused upload: the reason, and no preview."""
    values: dict[str, Any] = dict.fromkeys(PREVIEW_OUTPUTS, no_update)
    values |= {
        "upload_id": None,
        "section": HIDDEN,
        "message": alert("The file was not stored", message, alert_id="datasets-upload-error"),
    }
    return values


def time_column_choices(rows: object, current: object) -> tuple[list[str], str | None]:
    """Offer the timestamp columns of the type grid's rows; keep ``current`` if still one.

    Without a current choice, suggest the likeliest time axis.
    """
    columns = []
    for row in rows if isinstance(rows, list) else []:
        try:
            columns.append(Column.from_json(row))
        except (TypeError, ValueError):
            continue  # the grid's rows come from the browser: skip what is not a column
    choices = [column.name for column in columns if column.type is ColumnType.TIMESTAMP]
    if current is None:
        return choices, suggest_time_column(columns)
    return choices, current if current in choices else None


def _count(label: str, value: int, color: str) -> Any:
    return dmc.Card(
        [
            dmc.Text(label, size="sm", c="dimmed"),
            dmc.Text(str(value), fw=700, size="xl", c=color, id=f"datasets-summary-{label}"),
        ],
        withBorder=True,
        padding="md",
    )


def load_summary(result: LoadResult, may_download: bool) -> Any:
    """Show a finished load: its counts, the rejected rows' download and where to look."""
    summary = result.summary
    explore = "/explore?" + urlencode({"dataset": summary.dataset})
    actions: list[Any] = [dmc.Anchor(f"Explore {summary.dataset}", href=explore)]
    if summary.rows_rejected and may_download:
        actions.insert(
            0, dmc.Button("Download rejected rows", id="datasets-rejected-button", variant="light")
        )
    verb = "Created" if summary.created else "Loaded into"
    return dmc.Stack(
        [
            dmc.Text(f"{verb} dataset {summary.dataset} (run {result.run_id}).", fw=500),
            dmc.SimpleGrid(
                [
                    _count("read", summary.rows_read, "blue"),
                    _count("loaded", summary.rows_loaded, "teal"),
                    _count("rejected", summary.rows_rejected, "red"),
                    _count("duplicate", summary.rows_duplicate, "gray"),
                ],
                cols={"base": 2, "sm": 4},
            ),
            dmc.Group(actions),
        ],
        id="datasets-summary",
    )
