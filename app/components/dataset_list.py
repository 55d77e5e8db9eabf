"""The datasets list of the upload page: each dataset one may see, what it holds, who owns it."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from app.components.grid import refreshable_grid
from app.components.group_actions import VISIBLE_TO
from app.queries import DatasetOverview

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
    """The titled grid of datasets, ids ``datasets-list-grid`` and ``datasets-list-refresh``."""
    return refreshable_grid(
        "datasets-list",
        "Datasets",
        "Every dataset you may see: click a name to explore it. Events are counted from "
        "the hourly rollups.",
        COLUMNS,
        dataset_rows(overviews),
    )
