import dash
from dash import Input, Output, callback

from app.components.grid import refreshable_grid
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
NOTE = (
    "The newest 200 entries. Filters by user, action and time, and CSV export, "
    "arrive with issue #6."
)


def layout(**_query):
    return refreshable_grid("admin-audit", "Audit log", NOTE, COLUMNS, recent_audit_rows())


@callback(
    Output("admin-audit-grid", "rowData"),
    Input("admin-audit-refresh", "n_clicks"),
    prevent_initial_call=True,
)
def refresh(_clicks):
    return recent_audit_rows()
