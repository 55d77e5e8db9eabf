import dash
from dash import Input, Output, State, callback, dcc, no_update
from flask_login import current_user

from app.access import visible_datasets
from app.components.dataset_list import dataset_list
from app.components.upload import (
    PREVIEW_OUTPUTS,
    alert,
    load_summary,
    preview_values,
    refused_values,
    time_column_choices,
    upload_page,
)
from app.queries import dataset_overview
from app.uploads import (
    UploadError,
    check_chosen_file,
    decode_upload,
    load_upload,
    may_download_rejections,
    preview_upload,
    recent_runs,
    rejected_rows_text,
    save_upload,
    suggest_dataset_name,
    target_from_form,
)
from etl.pipeline import IngestError

dash.register_page(
    __name__,
    path="/datasets",
    name="Datasets & upload",
    order=4,
    required_role="analyst",
    description="Upload CSV files, define datasets and see rejected rows.",
)


def layout(**_query):
    visible = visible_datasets(current_user)
    existing = [dataset.name for dataset in visible]
    datasets = dataset_list(dataset_overview(visible))
    return upload_page(existing, recent_runs(current_user), datasets)


@callback(
    Output("datasets-upload-check", "children"),
    Input("datasets-upload-events", "event"),
    prevent_initial_call=True,
)
def check_chosen(event):
    message = check_chosen_file(event)
    return alert("This file cannot be uploaded", message) if message else None


@callback(
    output=PREVIEW_OUTPUTS,
    inputs=[Input("datasets-upload", "contents"), Input("datasets-decimal-mark", "value")],
    state=[State("datasets-upload", "filename"), State("datasets-upload-store", "data")],
    prevent_initial_call=True,
)
def show_preview(contents, decimal_mark, filename, upload_id):
    """A new file is read as detected; a decimal mark chosen reads the same file again."""
    try:
        if dash.ctx.triggered_id == "datasets-decimal-mark":
            return preview_values(preview_upload(upload_id, decimal_mark), None)
        preview = preview_upload(save_upload(decode_upload(filename, contents)))
    except UploadError as exc:
        return refused_values(str(exc))
    return preview_values(preview, suggest_dataset_name(filename))


@callback(
    Output("datasets-name", "disabled"),
    Output("datasets-existing", "disabled"),
    Output("datasets-time-column", "disabled"),
    Output("datasets-key-columns", "disabled"),
    Input("datasets-target", "value"),
    prevent_initial_call=True,
)
def switch_target(mode):
    existing = mode == "existing"
    return existing, not existing, existing, existing


@callback(
    Output("datasets-time-column", "data"),
    Output("datasets-time-column", "value"),
    Input("datasets-columns-grid", "rowData"),
    # An edit in the grid changes its rowData without triggering a callback on it.
    Input("datasets-columns-grid", "cellValueChanged"),
    Input("datasets-upload-store", "data"),
    State("datasets-time-column", "value"),
    prevent_initial_call=True,
)
def offer_time_columns(rows, _edited, _upload_id, current):
    """Follow type edits; a new upload starts from the suggested time column."""
    new_upload = "datasets-upload-store.data" in dash.ctx.triggered_prop_ids
    return time_column_choices(rows, None if new_upload else current)


@callback(
    Output("datasets-result", "children"),
    Output("datasets-run-store", "data"),
    Input("datasets-load", "n_clicks"),
    State("datasets-upload-store", "data"),
    State("datasets-target", "value"),
    State("datasets-name", "value"),
    State("datasets-existing", "value"),
    State("datasets-time-column", "value"),
    State("datasets-key-columns", "value"),
    State("datasets-columns-grid", "rowData"),
    State("datasets-decimal-mark", "value"),
    running=[(Output("datasets-load", "disabled"), True, False)],
    prevent_initial_call=True,
)
def load(_clicks, upload_id, mode, name, existing, time_column, keys, types, decimal_mark):
    try:
        preview = preview_upload(upload_id, decimal_mark)
        target = target_from_form(preview, mode, name, existing, time_column, keys, types)
        result = load_upload(upload_id, target, current_user)
    except (UploadError, IngestError) as exc:
        return alert("Nothing was loaded", str(exc), alert_id="datasets-load-error"), None
    may_download = may_download_rejections(current_user, result.run_id)
    return load_summary(result, may_download), result.run_id


@callback(
    Output("datasets-rejected-download", "data"),
    Output("datasets-download-message", "children"),
    Input("datasets-rejected-button", "n_clicks"),
    State("datasets-run-store", "data"),
    prevent_initial_call=True,
)
def download_rejected(clicks, run_id):
    if not clicks:  # the button just arrived with the summary: Dash calls this for it too
        return no_update, no_update
    try:
        text = rejected_rows_text(current_user, run_id)
    except UploadError as exc:
        return no_update, alert("No download", str(exc))
    return dcc.send_string(text, f"run-{run_id}-rejected.csv", type="text/csv"), None


@callback(
    Output("datasets-runs-grid", "rowData"),
    Input("datasets-runs-refresh", "n_clicks"),
    Input("datasets-run-store", "data"),
    prevent_initial_call=True,
)
def refresh_runs(_clicks, _run_id):
    return recent_runs(current_user)
