import dash
from dash import Input, Output, callback

from app.components.grid import refreshable_grid
from app.queries import user_rows

dash.register_page(
    __name__,
    path="/admin/users",
    name="Users",
    order=10,
    required_role="admin",
    description="Everyone who can sign in, their roles and their state.",
)

COLUMNS = [
    {"field": "email", "filter": True, "flex": 2},
    {"field": "role", "filter": True},
    {"field": "active"},
    {"field": "locked_until", "headerName": "Locked until"},
    {"field": "last_login_at", "headerName": "Last sign-in"},
    {"field": "created_at", "headerName": "Created"},
]
NOTE = (
    "Create users and change roles with `insightwave users ...` for now; "
    "editing here arrives with issue #6."
)


def layout(**_query):
    return refreshable_grid("admin-users", "Users", NOTE, COLUMNS, user_rows())


@callback(
    Output("admin-users-grid", "rowData"),
    Input("admin-users-refresh", "n_clicks"),
    prevent_initial_call=True,
)
def refresh(_clicks):
    return user_rows()
