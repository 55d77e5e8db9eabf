"""The live page's pieces: its controls around one live chart (``app.components.live_chart``)."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import html

from app.components.live_chart import DEFAULT_WINDOW, MAX_FIELDS, WINDOWS, live_chart
from app.components.live_save import save_controls

PAGE_CHART = "page"  # the key of the page's live chart


def live_page(
    datasets: list[str], chosen: str | None, numeric: list[str], fields: list[str]
) -> dmc.Stack:
    """The controls, then the chart of ``fields`` (of the ``numeric`` ones) of ``chosen``."""
    return dmc.Stack(
        [
            dmc.Title("Live", order=2),
            dmc.Group(
                [
                    dmc.Select(
                        id="live-dataset",
                        label="Dataset",
                        data=datasets,
                        value=chosen,
                        searchable=True,
                        w=260,
                    ),
                    dmc.MultiSelect(
                        id="live-fields",
                        label="Fields",
                        data=numeric,
                        value=fields,
                        maxValues=MAX_FIELDS,
                        w=360,
                    ),
                    dmc.Select(
                        id="live-window",
                        label="Points on screen",
                        data=[str(size) for size in WINDOWS],
                        value=str(DEFAULT_WINDOW),
                        w=150,
                    ),
                ],
                align="flex-start",
            ),
            save_controls(),
            dmc.Text(
                "No dataset yet: upload a CSV or start with --demo." if not datasets else "",
                id="live-note",
                c="dimmed",
                size="sm",
            ),
            html.Div(page_chart(chosen or "", fields, DEFAULT_WINDOW), id="live-view"),
        ],
        gap="md",
    )


def page_chart(dataset: str, fields: list[str], window: int) -> dmc.Stack:
    """The page's one live chart; the page draws it anew when its controls change."""
    return live_chart(PAGE_CHART, dataset, fields[:MAX_FIELDS], window, title="As it arrives")
