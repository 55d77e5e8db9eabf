import dash
from dash import Input, Output, State, callback, no_update
from flask_login import current_user

from app.access import find_visible_dataset, visible_datasets
from app.components.live import live_page, page_chart
from app.components.live_chart import window_size
from app.queries import numeric_fields

dash.register_page(
    __name__,
    path="/live",
    name="Live",
    order=3,
    required_role="viewer",
    description="Graphs that move as data arrives, pushed over WebSockets.",
)


def layout(dataset=None, **_query):
    names = [found.name for found in visible_datasets(current_user)]
    chosen = dataset if dataset in names else (names[0] if names else None)
    numeric = _numeric(chosen)
    return live_page(names, chosen, numeric, numeric[:2])


@callback(
    Output("live-fields", "data"),
    Output("live-fields", "value"),
    Input("live-dataset", "value"),
    prevent_initial_call=True,
)
def choose_fields(name):
    numeric = _numeric(name)
    return numeric, numeric[:2]


@callback(
    Output("live-view", "children"),
    Output("live-note", "children"),
    Input("live-fields", "value"),
    Input("live-window", "value"),
    State("live-dataset", "value"),
    prevent_initial_call=True,
)
def show(fields, window, name):
    """Draw the page's chart anew for the chosen dataset, fields and window."""
    if not isinstance(name, str) or find_visible_dataset(current_user, name) is None:
        return no_update, "Choose a dataset you may see."
    chosen = fields if isinstance(fields, list) else []  # the chart plots only numeric ones
    return page_chart(name, chosen, window_size(window)), ""


def _numeric(name):
    """Return the numeric fields of the named dataset if the user may see it, else none."""
    if not isinstance(name, str) or not name:
        return []
    dataset = find_visible_dataset(current_user, name)
    return numeric_fields(dataset) if dataset is not None else []
