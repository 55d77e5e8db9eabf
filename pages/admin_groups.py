import time

import dash
from dash import Input, Output, State, callback, ctx, no_update

from app.components.group_actions import apply, ask
from app.components.groups import (
    done,
    groups_page,
    page_data,
    refused,
    selected_name,
    strings,
)
from app.components.messages import sentence
from app.groups import AccessError, dataset_access, get_group, list_datasets, members_of
from app.users import UserError

dash.register_page(
    __name__,
    path="/admin/groups",
    name="Groups",
    order=11,
    required_role="admin",
    description="Groups of users, and who may see each restricted dataset.",
)


def layout(**_query):
    return groups_page()


@callback(
    Output("admin-groups-grid", "rowData"),
    Output("admin-groups-datasets-grid", "rowData"),
    Output("admin-groups-members", "data"),
    Output("admin-groups-grant-users", "data"),
    Output("admin-groups-grant-groups", "data"),
    Input("admin-groups-changed", "data"),
    prevent_initial_call=True,
)
def refresh(_changed):
    group_rows, dataset_rows, emails, names = page_data()
    return group_rows, dataset_rows, emails, emails, names


@callback(
    Output("admin-groups-members", "value"),
    Input("admin-groups-grid", "selectedRows"),
    prevent_initial_call=True,
)
def show_members(selected):
    name = selected_name(selected)
    try:
        return members_of(get_group(name)) if name else []
    except AccessError:
        return []


@callback(
    Output("admin-groups-visibility", "value"),
    Output("admin-groups-grant-groups", "value"),
    Output("admin-groups-grant-users", "value"),
    Input("admin-groups-datasets-grid", "selectedRows"),
    prevent_initial_call=True,
)
def show_access(selected):
    name = selected_name(selected)
    dataset = next((d for d in list_datasets() if d.name == name), None)
    if dataset is None:
        return None, [], []
    access = dataset_access(dataset)
    return access.visibility, access.groups, access.users


@callback(
    Output("admin-groups-confirm", "displayed"),
    Output("admin-groups-confirm", "message"),
    Output("admin-groups-pending", "data"),
    Output("admin-groups-message", "children"),
    Output("admin-groups-changed", "data"),
    Input("admin-groups-create", "n_clicks"),
    Input("admin-groups-delete", "n_clicks"),
    Input("admin-groups-save-members", "n_clicks"),
    Input("admin-groups-save-access", "n_clicks"),
    Input("admin-groups-confirm", "submit_n_clicks"),
    State("admin-groups-name", "value"),
    State("admin-groups-grid", "selectedRows"),
    State("admin-groups-members", "value"),
    State("admin-groups-datasets-grid", "selectedRows"),
    State("admin-groups-visibility", "value"),
    State("admin-groups-grant-groups", "value"),
    State("admin-groups-grant-users", "value"),
    State("admin-groups-pending", "data"),
    prevent_initial_call=True,
)
def act(*args):
    """Apply a change at once when it takes no access away; otherwise ask first."""
    name, group_rows, members, dataset_rows, visibility, groups, users, pending = args[5:]
    trigger = ctx.triggered_id
    if trigger == "admin-groups-confirm":
        change = pending if isinstance(pending, dict) else {}
    else:
        change = {
            "action": trigger,
            "name": name if trigger == "admin-groups-create" else selected_name(group_rows),
            "members": strings(members),
            "dataset": selected_name(dataset_rows),
            "access": [str(visibility), strings(groups), strings(users)],
        }
    try:
        question = None if trigger == "admin-groups-confirm" else ask(change)
        if question:
            return True, question, change, "", no_update
        message = apply(change)
    except (AccessError, UserError) as exc:
        return False, no_update, None, refused(sentence(exc)), no_update
    return False, no_update, None, done(message), time.time_ns()
