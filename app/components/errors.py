"""The 403 and 404 pages."""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
from dash import html


def error_page(code: int, title: str, message: str, page_id: str) -> Any:
    return dmc.Center(
        dmc.Stack(
            [
                dmc.Title(str(code), order=1, c="dimmed", style={"fontSize": "72px"}),
                dmc.Title(title, order=2),
                dmc.Text(message, c="dimmed"),
                dmc.Anchor("Back to the home page", href="/"),
            ],
            align="center",
            gap="sm",
        ),
        id=page_id,
        style={"minHeight": "50vh"},
    )


def forbidden_layout() -> Any:
    return error_page(
        403,
        "You don't have access to this page",
        "Your role does not include it. Ask an admin if you need it.",
        "error-403",
    )


def not_found_layout() -> Any:
    return error_page(404, "Page not found", "There is nothing at this address.", "error-404")


def placeholder(issue: int, what: str) -> Any:
    """Mark a page that a later issue builds, so nobody mistakes it for a finished feature."""
    return dmc.Alert(
        [html.P(what), html.P(f"Not built yet: this page arrives with issue #{issue}.")],
        title="Coming soon",
        color="yellow",
        variant="light",
        className="placeholder-page",
    )
