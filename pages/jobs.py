import dash
from dash import Input, Output, State, callback, ctx, no_update
from flask_login import current_user

from app.access import visible_datasets
from app.components import job_actions
from app.components.jobs import (
    EDIT_FIELDS,
    EDIT_SCHEDULE_FIELDS,
    EDIT_SOURCE_FIELDS,
    FORM_FIELDS,
    SCHEDULE_FIELDS,
    SOURCE_FIELDS,
    field_styles,
    jobs_page,
    schedule_styles,
)
from app.components.upload import alert
from app.job_views import (
    JobViewError,
    inbox_dir,
    is_admin,
    list_jobs_for,
    list_runs_for,
    retry_run_for,
    selected_id,
)

dash.register_page(
    __name__,
    path="/jobs",
    name="Ingest jobs",
    order=5,
    required_role="analyst",
    description="Scheduled ingest jobs, their runs and retries.",
)


def layout(**_query):
    datasets = [dataset.name for dataset in visible_datasets(current_user)]
    jobs, runs = list_jobs_for(current_user), list_runs_for(current_user)
    return jobs_page(datasets, str(inbox_dir()), jobs, runs, is_admin(current_user))


@callback(
    [Output(field, "style") for field in [*SOURCE_FIELDS.values(), *SCHEDULE_FIELDS.values()]],
    Input("jobs-source-kind", "value"),
    Input("jobs-schedule-kind", "value"),
    prevent_initial_call=True,
)
def switch_fields(source_kind, schedule_kind):
    return field_styles(source_kind, schedule_kind)


@callback(
    Output("jobs-create-message", "children"),
    Output("jobs-created-store", "data"),
    inputs={"_clicks": Input("jobs-create", "n_clicks")},
    state={key: State(field, "value") for key, field in FORM_FIELDS.items()},
    running=[(Output("jobs-create", "disabled"), True, False)],
    prevent_initial_call=True,
)
def create(_clicks, **form):
    return job_actions.create(current_user, form)


@callback(
    Output("jobs-action-message", "children"),
    Output("jobs-action-store", "data"),
    Output("jobs-delete-confirm", "displayed"),
    Output("jobs-delete-confirm", "message"),
    Input("jobs-pause", "n_clicks"),
    Input("jobs-resume", "n_clicks"),
    Input("jobs-run", "n_clicks"),
    Input("jobs-delete", "n_clicks"),
    Input("jobs-delete-confirm", "submit_n_clicks"),
    State("jobs-grid", "selectedRows"),
    prevent_initial_call=True,
)
def act(_pause, _resume, _run, _delete, _confirmed, selected):
    return job_actions.act(current_user, ctx.triggered_id, selected)


@callback(
    output={
        "opened": Output("jobs-edit-modal", "opened"),
        "job": Output("jobs-edit-job", "data"),
        "values": {key: Output(field, "value") for key, field in EDIT_FIELDS.items()},
        "styles": [Output(field, "style") for field in EDIT_SOURCE_FIELDS.values()],
        "error": Output("jobs-edit-error", "children"),
        "message": Output("jobs-edit-message", "children"),
        "edited": Output("jobs-edited-store", "data"),
    },
    inputs={
        "_open": Input("jobs-edit", "n_clicks"),
        "_save": Input("jobs-edit-save", "n_clicks"),
        "selected": State("jobs-grid", "selectedRows"),
        "job_id": State("jobs-edit-job", "data"),
        "form": {key: State(field, "value") for key, field in EDIT_FIELDS.items()},
    },
    prevent_initial_call=True,
)
def edit(_open, _save, selected, job_id, form):
    """Open the edit dialog on the selected job, or save it; the server checks both."""
    return job_actions.edit(current_user, ctx.triggered_id, selected, job_id, form)


@callback(
    [Output(field, "style") for field in EDIT_SCHEDULE_FIELDS.values()],
    Input("jobs-edit-schedule-kind", "value"),
)
def switch_edit_schedule(schedule_kind):
    return schedule_styles(schedule_kind)


@callback(
    Output("jobs-grid", "rowData"),
    Input("jobs-refresh", "n_clicks"),
    Input("jobs-created-store", "data"),
    Input("jobs-action-store", "data"),
    Input("jobs-edited-store", "data"),
    prevent_initial_call=True,
)
def refresh_jobs(_clicks, _created, _acted, _edited):
    return list_jobs_for(current_user)


@callback(
    Output("jobs-runs-grid", "rowData"),
    Input("jobs-runs-refresh", "n_clicks"),
    Input("jobs-runs-interval", "n_intervals"),
    Input("jobs-runs-status", "value"),
    Input("jobs-action-store", "data"),
    Input("jobs-retry-store", "data"),
    prevent_initial_call=True,
)
def refresh_runs(_clicks, _ticks, status, _acted, _retried):
    return list_runs_for(current_user, status)


@callback(
    Output("jobs-runs-message", "children"),
    Output("jobs-retry-store", "data"),
    Input("jobs-runs-retry", "n_clicks"),
    State("jobs-runs-grid", "selectedRows"),
    prevent_initial_call=True,
)
def retry(_clicks, selected):
    try:
        message = retry_run_for(current_user, selected_id(selected))
    except JobViewError as exc:
        return alert("Refused", str(exc), alert_id="jobs-retry-error"), no_update
    return alert("Queued", message, color="teal", alert_id="jobs-retry-done"), message
