import dash
from dash import Input, Output, State, callback, no_update
from flask_login import current_user

from app.components.tokens import expiry_from, shown_once, token_rows, tokens_page
from app.tokens import create_token, list_tokens, revoke_token

dash.register_page(
    __name__,
    path="/tokens",
    name="API tokens",
    order=8,
    required_role="viewer",
    description="Create and revoke your own tokens for programs that call the API.",
)

MAX_NAME = 100


def layout(**_query):
    return tokens_page(token_rows(list_tokens(current_user)))


@callback(
    Output("tokens-created", "children"),
    Output("tokens-grid", "rowData", allow_duplicate=True),
    Output("tokens-name", "error"),
    Input("tokens-create", "n_clicks"),
    State("tokens-name", "value"),
    State("tokens-expiry", "value"),
    prevent_initial_call=True,
)
def create(_clicks, name, expiry):
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return no_update, no_update, f"Give the token a name of 1 to {MAX_NAME} characters."
    try:
        expires_at = expiry_from(expiry)
    except ValueError as exc:
        return no_update, no_update, str(exc)
    token = create_token(current_user, name, expires_at, actor=current_user)
    return shown_once(token), token_rows(list_tokens(current_user)), None


@callback(
    Output("tokens-revoke-confirm", "displayed"),
    Output("tokens-revoke-confirm", "message"),
    Output("tokens-message", "children", allow_duplicate=True),
    Input("tokens-revoke", "n_clicks"),
    State("tokens-grid", "selectedRows"),
    prevent_initial_call=True,
)
def ask_to_revoke(_clicks, selected):
    if not selected:
        return False, no_update, "Select a token first."
    return (
        True,
        f"Revoke the token {selected[0].get('name')!r}? Programs using it stop working.",
        "",
    )


@callback(
    Output("tokens-grid", "rowData"),
    Output("tokens-message", "children"),
    Input("tokens-revoke-confirm", "submit_n_clicks"),
    State("tokens-grid", "selectedRows"),
    prevent_initial_call=True,
)
def revoke(_submitted, selected):
    token_id = _selected_id(selected)
    if token_id is None or not revoke_token(token_id, current_user):
        return no_update, "That token is not yours or is already revoked."
    return token_rows(list_tokens(current_user)), "Token revoked."


def _selected_id(selected):
    """Return the id of the one selected grid row, or None for anything else."""
    if not isinstance(selected, list) or len(selected) != 1 or not isinstance(selected[0], dict):
        return None
    token_id = str(selected[0].get("id", ""))
    return int(token_id) if token_id.isdigit() and len(token_id) < 19 else None
