import dash
from dash import Input, Output, State, callback, ctx, dcc, no_update
from flask_login import current_user

from app import audit
from app.components.audit import audit_page, count_text, pages
from app.components.upload import alert
from app.queries import (
    AuditFilter,
    AuditFilterError,
    audit_choices,
    audit_count,
    audit_csv,
    audit_rows,
)

dash.register_page(
    __name__,
    path="/admin/audit",
    name="Audit log",
    order=11,
    required_role="admin",
    description="Who did what and when: sign-ins, changes and exports, newest first.",
)
FILTERS = [
    State("admin-audit-actor", "value"),
    State("admin-audit-action", "value"),
    State("admin-audit-since", "value"),
    State("admin-audit-until", "value"),
]


def layout(**_query):
    actors, actions = audit_choices()
    return audit_page(actors, actions, audit_rows(), audit_count())


@callback(
    Output("admin-audit-grid", "rowData"),
    Output("admin-audit-count", "children"),
    Output("admin-audit-page", "total"),
    Output("admin-audit-page", "value"),
    Output("admin-audit-message", "children"),
    Input("admin-audit-refresh", "n_clicks"),
    Input("admin-audit-page", "value"),
    *(Input(item.component_id, item.component_property) for item in FILTERS),
    prevent_initial_call=True,
)
def show(_clicks, page, actor, action, since, until):
    """Show one page of the entries that match the filters; a new filter starts at page 1."""
    try:
        found = AuditFilter.from_form(actor, action, since, until)
    except AuditFilterError as exc:
        return no_update, no_update, no_update, no_update, alert("Filter not applied", str(exc))
    if ctx.triggered_id != "admin-audit-page" or not isinstance(page, int) or page < 1:
        page = 1
    count = audit_count(found)
    page = min(page, pages(count))
    return audit_rows(found, page), count_text(count, page), pages(count), page, None


@callback(
    Output("admin-audit-download", "data"),
    Input("admin-audit-export", "n_clicks"),
    *FILTERS,
    prevent_initial_call=True,
)
def export(_clicks, actor, action, since, until):
    """Export the entries that match the filters as CSV, and audit the export."""
    try:
        found = AuditFilter.from_form(actor, action, since, until)
    except AuditFilterError:
        return no_update
    content = audit_csv(found)
    filters = {"user": found.actor, "action": found.action, "since": since, "until": until}
    audit.record_export("audit", current_user, None, filters=filters)
    return dcc.send_string(content, "audit-log.csv", type="text/csv")
