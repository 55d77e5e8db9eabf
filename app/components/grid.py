"""A titled data grid with a refresh button, for list pages."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_mantine_components as dmc


def refreshable_grid(
    prefix: str, title: str, note: str, columns: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> Any:
    """Lay out a grid with ids ``{prefix}-grid`` and ``{prefix}-refresh``."""
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title(title, order=2),
                    dmc.Button("Refresh", id=f"{prefix}-refresh", variant="light"),
                ],
                justify="space-between",
            ),
            dmc.Text(note, c="dimmed", size="sm"),
            dag.AgGrid(
                id=f"{prefix}-grid",
                columnDefs=columns,
                rowData=rows,
                columnSize="responsiveSizeToFit",
                dashGridOptions={"domLayout": "autoHeight"},
            ),
        ]
    )


# For a grid drawn hidden (shown later): its columns share its width whenever it is shown.
# columnSize="responsiveSizeToFit" sizes them as the grid is drawn, and warns (AG Grid #29)
# when it is hidden then.
FILL_WIDTH: dict[str, Any] = {"flex": 1}


def row_id(field: str = "id") -> str:
    """A ``getRowId`` naming each row by ``field``, as the string AG Grid requires.

    dash-ag-grid's expression evaluator knows no ``String()``; concatenation does the same.
    """
    return f"'' + params.data.{field}"


# Rows picked by a click, one at a time; the grid's ``selectedRows`` says which.
PICK_ONE_ROW: dict[str, Any] = {
    "domLayout": "autoHeight",
    "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
}


def picked(selected: object, field: str) -> object:
    """A field of the one row picked in a grid (``selectedRows`` as the browser sent it,
    unchecked), or None when not exactly one row is."""
    row = selected[0] if isinstance(selected, list) and len(selected) == 1 else None
    return row.get(field) if isinstance(row, dict) else None


def selectable_grid(
    grid_id: str, columns: list[Any], rows: list[dict[str, Any]], row_key: str
) -> dag.AgGrid:
    """A grid whose rows are picked one at a time by a click; ``row_key`` names a row."""
    return dag.AgGrid(
        id=grid_id,
        columnDefs=columns,
        rowData=rows,
        getRowId=row_id(row_key),
        columnSize="responsiveSizeToFit",
        dashGridOptions=PICK_ONE_ROW,
    )
