import dash
import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import Input, Output, callback

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


def layout(**_query):
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Users", order=2),
                    dmc.Button("Refresh", id="admin-users-refresh", variant="light"),
                ],
                justify="space-between",
            ),
            dmc.Text(
                "Create users and change roles with `insightwave users ...` for now; "
                "editing here arrives with issue #6.",
                c="dimmed",
                size="sm",
            ),
            dag.AgGrid(
                id="admin-users-grid",
                columnDefs=COLUMNS,
                rowData=user_rows(),
                columnSize="responsiveSizeToFit",
                dashGridOptions={"domLayout": "autoHeight"},
            ),
        ]
    )


@callback(
    Output("admin-users-grid", "rowData"),
    Input("admin-users-refresh", "n_clicks"),
    prevent_initial_call=True,
)
def refresh(_clicks):
    return user_rows()
