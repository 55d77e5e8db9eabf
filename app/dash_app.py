"""The Dash app, mounted on the Flask server built by ``create_app``."""

from __future__ import annotations

from pathlib import Path

import dash
from flask import Flask

from app.components.shell import register_shell_callbacks, shell_layout

ROOT = Path(__file__).resolve().parent.parent
TITLE = "Insight-Wave"


def build_dash(server: Flask) -> dash.Dash:
    """Create the multi-page Dash app (pages from ``pages/``) on ``server``."""
    dash_app = dash.Dash(
        "app",
        server=server,  # type: ignore[arg-type]
        use_pages=True,
        pages_folder=str(ROOT / "pages"),
        assets_folder=str(ROOT / "assets"),
        title=TITLE,
        update_title=None,  # type: ignore[arg-type]
        # Page layouts depend on the user's role, so not every id exists in every layout.
        suppress_callback_exceptions=True,
    )
    for page in dash.page_registry.values():  # each browser tab names its page
        page["title"] = f"{page['name']} · {TITLE}"
    dash_app.layout = shell_layout
    register_shell_callbacks(dash_app)
    return dash_app
