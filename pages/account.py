import dash
from dash import Input, Output, State, callback, ctx, no_update
from flask_login import current_user

from app.account import change_own_password, live_sessions, revoke_own_session, session_key
from app.components.account import account_page, alert, session_rows
from app.components.messages import sentence
from app.components.tokens import token_rows
from app.tokens import list_tokens
from app.users import UserError

dash.register_page(
    __name__,
    path="/account",
    name="Your account",
    order=9,
    required_role="viewer",
    description="Change your password; see and end your sessions; your API tokens.",
)


def layout(**_query):
    return account_page(current_user.email, sessions(), token_rows(list_tokens(current_user)))


def sessions():
    return session_rows(live_sessions(current_user), session_key(current_user.session_id))


@callback(
    Output("account-password-message", "children"),
    Output("account-sessions-grid", "rowData", allow_duplicate=True),
    Input("account-change-password", "n_clicks"),
    State("account-current", "value"),
    State("account-new", "value"),
    State("account-confirm", "value"),
    prevent_initial_call=True,
)
def change_password(_clicks, current, new, confirm):
    """Change the password (the current one first); other sessions are signed out."""
    values = [value if isinstance(value, str) else "" for value in (current, new, confirm)]
    try:
        change_own_password(current_user, *values)
    except UserError as exc:
        return alert(sentence(exc), False, "account-password"), no_update
    text = "Password changed. Your other sessions are signed out."
    return alert(text, True, "account-password"), sessions()


@callback(
    Output("account-revoke-confirm", "displayed"),
    Output("account-revoke-confirm", "message"),
    Output("account-sessions-grid", "rowData"),
    Output("account-sessions-message", "children"),
    Output("account-location", "href"),
    Input("account-revoke", "n_clicks"),
    Input("account-revoke-confirm", "submit_n_clicks"),
    State("account-sessions-grid", "selectedRows"),
    prevent_initial_call=True,
)
def revoke(_clicks, _confirmed, selected):
    """Ask, then end the selected session; ending this browser's own signs it out."""
    key = selected[0].get("id") if isinstance(selected, list) and len(selected) == 1 else None
    if not isinstance(key, str):
        return (
            False,
            no_update,
            no_update,
            alert("Select a session first.", False, "account-sessions"),
            no_update,
        )
    mine = key == session_key(current_user.session_id)
    if ctx.triggered_id == "account-revoke":
        question = "Sign out this browser?" if mine else "Sign out that session?"
        return True, question, no_update, "", no_update
    if not revoke_own_session(current_user, key):
        return (
            False,
            no_update,
            sessions(),
            alert("That session has ended already.", False, "account-sessions"),
            no_update,
        )
    if mine:
        return False, no_update, no_update, "", "/login"
    return (
        False,
        no_update,
        sessions(),
        alert("Session signed out.", True, "account-sessions"),
        no_update,
    )
