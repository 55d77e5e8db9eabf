import time

import dash
from dash import Input, Output, State, callback, ctx, no_update
from flask_login import current_user

from app.components.messages import sentence
from app.components.user_actions import CONFIRM, apply, refusal, selected_email
from app.components.users import (
    ACTIVE_FILTER,
    LOCKED_FILTER,
    filter_value,
    refused,
    shown_once,
    user_rows,
    users_page,
)
from app.set_password import link_for
from app.users import UserError, create_user, find_users

dash.register_page(
    __name__,
    path="/admin/users",
    name="Users",
    order=10,
    required_role="admin",
    description="Everyone who can sign in: create, change roles, deactivate, reset, unlock.",
)


def layout(**_query):
    return users_page(user_rows(find_users()))


@callback(
    Output("admin-users-filters", "data"),
    Input("admin-users-refresh", "n_clicks"),
    Input("admin-users-changed", "data"),
    Input("admin-users-search", "value"),
    Input("admin-users-filter-role", "value"),
    Input("admin-users-filter-active", "value"),
    Input("admin-users-filter-locked", "value"),
    prevent_initial_call=True,
)
def filters(_clicks, _changed, search, role, active, locked):
    """Gather the filters; a new value each time, so the grid reloads even when they stay."""
    return {
        "search": search,
        "role": role,
        "active": active,
        "locked": locked,
        "at": time.time_ns(),
    }


@callback(
    Output("admin-users-grid", "rowData"),
    Input("admin-users-filters", "data"),
    prevent_initial_call=True,
)
def rows(chosen):
    """List the users that match the filters (anything unknown filters nothing)."""
    chosen = chosen if isinstance(chosen, dict) else {}
    search, role = chosen.get("search"), chosen.get("role")
    return user_rows(
        find_users(
            search[:254] if isinstance(search, str) else None,
            role if role in ("admin", "analyst", "viewer") else None,
            filter_value(chosen.get("active"), ACTIVE_FILTER),
            filter_value(chosen.get("locked"), LOCKED_FILTER),
        )
    )


@callback(
    Output("admin-users-secret", "children"),
    Output("admin-users-email", "error"),
    Output("admin-users-changed", "data"),
    Input("admin-users-create", "n_clicks"),
    State("admin-users-email", "value"),
    State("admin-users-role", "value"),
    State("admin-users-method", "value"),
    prevent_initial_call=True,
)
def create(_clicks, email, role, method):
    invite = method == "link"
    try:
        made = create_user(str(email or ""), str(role or ""), actor=current_user, invite=invite)
    except UserError as exc:
        return None, sentence(exc), no_update  # the last user's secret goes: it is not this one's
    if invite:
        secret = shown_once("Set-password link", link_for(made.user), made.user.email)
    else:
        secret = shown_once("Generated password", made.generated_password, made.user.email)
    return secret, None, time.time_ns()


@callback(
    Output("admin-users-confirm", "displayed"),
    Output("admin-users-confirm", "message"),
    Output("admin-users-pending", "data"),
    Output("admin-users-message", "children"),
    Output("admin-users-changed", "data", allow_duplicate=True),
    Output("admin-users-secret", "children", allow_duplicate=True),
    Input("admin-users-set-role", "n_clicks"),
    Input("admin-users-deactivate", "n_clicks"),
    Input("admin-users-reactivate", "n_clicks"),
    Input("admin-users-unlock", "n_clicks"),
    Input("admin-users-reset", "n_clicks"),
    Input("admin-users-confirm", "submit_n_clicks"),
    State("admin-users-grid", "selectedRows"),
    State("admin-users-new-role", "value"),
    State("admin-users-reset-method", "value"),
    State("admin-users-pending", "data"),
    prevent_initial_call=True,
)
def act(*args):
    """Ask before a destructive change and apply it once confirmed; apply the others at once."""
    selected, role, method, pending = args[-4:]
    trigger = ctx.triggered_id
    if trigger == "admin-users-confirm":
        if not isinstance(pending, dict):
            return False, no_update, None, refused("Nothing to confirm."), no_update, no_update
        message, secret = apply(pending)
        return False, no_update, None, message, time.time_ns(), secret
    email = selected_email(selected)
    if email is None:
        return False, no_update, None, refused("Select a user first."), no_update, no_update
    change = {"action": trigger, "email": email, "role": role, "method": method}
    if trigger in CONFIRM:
        doomed = refusal(change)  # nothing to confirm for a change that would be refused
        if doomed is not None:
            return False, no_update, None, refused(doomed), no_update, no_update
        question = CONFIRM[trigger].format(email=email, role=role)
        return True, question, change, "", no_update, no_update
    message, secret = apply(change)
    return False, no_update, None, message, time.time_ns(), secret
