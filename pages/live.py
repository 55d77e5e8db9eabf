import dash
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, no_update
from flask_login import current_user

from app.access import find_visible_dataset, visible_datasets
from app.components.live import MAX_FIELDS, live_page, window_figure
from app.queries import numeric_fields, recent_points

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
    return live_page(names, chosen)


@callback(
    Output("live-fields", "data"),
    Output("live-fields", "value"),
    Input("live-dataset", "value"),
)
def choose_fields(name):
    dataset = _visible(name)
    if dataset is None:
        return [], []
    fields = numeric_fields(dataset)
    return fields, fields[:2]


@callback(
    Output("live-graph", "figure"),
    Output("live-state", "data"),
    Output("live-note", "children"),
    Input("live-fields", "value"),
    Input("live-window", "value"),
    Input("live-resync", "data"),
    State("live-dataset", "value"),
)
def load_window(fields, window, resync, name):
    """Draw the newest points, then hand the last id to the browser to subscribe from."""
    dataset = _visible(name)
    if dataset is None:
        return no_update, None, "Choose a dataset you may see." if name else no_update
    allowed = numeric_fields(dataset)
    chosen = fields if isinstance(fields, list) else []
    fields = [field for field in chosen if field in allowed][:MAX_FIELDS]
    size = int(window) if str(window).isdigit() else 500
    points = recent_points(dataset, fields, size)
    state = {
        "dataset": dataset.name,
        "fields": fields,
        "window": size,
        "last_id": points["last_id"],
        "generation": resync or 0,
    }
    note = "" if fields else "This dataset has no numeric field to plot."
    return window_figure(points, fields), state, note


def _visible(name):
    """Return the named dataset if the user may see it; anything but a name gives None."""
    if not isinstance(name, str) or not name:
        return None
    return find_visible_dataset(current_user, name)


clientside_callback(
    ClientsideFunction("insightwave_live", "connect"),
    Output("live-ws", "send"),
    Output("live-status", "children"),
    Output("live-status", "color"),
    Input("live-state", "data"),
    Input("live-ws", "state"),
    Input("live-paused", "data"),
    Input("live-clock", "n_intervals"),
)

clientside_callback(
    ClientsideFunction("insightwave_live", "receive"),
    Output("live-graph", "extendData"),
    Output("live-resync", "data"),
    Output("live-updated", "children"),
    Input("live-ws", "message"),
    State("live-state", "data"),
    State("live-resync", "data"),
)

clientside_callback(
    ClientsideFunction("insightwave_live", "togglePause"),
    Output("live-paused", "data"),
    Output("live-pause", "children"),
    Input("live-pause", "n_clicks"),
    State("live-paused", "data"),
    prevent_initial_call=True,
)
