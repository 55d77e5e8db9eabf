"""The ingest jobs page: its typed functions, its callbacks over HTTP, bad input, a browser."""

from __future__ import annotations

import time

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from app.components.jobs import STATUS_COLOURS
from app.database import libpq_url
from app.extensions import db
from app.job_views import (
    JobViewError,
    act_on_job,
    create_job_for,
    edit_job_for,
    job_form_for,
    list_jobs_for,
    list_runs_for,
    retry_run_for,
)
from app.models import RUN_STATUSES, Role
from app.users import get_user
from etl.connection import connect
from etl.scheduler import LeaderScheduler
from tests.conftest import wait_for as wait_until
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_roles import callback_body, csrf_header

DEMO = {
    "name": "ticks",
    "dataset": "sensors",
    "source_kind": "demo",
    "rows": 5,
    "schedule_kind": "interval",
    "interval": 60,
}
JOB_CALLBACKS = [
    "jobs-path.style",
    "jobs-create-message.children",
    "jobs-action-message.children",
    "jobs-grid.rowData",
    "jobs-runs-grid.rowData",
    "jobs-runs-message.children",
    "jobs-edited-store.data",
    "jobs-edit-cron.style",
]


@pytest.fixture
def users(app, auth):
    """Create two analysts and an admin; return a lookup by short name (in an app context)."""
    emails = {"ana": "ana@example.com", "bob": "bob@example.com", "root": "root@example.com"}
    for short, email in emails.items():
        auth.create(email, Role.ADMIN if short == "root" else Role.ANALYST)
    return lambda short: get_user(emails[short])


def scalar(database_url: str, query: str, *params: object) -> object:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query, params).fetchone()[0]


def call(client, dash_app, part: str, values: dict[str, object]):
    """POST the callback with output ``part`` as dash-renderer would; ``values``: 'id.prop'."""
    (output,) = [key for key in dash_app.callback_map if part in key.strip(".").split("...")]
    spec = dash_app.callback_map[output]

    def items(kind: str) -> list[dict[str, object]]:
        return [
            {**item, "value": values.get(f"{item['id']}.{item['property']}")} for item in spec[kind]
        ]

    inputs = items("inputs")
    changed = [
        f"{i['id']}.{i['property']}" for i in inputs if f"{i['id']}.{i['property']}" in values
    ]
    outputs = [
        {"id": piece.split(".")[0], "property": piece.split(".")[1]}
        for piece in output.strip(".").split("...")
    ]
    body = {
        "output": output,
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": changed,
        "state": items("state"),
    }
    return client.post("/_dash-update-component", json=body, headers=csrf_header(client))


def job_count(database_url: str) -> object:
    return scalar(database_url, "SELECT count(*) FROM ingest_jobs")


def form(**values: object) -> dict[str, object]:
    """The create callback's inputs and state, from create_job_for's form keys."""
    ids = {key: "jobs-" + key.replace("_", "-") for key in {**DEMO, **values}}
    return {"jobs-create.n_clicks": 1} | {
        f"{ids[key]}.value": value for key, value in ({**DEMO, **values}).items()
    }


def response_of(response, component_id: str) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"][component_id]


def alert_id(response, component_id: str) -> str:
    return response_of(response, component_id)["children"]["props"]["id"]


def alert_text(response, component_id: str) -> str:
    return response_of(response, component_id)["children"]["props"]["children"]


# --- the typed functions, called directly ---------------------------------------------------


def test_a_demo_job_and_an_interval_file_job_are_created_and_listed(app, users, data_dir):
    with app.app_context():
        ana = users("ana")
        demo_id = create_job_for(ana, DEMO)
        file_form = DEMO | {"name": "drops", "source_kind": "file", "path": "drop/in.csv"}
        file_id = create_job_for(ana, file_form | {"interval": "30"})
        jobs = {job["id"]: job for job in list_jobs_for(ana)}
        db.session.remove()
    assert jobs[demo_id] | {"id": 0} == {
        "id": 0,
        "name": "ticks",
        "dataset": "sensors",
        "source": "demo",
        "where": "5 rows per tick",
        "schedule": "every 60 s",
        "paused": False,
        "owner": "ana@example.com",
    }
    assert jobs[file_id]["where"] == str((data_dir / "inbox" / "drop" / "in.csv").resolve())
    assert jobs[file_id]["schedule"] == "every 30 s"


def test_a_cron_job_is_listed_with_its_expression(app, users):
    with app.app_context():
        create_job_for(users("ana"), DEMO | {"schedule_kind": "cron", "cron": "*/15 * * * *"})
        (job,) = list_jobs_for(users("ana"))
        db.session.remove()
    assert job["schedule"] == "cron */15 * * * *"


def test_job_creation_is_audited(app, users, database_url):
    with app.app_context():
        create_job_for(users("ana"), DEMO)
        db.session.remove()
    action, target = "job.create", "ticks"
    query = "SELECT count(*) FROM audit_log WHERE action = %s AND target = %s"
    assert scalar(database_url, query, action, target) == 1


def test_an_analyst_sees_and_changes_only_their_own_jobs(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        assert list_jobs_for(users("bob")) == []
        for action in ("pause", "run", "delete"):
            with pytest.raises(JobViewError, match="only on your own jobs"):
                act_on_job(users("bob"), action, job_id)
        db.session.remove()
    assert scalar(database_url, "SELECT paused FROM ingest_jobs WHERE id = %s", job_id) is False
    assert scalar(database_url, "SELECT count(*) FROM ingest_runs") == 0


def test_an_admin_pauses_resumes_and_deletes_anyones_job(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        assert [job["id"] for job in list_jobs_for(users("root"))] == [job_id]
        assert "paused" in act_on_job(users("root"), "pause", job_id)
        assert list_jobs_for(users("ana"))[0]["paused"] is True
        with pytest.raises(JobViewError, match="queued nothing"):
            act_on_job(users("ana"), "run", job_id)  # a paused job does not run
        act_on_job(users("root"), "resume", job_id)
        assert list_jobs_for(users("ana"))[0]["paused"] is False
        act_on_job(users("root"), "delete", job_id)
        assert list_jobs_for(users("ana")) == []
        db.session.remove()
    assert job_count(database_url) == 0


def test_run_now_says_which_run_is_still_retrying(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        act_on_job(users("ana"), "run", job_id)
        run_id = scalar(database_url, "UPDATE ingest_runs SET status = 'failed' RETURNING id")
        with pytest.raises(JobViewError, match=f"its run {run_id} is still loading or waiting"):
            act_on_job(users("ana"), "run", job_id)
        db.session.remove()
    assert scalar(database_url, "SELECT count(*) FROM ingest_runs") == 1


def test_run_now_queues_a_run_of_the_job(app, users):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        assert "queued run" in act_on_job(users("ana"), "run", job_id)
        runs = list_runs_for(users("ana"))
        assert list_runs_for(users("bob"), "queued") == runs  # the demo dataset is public
        assert list_runs_for(users("ana"), "dead") == []
        db.session.remove()
    assert [(run["job"], run["dataset"], run["status"]) for run in runs] == [
        ("ticks", "sensors", "queued")
    ]
    assert runs[0]["attempts"] == "0/5"


def test_every_run_status_has_its_own_colour_in_the_runs_grid():
    assert sorted(STATUS_COLOURS) == sorted(RUN_STATUSES)
    assert len(set(STATUS_COLOURS.values())) == len(RUN_STATUSES)


def test_the_owner_or_an_admin_retries_a_dead_run(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        act_on_job(users("ana"), "run", job_id)
        (run,) = list_runs_for(users("ana"))
        db.session.remove()
    status = "SELECT status FROM ingest_runs WHERE id = %s"
    scalar(
        database_url,
        "UPDATE ingest_runs SET status = 'dead', attempts = 5 WHERE id = %s RETURNING id",
        run["id"],
    )
    with app.app_context():
        with pytest.raises(JobViewError, match="only on your own jobs"):
            retry_run_for(users("bob"), run["id"])
        assert scalar(database_url, status, run["id"]) == "dead"
        assert "queued again" in retry_run_for(users("ana"), run["id"])
        with pytest.raises(JobViewError, match="is queued: only failed, dead or refused"):
            retry_run_for(users("root"), run["id"])
        db.session.remove()
    assert scalar(database_url, status, run["id"]) == "queued"
    scalar(
        database_url, "UPDATE ingest_runs SET status = 'dead' WHERE id = %s RETURNING id", run["id"]
    )
    with app.app_context():
        assert "queued again" in retry_run_for(users("root"), run["id"])
        db.session.remove()


def test_a_job_opens_in_the_edit_form_as_it_was_created(app, users):
    with app.app_context():
        create_job_for(users("ana"), DEMO)  # makes the dataset
        file_form = DEMO | {"name": "drops", "source_kind": "file", "path": "drop/in.csv"}
        job_id = create_job_for(
            users("ana"), file_form | {"schedule_kind": "cron", "cron": "0 * * * *"}
        )
        values = job_form_for(users("ana"), job_id)
        with pytest.raises(JobViewError, match="only on your own jobs"):
            job_form_for(users("bob"), job_id)
        assert job_form_for(users("root"), job_id) == values
        db.session.remove()
    assert values == {
        "id": job_id,
        "name": "drops",
        "source_kind": "file",
        "path": "drop/in.csv",
        "folder": None,
        "url": None,
        "rows": None,
        "schedule_kind": "cron",
        "interval": None,
        "cron": "0 * * * *",
    }


def test_an_edit_changes_name_source_and_schedule(app, users, data_dir):
    with app.app_context():
        create_job_for(users("ana"), DEMO)  # makes the dataset
        file_form = DEMO | {"name": "drops", "source_kind": "file", "path": "drop/in.csv"}
        job_id = create_job_for(users("ana"), file_form)
        edited = {"name": "drops2", "path": "other.csv", "schedule_kind": "interval", "interval": 5}
        assert "every 5 s" in edit_job_for(users("ana"), job_id, edited)
        (job,) = [job for job in list_jobs_for(users("ana")) if job["id"] == job_id]
        db.session.remove()
    assert (job["name"], job["schedule"], job["source"]) == ("drops2", "every 5 s", "file")
    assert job["where"] == str((data_dir / "inbox" / "other.csv").resolve())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "Name the job"),
        ({"name": "a/b"}, "plain text"),
        ({"rows": 0}, "Demo rows"),
        ({"schedule_kind": "cron", "cron": "every day"}, "not valid"),
        ({"interval": 0}, "at least 1"),
        ({"interval": 999_999_999_999}, "at most 31622400"),
        ({"schedule_kind": "weekly"}, "Choose a schedule"),
    ],
)
def test_a_bad_edit_is_refused_and_changes_nothing(app, users, database_url, change, message):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO)
        with pytest.raises(JobViewError, match=message):
            edit_job_for(users("ana"), job_id, DEMO | change)
        db.session.remove()
    row = "SELECT name, source->>'rows', trigger_spec FROM ingest_jobs"
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute(row).fetchone() == ("ticks", "5", "60")


def test_an_analyst_cannot_edit_another_analysts_job(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("bob"), DEMO)
        with pytest.raises(JobViewError, match="only on your own jobs"):
            edit_job_for(users("ana"), job_id, DEMO | {"name": "mine now"})
        edit_job_for(users("root"), job_id, DEMO | {"name": "renamed by root"})
        db.session.remove()
    assert scalar(database_url, "SELECT name FROM ingest_jobs") == "renamed by root"


def test_an_edited_schedule_is_followed_by_the_scheduler(app, users, database_url):
    with app.app_context():
        job_id = create_job_for(users("ana"), DEMO | {"interval": 3600})
        db.session.remove()
    runs = "SELECT count(*) FROM ingest_runs WHERE job_id = %s"
    with connect(database_url, "test") as conn, LeaderScheduler(database_url, sync_interval=0.1):
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0] == 1,
            5,
            "the job to be scheduled",
        )
        assert scalar(database_url, runs, job_id) == 0, "an hourly job does not fire at once"
        with app.app_context():
            edit_job_for(users("ana"), job_id, DEMO | {"interval": 1})
            db.session.remove()
        wait_until(lambda: scalar(database_url, runs, job_id) >= 2, 10, "the edited job to fire")


# --- the callbacks, over HTTP ---------------------------------------------------------------


def test_analyst_creates_pauses_and_runs_a_job_through_callbacks(
    client, dash_app, auth, database_url
):
    auth.login_as(Role.ANALYST)
    created = call(client, dash_app, "jobs-create-message.children", form())
    assert alert_id(created, "jobs-create-message") == "jobs-create-done", alert_text(
        created, "jobs-create-message"
    )
    job_id = response_of(created, "jobs-created-store")["data"]
    listed = call(client, dash_app, "jobs-grid.rowData", {"jobs-created-store.data": job_id})
    assert [row["name"] for row in response_of(listed, "jobs-grid")["rowData"]] == ["ticks"]
    selected = {"jobs-grid.selectedRows": [{"id": job_id}]}
    for button in ("jobs-pause", "jobs-resume", "jobs-run"):
        acted = call(
            client, dash_app, "jobs-action-message.children", {f"{button}.n_clicks": 1, **selected}
        )
        assert alert_id(acted, "jobs-action-message") == "jobs-action-done"
    runs = call(client, dash_app, "jobs-runs-grid.rowData", {"jobs-runs-status.value": "all"})
    assert [row["job"] for row in response_of(runs, "jobs-runs-grid")["rowData"]] == ["ticks"]
    assert scalar(database_url, "SELECT paused FROM ingest_jobs") is False


def test_delete_asks_first_then_deletes_on_confirmation(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    created = call(client, dash_app, "jobs-create-message.children", form())
    selected = {
        "jobs-grid.selectedRows": [{"id": response_of(created, "jobs-created-store")["data"]}]
    }
    asked = call(
        client, dash_app, "jobs-action-message.children", {"jobs-delete.n_clicks": 1, **selected}
    )
    assert response_of(asked, "jobs-delete-confirm")["displayed"] is True
    assert job_count(database_url) == 1
    confirmed = call(
        client,
        dash_app,
        "jobs-action-message.children",
        {"jobs-delete-confirm.submit_n_clicks": 1, **selected},
    )
    assert alert_id(confirmed, "jobs-action-message") == "jobs-action-done"
    assert job_count(database_url) == 0


def test_an_analyst_acting_on_another_analysts_job_is_refused(
    app, client, dash_app, auth, users, database_url
):
    with app.app_context():
        job_id = create_job_for(users("bob"), DEMO)
        db.session.remove()
    auth.login("ana@example.com")
    selected = {"jobs-grid.selectedRows": [{"id": job_id}]}
    for button in ("jobs-pause", "jobs-run", "jobs-delete-confirm"):
        prop = "submit_n_clicks" if button == "jobs-delete-confirm" else "n_clicks"
        acted = call(
            client, dash_app, "jobs-action-message.children", {f"{button}.{prop}": 1, **selected}
        )
        assert "only on your own jobs" in alert_text(acted, "jobs-action-message")
    assert job_count(database_url) == 1
    assert scalar(database_url, "SELECT count(*) FROM ingest_runs") == 0


@pytest.mark.parametrize("who", ["ana", "bob", "root"])
def test_retry_through_the_callback_is_for_the_owner_or_an_admin(
    app, client, dash_app, auth, users, database_url, who
):
    with app.app_context():
        act_on_job(users("ana"), "run", create_job_for(users("ana"), DEMO))
        db.session.remove()
    scalar(database_url, "UPDATE ingest_runs SET status = 'dead' RETURNING id")
    auth.login(f"{who}@example.com")
    run_id = scalar(database_url, "SELECT id FROM ingest_runs")
    retried = call(
        client,
        dash_app,
        "jobs-runs-message.children",
        {"jobs-runs-retry.n_clicks": 1, "jobs-runs-grid.selectedRows": [{"id": run_id}]},
    )
    status = scalar(database_url, "SELECT status FROM ingest_runs")
    if who in ("ana", "root"):  # ana owns the job
        assert alert_id(retried, "jobs-runs-message") == "jobs-retry-done"
        assert status == "queued"
    else:
        assert "your own jobs" in alert_text(retried, "jobs-runs-message").lower()
        assert "jobs-retry-store" not in retried.get_json()["response"]
        assert status == "dead"


def edit_values(job_id: object, **values: object) -> dict[str, object]:
    fields = {"name": "ticks", "rows": 5, "schedule_kind": "interval", "interval": 60} | values
    return {"jobs-edit-save.n_clicks": 1, "jobs-edit-job.data": job_id} | {
        f"jobs-edit-{key.replace('_', '-')}.value": value for key, value in fields.items()
    }


def test_analyst_edits_a_job_through_the_dialog(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    created = call(client, dash_app, "jobs-create-message.children", form())
    job_id = response_of(created, "jobs-created-store")["data"]
    opened = call(
        client,
        dash_app,
        "jobs-edited-store.data",
        {"jobs-edit.n_clicks": 1, "jobs-grid.selectedRows": [{"id": job_id}]},
    ).get_json()["response"]
    assert opened["jobs-edit-modal"]["opened"] is True
    assert opened["jobs-edit-job"]["data"] == job_id
    assert opened["jobs-edit-name"]["value"] == "ticks"
    assert opened["jobs-edit-rows"]["value"] == 5
    assert opened["jobs-edit-interval"]["value"] == 60
    assert opened["jobs-edit-rows"]["style"] == {}
    assert opened["jobs-edit-path"]["style"] == {"display": "none"}
    saved = call(
        client,
        dash_app,
        "jobs-edited-store.data",
        edit_values(job_id, name="tocks", schedule_kind="cron", cron="*/5 * * * *"),
    )
    assert alert_id(saved, "jobs-edit-message") == "jobs-edit-done"
    assert response_of(saved, "jobs-edit-modal")["opened"] is False
    listed = call(client, dash_app, "jobs-grid.rowData", {"jobs-edited-store.data": job_id})
    (row,) = response_of(listed, "jobs-grid")["rowData"]
    assert (row["name"], row["schedule"]) == ("tocks", "cron */5 * * * *")
    refused = call(
        client,
        dash_app,
        "jobs-edited-store.data",
        edit_values(job_id, cron="x", schedule_kind="cron"),
    )
    assert alert_id(refused, "jobs-edit-error") == "jobs-edit-refused"
    assert "jobs-edit-modal" not in refused.get_json()["response"]  # the dialog stays open
    assert scalar(database_url, "SELECT trigger_spec FROM ingest_jobs") == "*/5 * * * *"


def test_another_analysts_job_neither_opens_nor_saves(
    app, client, dash_app, auth, users, database_url
):
    with app.app_context():
        job_id = create_job_for(users("bob"), DEMO)
        db.session.remove()
    auth.login("ana@example.com")
    opened = call(
        client,
        dash_app,
        "jobs-edited-store.data",
        {"jobs-edit.n_clicks": 1, "jobs-grid.selectedRows": [{"id": job_id}]},
    )
    assert "only on your own jobs" in alert_text(opened, "jobs-edit-message")
    assert "jobs-edit-modal" not in opened.get_json()["response"]
    saved = call(client, dash_app, "jobs-edited-store.data", edit_values(job_id, name="mine"))
    assert "only on your own jobs" in alert_text(saved, "jobs-edit-error")
    assert scalar(database_url, "SELECT name FROM ingest_jobs") == "ticks"


@pytest.mark.parametrize("output", JOB_CALLBACKS)
def test_a_viewer_gets_403_from_every_jobs_callback(client, dash_app, auth, output):
    auth.login_as(Role.VIEWER)
    (key,) = [key for key in dash_app.callback_map if output in key]
    response = client.post(
        "/_dash-update-component", json=callback_body(dash_app, key), headers=csrf_header(client)
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_the_viewer_gets_403_on_the_jobs_page(client, auth):
    auth.login_as(Role.VIEWER)
    assert client.get("/jobs").status_code == 403


# --- bad input ------------------------------------------------------------------------------

BAD_FORMS = {
    "cron": ({"schedule_kind": "cron", "cron": "not a cron"}, "not valid"),
    "interval": ({"interval": "-5"}, "at least 1"),
    "negative-number": ({"interval": -5}, "at least 1"),
    "huge-interval": ({"interval": 999_999_999_999}, "at most 31622400"),
    "file-url": ({"source_kind": "url", "url": "file:///etc/passwd"}, "http"),
    "absolute-path": ({"source_kind": "file", "path": "/etc/passwd"}, "inside the inbox"),
    "dotdot-path": ({"source_kind": "file", "path": "../../etc/passwd"}, "inside the inbox"),
    "dotdot-folder": ({"source_kind": "folder", "folder": "../"}, "inside the inbox"),
    "nul-path": ({"source_kind": "file", "path": "a\x00b.csv"}, "inside the inbox"),
    "slash-name": ({"name": "../../etc/passwd"}, "without slashes"),
    "dotdot-dataset": ({"dataset": "../sensors"}, "not valid"),
    "missing-dataset": ({"source_kind": "url", "url": "https://93.184.215.14/a.csv"}, "no dataset"),
    "no-name": ({"name": None}, "Name the job"),
    "no-rows": ({"rows": ""}, "demo rows"),
    "too-many-rows": ({"rows": 10**9}, "demo rows"),
    "bad-kind": ({"source_kind": "ftp"}, "Choose a source"),
    "bad-time-column": ({"time_column": "nope"}, "no column"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMS))
def test_bad_input_gets_an_alert_and_stores_nothing(client, dash_app, auth, database_url, case):
    values, message = BAD_FORMS[case]
    auth.login_as(Role.ANALYST)
    response = call(client, dash_app, "jobs-create-message.children", form(**values))
    assert alert_id(response, "jobs-create-message") == "jobs-create-error"
    assert message.lower() in alert_text(response, "jobs-create-message").lower()
    assert job_count(database_url) == 0
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0


def test_a_demo_job_cannot_take_a_hidden_datasets_name(
    app, client, dash_app, auth, users, database_url
):
    with app.app_context():
        create_job_for(users("bob"), DEMO)
        db.session.remove()
    scalar(database_url, "UPDATE datasets SET visibility = 'restricted' RETURNING id")
    auth.login("ana@example.com")
    response = call(client, dash_app, "jobs-create-message.children", form(name="mine"))
    assert "is taken" in alert_text(response, "jobs-create-message")
    assert job_count(database_url) == 1


def test_a_forged_selection_is_refused(client, dash_app, auth):
    auth.login_as(Role.ADMIN)
    for forged in ([{"id": "1; DROP TABLE x"}], [{"id": True}], "nope", [{"id": 2**70}]):
        acted = call(
            client,
            dash_app,
            "jobs-action-message.children",
            {"jobs-pause.n_clicks": 1, "jobs-grid.selectedRows": forged},
        )
        assert "Select a job first" in alert_text(acted, "jobs-action-message")


# --- in a real browser ----------------------------------------------------------------------


@pytest.mark.browser
def test_admin_creates_a_demo_job_runs_it_and_sees_the_run(driver, base_url, auth):  # noqa: F811
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    driver.get(f"{base_url}/jobs")
    wait_for(driver, "#jobs-name").send_keys("every_second")
    driver.find_element(By.ID, "jobs-dataset").send_keys("demo_ticks")
    interval = driver.find_element(By.ID, "jobs-interval")
    interval.send_keys("\b\b1")
    driver.find_element(By.ID, "jobs-create").click()
    wait_for(driver, "#jobs-create-done")
    row = "#jobs-grid .ag-row [col-id='name']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, row), "every_second")
    )
    driver.find_element(By.CSS_SELECTOR, row).click()
    driver.find_element(By.ID, "jobs-run").click()
    wait_for(driver, "#jobs-action-done")
    run_row = "#jobs-runs-grid .ag-row [col-id='job']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, run_row), "every_second")
    )
    schedule = driver.find_element(By.CSS_SELECTOR, "#jobs-grid .ag-row [col-id='schedule']")
    assert schedule.text == "every 1 s"
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})",
        driver.find_element(By.ID, "jobs-action-done"),
    )
    screenshot(driver, "jobs.png")

    edit = driver.find_element(By.ID, "jobs-edit")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", edit)
    edit.click()
    name = WebDriverWait(driver, WAIT).until(
        ec.visibility_of_element_located((By.ID, "jobs-edit-name"))
    )
    assert name.get_attribute("value") == "every_second"
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("every_minute")
    interval = driver.find_element(By.ID, "jobs-edit-interval")
    interval.send_keys(Keys.CONTROL, "a")
    interval.send_keys("60")
    screenshot(driver, "jobs-edit.png")
    driver.find_element(By.ID, "jobs-edit-save").click()
    wait_for(driver, "#jobs-edit-done")
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "#jobs-grid .ag-row [col-id='schedule']"), "every 60 s"
        )
    )
    assert driver.find_element(By.CSS_SELECTOR, row).text == "every_minute"

    driver.get(f"{base_url}/admin/audit")
    actions = "#admin-audit-grid .ag-row [col-id='action']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, actions), "job.edit")
    )
    shown = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, actions)}
    assert {"job.edit", "job.run", "job.create", "login.success"} <= shown
    screenshot(driver, "audit.png")


@pytest.mark.browser
def test_the_grids_keep_every_row_and_act_on_the_picked_one(app, driver, base_url, auth):  # noqa: F811
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    with app.app_context():
        ana = get_user("ana@example.com")
        for name in ("first", "second", "third"):
            create_job_for(ana, DEMO | {"name": name, "dataset": f"set_{name}"})
        db.session.remove()
    driver.get(f"{base_url}/jobs")
    WebDriverWait(driver, WAIT).until(lambda d: d.title == "Ingest jobs · Insight-Wave")
    names = "#jobs-grid .ag-row [col-id='name']"

    def shown() -> list[str]:
        return sorted(cell.text for cell in driver.find_elements(By.CSS_SELECTOR, names))

    WebDriverWait(driver, WAIT).until(lambda _: shown() == ["first", "second", "third"])
    row = next(c for c in driver.find_elements(By.CSS_SELECTOR, names) if c.text == "second")
    row.click()
    driver.find_element(By.ID, "jobs-pause").click()
    done = wait_for(driver, "#jobs-action-done")
    assert "second" in done.text
    # The grid's new rows arrive after the action: every job is still listed, the one picked
    # still picked, so the next action is on it too.
    time.sleep(1.5)
    assert shown() == ["first", "second", "third"]
    driver.find_element(By.ID, "jobs-resume").click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "jobs-action-message"), "active again")
    )
    assert "second" in driver.find_element(By.ID, "jobs-action-message").text
    driver.find_element(By.ID, "jobs-refresh").click()
    time.sleep(1)
    assert shown() == ["first", "second", "third"]
    grid_warnings = [e["message"] for e in driver.get_log("browser") if "AG Grid" in e["message"]]
    assert grid_warnings == []

    driver.delete_all_cookies()
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    driver.get(f"{base_url}/admin/audit")
    actions = "#admin-audit-grid .ag-row [col-id='action']"
    WebDriverWait(driver, WAIT).until(
        lambda _: len(driver.find_elements(By.CSS_SELECTOR, actions)) > 3
    )
    before = len(driver.find_elements(By.CSS_SELECTOR, actions))
    driver.find_element(By.ID, "admin-audit-refresh").click()
    time.sleep(1)
    assert len(driver.find_elements(By.CSS_SELECTOR, actions)) >= before


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8050/healthz", "http://169.254.169.254/latest", "http://10.0.0.1/"]
)
def test_a_url_job_from_the_browser_may_not_reach_private_addresses(url):
    from etl.sources import check_public_url

    with pytest.raises(ValueError, match="local or private address"):
        check_public_url(url)
