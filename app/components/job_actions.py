"""What the jobs page's buttons do, through app.job_views, which checks the user's right to
each job and audits each change."""

from __future__ import annotations

from typing import Any

from dash import no_update

from app.components.jobs import EDIT_FIELDS, edit_reply, edit_styles
from app.components.upload import alert
from app.job_views import (
    JobViewError,
    act_on_job,
    create_job_for,
    edit_job_for,
    job_form_for,
    selected_id,
)
from app.models import User

ACTION_BUTTONS = {"jobs-pause": "pause", "jobs-resume": "resume", "jobs-run": "run"}


def create(user: User, form: dict[str, Any]) -> tuple[Any, Any]:
    """The form's job, scheduled: (message, the new job's id)."""
    try:
        job_id = create_job_for(user, form)
    except JobViewError as exc:
        return alert("The job was not created", str(exc), alert_id="jobs-create-error"), no_update
    message = f"Job {job_id} is scheduled."
    return alert("Created", message, color="teal", alert_id="jobs-create-done"), job_id


def act(user: User, trigger: object, selected: object) -> tuple[Any, Any, bool, Any]:
    """Pause, resume, run now or delete the selected job (delete asks first): (message, what
    was done, confirm shown, confirm question)."""
    job_id = selected_id(selected)
    if trigger == "jobs-delete":
        if job_id is None:
            return alert("Nothing to delete", "Select a job first."), no_update, False, no_update
        return no_update, no_update, True, f"Delete job {job_id}? Its past runs are kept."
    action = ACTION_BUTTONS.get(str(trigger), "delete")
    try:
        message = act_on_job(user, action, job_id)
    except JobViewError as exc:
        return alert("Refused", str(exc), alert_id="jobs-action-error"), no_update, False, no_update
    done = alert("Done", message, color="teal", alert_id="jobs-action-done")
    return done, {"action": action, "job": job_id}, False, no_update


def edit(
    user: User, trigger: object, selected: object, job_id: object, form: dict[str, Any]
) -> dict[str, Any]:
    """Open the edit dialog on the selected job, or save it (the edit callback's outputs)."""
    if trigger == "jobs-edit":
        try:
            values = job_form_for(user, selected_id(selected))
        except JobViewError as exc:
            return edit_reply(message=alert("Nothing to edit", str(exc)))
        shown = {key: values[key] for key in EDIT_FIELDS}
        styles = edit_styles(values["source_kind"])
        return edit_reply(opened=True, job=values["id"], values=shown, styles=styles)
    try:
        message = edit_job_for(user, job_id, form)
    except JobViewError as exc:
        return edit_reply(error=alert("Not saved", str(exc), alert_id="jobs-edit-refused"))
    done = alert("Saved", message, color="teal", alert_id="jobs-edit-done")
    return edit_reply(opened=False, message=done, edited=job_id)
