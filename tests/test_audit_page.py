"""The audit log: a row for each listed action, written with its change; filters and export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from app import audit as app_audit
from app.cli import main
from app.database import libpq_url
from app.extensions import db
from app.models import Role
from app.users import get_user
from etl.audit import record_audit
from tests.conftest import PASSWORD, AuthActions
from tests.test_jobs_page import call, form
from tests.test_upload_page import data_url

PLOTLY = Path(__file__).parent / "data" / "plotly"
AUDIT_CALLBACKS = ["admin-audit-grid.rowData", "admin-audit-download.data"]


def entries(database_url: str, action: str) -> list[dict]:
    """Every audit row with ``action``, oldest first."""
    with psycopg.connect(libpq_url(database_url), row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT actor_email, target, ip, user_agent, details FROM audit_log "
            "WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()


def one(database_url: str, action: str) -> dict:
    found = entries(database_url, action)
    assert len(found) == 1, f"{action}: {found}"
    return found[0]


def ok(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


# --- sign-in, sign-out and lockout ----------------------------------------------------------


def test_a_login_is_audited_with_address_and_browser(client, auth, database_url):
    auth.create("ana@example.com", Role.VIEWER)
    assert auth.login("ana@example.com").status_code == 302
    row = one(database_url, "login.success")
    assert row["actor_email"] == "ana@example.com"
    assert row["target"] == "ana@example.com"
    assert row["ip"] == "127.0.0.1"
    assert row["user_agent"]


def test_a_failed_login_is_audited_with_address(client, auth, database_url):
    auth.create("ana@example.com", Role.VIEWER)
    assert auth.login("ana@example.com", "wrong password").status_code == 401
    row = one(database_url, "login.failure")
    assert (row["target"], row["ip"]) == ("ana@example.com", "127.0.0.1")
    assert row["user_agent"]


def test_a_logout_is_audited(client, auth, database_url):
    auth.login_as(Role.VIEWER)
    auth.logout()
    row = one(database_url, "logout")
    assert (row["actor_email"], row["ip"]) == ("viewer@example.com", "127.0.0.1")


def test_a_lockout_is_audited_once(app, client, auth, database_url):
    auth.create("ana@example.com", Role.VIEWER)
    for _ in range(app.config["INSIGHTWAVE"].login_max_failures):
        auth.login("ana@example.com", "wrong password")
    row = one(database_url, "login.lockout")
    assert (row["target"], row["ip"]) == ("ana@example.com", "127.0.0.1")


# --- users and tokens, from the command line -------------------------------------------------


def test_user_creation_and_role_changes_are_audited(runner, database_url):
    runner.invoke(main, ["users", "create", "ana@example.com", "--role", "viewer"])
    runner.invoke(main, ["users", "set-role", "ana@example.com", "analyst"])
    runner.invoke(main, ["users", "deactivate", "ana@example.com"])
    assert one(database_url, "user.create")["target"] == "ana@example.com"
    role = one(database_url, "user.set_role")
    assert (role["target"], role["details"]) == (
        "ana@example.com",
        {"old": "viewer", "new": "analyst"},
    )
    assert one(database_url, "user.deactivate")["target"] == "ana@example.com"


def test_token_creation_and_revocation_are_audited(runner, database_url):
    runner.invoke(main, ["users", "create", "ana@example.com", "--role", "analyst"])
    runner.invoke(main, ["tokens", "create", "ana@example.com", "--name", "robot"])
    created = one(database_url, "token.create")
    assert (created["target"], created["details"]) == ("ana@example.com", {"name": "robot"})
    assert created["actor_email"] is None, "an operator made it, not ana"
    assert runner.invoke(main, ["tokens", "revoke", "1"]).exit_code == 0
    assert one(database_url, "token.revoke")["details"] == {"name": "robot"}


def test_a_retention_change_is_audited_and_a_refused_one_is_not(runner, database_url):
    runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", "tips"])
    assert runner.invoke(main, ["datasets", "set-retention", "tips", "30"]).exit_code == 0
    assert runner.invoke(main, ["datasets", "set-retention", "nope", "30"]).exit_code != 0
    row = one(database_url, "dataset.retention")
    assert (row["target"], row["details"]) == ("tips", {"days": 30})


# --- uploads, datasets and exports, through the pages ----------------------------------------


def upload_tips(client, dash_app, name: str = "tips", data: bytes | None = None) -> dict:
    contents = data_url(data if data is not None else (PLOTLY / "tips.csv").read_bytes())
    preview = ok(
        call(
            client,
            dash_app,
            "datasets-upload-store.data",
            {"datasets-upload.contents": contents, "datasets-upload.filename": "tips.csv"},
        )
    )
    values = {
        "datasets-load.n_clicks": 1,
        "datasets-upload-store.data": preview["datasets-upload-store"]["data"],
        "datasets-target.value": "new",
        "datasets-name.value": name,
    }
    return ok(call(client, dash_app, "datasets-result.children", values))


def test_an_upload_and_the_dataset_it_creates_are_audited(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    run_id = upload_tips(client, dash_app)["datasets-run-store"]["data"]
    uploaded = one(database_url, "upload")
    assert (uploaded["actor_email"], uploaded["target"], uploaded["ip"]) == (
        "analyst@example.com",
        "tips",
        "127.0.0.1",
    )
    assert uploaded["details"]["run"] == run_id
    assert uploaded["details"]["rows_loaded"] == 243
    created = one(database_url, "dataset.create")
    assert (created["actor_email"], created["target"]) == ("analyst@example.com", "tips")
    assert "total_bill" in created["details"]["columns"]


def test_a_refused_upload_leaves_no_audit_row(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    result = upload_tips(client, dash_app, name="Bad Name!")
    assert result["datasets-result"]["children"]["props"]["id"] == "datasets-load-error"
    assert entries(database_url, "upload") == entries(database_url, "dataset.create") == []


def test_a_pushed_batch_that_creates_a_dataset_is_audited(client, auth, database_url):
    token = auth.api_token("ana@example.com", Role.ANALYST)
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post("/api/v1/datasets/pushed/events", json=[{"x": 1}], headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    client.post("/api/v1/datasets/pushed/events", json=[{"x": 2}], headers=headers)
    created = one(database_url, "dataset.create")
    assert (created["actor_email"], created["target"]) == ("ana@example.com", "pushed")
    client.get("/api/v1/datasets/pushed/events", headers=headers)
    assert not [row for row in entries_like(database_url, "export.%")], "a read is no export"


def entries_like(database_url: str, pattern: str) -> list[tuple]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(
            "SELECT action FROM audit_log WHERE action LIKE %s", (pattern,)
        ).fetchall()


def test_the_explore_export_is_audited(runner, client, dash_app, auth, database_url):
    runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", "tips"])
    auth.login_as(Role.VIEWER)
    values = {
        "explore-export.n_clicks": 1,
        "explore-dataset.value": "tips",
        "explore-range.value": "24h",
        "explore-agg.value": "count",
    }
    assert "explore-download" in ok(call(client, dash_app, "explore-download.data", values))
    row = one(database_url, "export.explore")
    assert (row["actor_email"], row["target"], row["ip"]) == (
        "viewer@example.com",
        "tips",
        "127.0.0.1",
    )
    assert row["details"] == {"agg": "count", "range": "24h"}


def test_the_rejected_rows_download_is_audited(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    data = b"a,b\n1,2\n3\n"
    run_id = upload_tips(client, dash_app, name="ragged", data=data)["datasets-run-store"]["data"]
    values = {"datasets-rejected-button.n_clicks": 1, "datasets-run-store.data": run_id}
    assert "datasets-rejected-download" in ok(
        call(client, dash_app, "datasets-rejected-download.data", values)
    )
    row = one(database_url, "export.rejected_rows")
    assert (row["actor_email"], row["target"]) == ("analyst@example.com", f"run {run_id}")


# --- jobs, through the jobs page ------------------------------------------------------------


def create_job(client, dash_app, **values) -> int:
    return ok(call(client, dash_app, "jobs-create-message.children", form(**values)))[
        "jobs-created-store"
    ]["data"]


def act(client, dash_app, button: str, job_id: int) -> dict:
    values = {f"{button}.n_clicks": 1, "jobs-grid.selectedRows": [{"id": job_id}]}
    if button == "jobs-delete-confirm":
        values = {
            "jobs-delete-confirm.submit_n_clicks": 1,
            "jobs-grid.selectedRows": [{"id": job_id}],
        }
    return ok(call(client, dash_app, "jobs-action-message.children", values))


def test_every_job_action_is_audited_once(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    job_id = create_job(client, dash_app)
    created = one(database_url, "job.create")
    assert (created["actor_email"], created["target"], created["ip"]) == (
        "analyst@example.com",
        "ticks",
        "127.0.0.1",
    )
    assert one(database_url, "dataset.create")["target"] == "sensors"
    edit = {
        "jobs-edit-save.n_clicks": 1,
        "jobs-edit-job.data": job_id,
        "jobs-edit-name.value": "ticks2",
        "jobs-edit-rows.value": 5,
        "jobs-edit-schedule-kind.value": "cron",
        "jobs-edit-cron.value": "*/5 * * * *",
    }
    ok(call(client, dash_app, "jobs-edited-store.data", edit))
    edited = one(database_url, "job.edit")
    assert edited["target"] == "ticks2"
    assert edited["details"] == {
        "job_id": job_id,
        "name": "ticks2",
        "schedule": ["cron", "*/5 * * * *"],
    }
    for button, action in [
        ("jobs-pause", "job.pause"),
        ("jobs-resume", "job.resume"),
        ("jobs-run", "job.run"),
        ("jobs-delete-confirm", "job.delete"),
    ]:
        act(client, dash_app, button, job_id)
        row = one(database_url, action)
        assert (row["actor_email"], row["target"], row["details"]) == (
            "analyst@example.com",
            "ticks2",
            {"job_id": job_id},
        )


def test_a_retry_is_audited(app, client, dash_app, auth, database_url):
    auth.login_as(Role.ADMIN)
    job_id = create_job(client, dash_app)
    act(client, dash_app, "jobs-run", job_id)
    with psycopg.connect(libpq_url(database_url)) as conn:
        (run_id,) = conn.execute("UPDATE ingest_runs SET status = 'dead' RETURNING id").fetchone()
    values = {"jobs-runs-retry.n_clicks": 1, "jobs-runs-grid.selectedRows": [{"id": run_id}]}
    ok(call(client, dash_app, "jobs-runs-message.children", values))
    row = one(database_url, "run.retry")
    assert (row["actor_email"], row["target"]) == ("admin@example.com", f"run {run_id}")


def test_a_change_that_fails_after_its_audit_row_leaves_neither(
    client, dash_app, auth, database_url, monkeypatch
):
    auth.login_as(Role.ANALYST)
    job_id = create_job(client, dash_app)
    record_on = app_audit.record_on

    def record_then_fail(conn, *args, **kwargs):
        record_on(conn, *args, **kwargs)
        raise psycopg.errors.QueryCanceled("the change failed after its audit row")

    monkeypatch.setattr("app.job_views.audit.record_on", record_then_fail)
    with pytest.raises(psycopg.errors.QueryCanceled):  # the test client re-raises it
        call(
            client,
            dash_app,
            "jobs-action-message.children",
            {"jobs-pause.n_clicks": 1, "jobs-grid.selectedRows": [{"id": job_id}]},
        )
    assert entries(database_url, "job.pause") == []
    with psycopg.connect(libpq_url(database_url)) as conn:
        paused = conn.execute("SELECT paused FROM ingest_jobs WHERE id = %s", (job_id,)).fetchone()
    assert paused == (False,), "the pause went back with its audit row"


def test_a_refused_job_change_leaves_no_audit_row(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    job_id = create_job(client, dash_app)
    edit = {
        "jobs-edit-save.n_clicks": 1,
        "jobs-edit-job.data": job_id,
        "jobs-edit-name.value": "ticks",
        "jobs-edit-rows.value": 5,
        "jobs-edit-schedule-kind.value": "cron",
        "jobs-edit-cron.value": "not a cron",
    }
    ok(call(client, dash_app, "jobs-edited-store.data", edit))
    again = ok(call(client, dash_app, "jobs-create-message.children", form()))  # same name
    assert again["jobs-create-message"]["children"]["props"]["id"] == "jobs-create-error"
    assert entries(database_url, "job.edit") == []
    assert len(entries(database_url, "job.create")) == 1


def test_an_audit_row_outside_a_transaction_is_refused(database_url):
    with (
        psycopg.connect(libpq_url(database_url), autocommit=True) as conn,
        pytest.raises(RuntimeError, match="transaction"),
    ):
        record_audit(conn, "job.pause", None, "x", {})
    assert entries(database_url, "job.pause") == []


def test_job_changes_from_the_command_line_are_audited(runner, database_url):
    source = '{"rows": 5}'
    created = runner.invoke(
        main,
        ["jobs", "create", "feed", "--dataset", "ticks", "--source-kind", "demo"]
        + ["--source", source, "--every", "60"],
    )
    assert created.exit_code == 0, created.output
    for command in (["pause", "1"], ["resume", "1"], ["delete", "1"]):
        assert runner.invoke(main, ["jobs", *command]).exit_code == 0
    assert runner.invoke(main, ["jobs", "pause", "1"]).exit_code != 0  # gone: refused
    for action in ("job.create", "job.pause", "job.resume", "job.delete"):
        row = one(database_url, action)
        assert (row["actor_email"], row["target"], row["details"]["job_id"]) == (None, "feed", 1)
    assert one(database_url, "dataset.create")["target"] == "ticks"


def test_a_retry_and_a_rejected_rows_export_from_the_command_line_are_audited(
    runner, database_url, tmp_path
):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    runner.invoke(main, ["ingest", str(ragged), "--dataset", "ragged"])
    with psycopg.connect(libpq_url(database_url)) as conn:
        (run_id,) = conn.execute("UPDATE ingest_runs SET status = 'dead' RETURNING id").fetchone()
    assert runner.invoke(main, ["runs", "retry", str(run_id)]).exit_code == 0
    assert one(database_url, "run.retry")["target"] == f"run {run_id}"
    exported = runner.invoke(main, ["runs", "rejected", str(run_id)])
    assert exported.output.startswith("line,reason,raw")
    assert one(database_url, "export.rejected_rows")["target"] == f"run {run_id}"


# --- the page: filters, paging and export ----------------------------------------------------


@pytest.fixture
def logged(app, auth):
    """An admin signed in, and a log of sign-ins by two users plus a few job actions."""
    auth.create("ana@example.com", Role.VIEWER)
    auth.create("bob@example.com", Role.VIEWER)
    for email, password in [*[("ana@example.com", PASSWORD)] * 3, ("bob@example.com", PASSWORD)]:
        AuthActions(app, app.test_client()).login(email, password)
    auth.login("bob@example.com", "wrong")
    with app.app_context():
        app_audit.record("job.pause", get_user("bob@example.com"), "=HYPERLINK(1)")
        db.session.commit()
        db.session.remove()
    auth.login_as(Role.ADMIN)


def show(client, dash_app, **filters) -> dict:
    values = {"admin-audit-refresh.n_clicks": 1} | {
        f"admin-audit-{key}.value": value for key, value in filters.items()
    }
    return ok(call(client, dash_app, "admin-audit-grid.rowData", values))


def test_the_page_filters_by_user_action_and_time(client, dash_app, logged):
    shown = show(client, dash_app, actor="ana@example.com", action="login.success")
    rows = shown["admin-audit-grid"]["rowData"]
    assert len(rows) == 3
    assert {(row["actor"], row["action"]) for row in rows} == {("ana@example.com", "login.success")}
    assert shown["admin-audit-count"]["children"].startswith("3 entries match")
    family = show(client, dash_app, action="login.*")["admin-audit-grid"]["rowData"]
    assert {row["action"] for row in family} == {"login.success", "login.failure"}
    assert len(family) == 6  # ana three times, bob twice, the admin once
    later = show(client, dash_app, since="2999-01-01 00:00")["admin-audit-grid"]["rowData"]
    assert later == []
    earlier = show(client, dash_app, until="2999-01-01 00:00", actor="bob@example.com")
    assert len(earlier["admin-audit-grid"]["rowData"]) == 3


def test_a_bad_time_range_is_refused_with_a_message(client, dash_app, logged):
    shown = show(client, dash_app, since="2025-02-01 00:00", until="2025-01-01 00:00")
    assert "admin-audit-grid" not in shown
    assert shown["admin-audit-message"]["children"]["props"]["title"] == "Filter not applied"
    shown = show(client, dash_app, since="yesterday")
    assert "admin-audit-grid" not in shown


def test_pages_of_a_hundred(app, client, dash_app, auth, database_url):
    with app.app_context():
        for number in range(150):
            app_audit.record("job.run", None, f"job {number}")
        db.session.commit()
        db.session.remove()
    auth.login_as(Role.ADMIN)
    first = show(client, dash_app, action="job.run")
    assert len(first["admin-audit-grid"]["rowData"]) == 100
    assert first["admin-audit-page"] == {"total": 2, "value": 1}
    values = {"admin-audit-page.value": 2, "admin-audit-action.value": "job.run"}
    second = ok(call(client, dash_app, "admin-audit-grid.rowData", values))
    assert [row["target"] for row in second["admin-audit-grid"]["rowData"]][-1] == "job 0"
    assert len(second["admin-audit-grid"]["rowData"]) == 50


def test_the_export_holds_the_filtered_rows_neutralised_and_is_audited(
    client, dash_app, logged, database_url
):
    values = {"admin-audit-export.n_clicks": 1, "admin-audit-actor.value": "bob@example.com"}
    download = ok(call(client, dash_app, "admin-audit-download.data", values))
    content = download["admin-audit-download"]["data"]["content"]
    records = list(csv.reader(io.StringIO(content)))
    assert records[0] == ["at", "actor", "action", "target", "ip", "user_agent", "details"]
    assert [row[2] for row in records[1:]] == ["job.pause", "login.failure", "login.success"]
    assert {row[1] for row in records[1:]} == {"bob@example.com"}
    assert records[1][3] == "'=HYPERLINK(1)"
    row = one(database_url, "export.audit")
    assert row["actor_email"] == "admin@example.com"
    assert row["details"]["filters"]["user"] == "bob@example.com"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST], ids=str)
@pytest.mark.parametrize("output", AUDIT_CALLBACKS)
def test_only_admins_may_call_the_audit_callbacks(client, dash_app, auth, role, output):
    auth.login_as(role)
    values = {"admin-audit-refresh.n_clicks": 1, "admin-audit-export.n_clicks": 1}
    response = call(client, dash_app, output, values)
    assert response.status_code == 403
    assert client.get("/admin/audit").status_code == 403


def test_the_admin_opens_the_audit_page(client, auth):
    auth.login_as(Role.ADMIN)
    assert client.get("/admin/audit").status_code == 200


def test_the_demo_job_of_serve_demo_is_audited_as_the_system(database_url):
    from app.cli import DEMO_DATASET, _ensure_demo_job

    _ensure_demo_job(database_url)
    _ensure_demo_job(database_url)  # a second start finds the job: nothing new to audit
    created = one(database_url, "job.create")
    assert (created["actor_email"], created["target"]) == (None, "demo stream")
    assert created["details"]["dataset"] == DEMO_DATASET
    assert one(database_url, "dataset.create")["target"] == DEMO_DATASET
