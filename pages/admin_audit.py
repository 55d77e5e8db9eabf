import dash
import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import Input, Output, callback

from app.queries import recent_audit_rows

dash.register_page(
    __name__,
    path="/admin/audit",
    name="Audit log",
    order=11,
    required_role="admin",
    description="Sign-ins, lockouts and user changes, newest first.",
)

COLUMNS = [
    {"field": "at", "headerName": "When"},
    {"field": "actor", "filter": True},
    {"field": "action", "filter": True},
    {"field": "target", "filter": True, "flex": 2},
    {"field": "ip", "headerName": "IP"},
]


def layout(**_query):
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Audit log", order=2),
                    dmc.Button("Refresh", id="admin-audit-refresh", variant="light"),
                ],
                justify="space-between",
            ),
            dmc.Text(
                "The newest 200 entries. Filters by user, action and time, and CSV export, "
                "arrive with issue #6.",
                c="dimmed",
                size="sm",
            ),
            dag.AgGrid(
                id="admin-audit-grid",
                columnDefs=COLUMNS,
                rowData=recent_audit_rows(),
                columnSize="responsiveSizeToFit",
                dashGridOptions={"domLayout": "autoHeight"},
            ),
        ]
    )


@callback(
    Output("admin-audit-grid", "rowData"),
    Input("admin-audit-refresh", "n_clicks"),
    prevent_initial_call=True,
)
def refresh(_clicks):
    return recent_audit_rows()
