"""The users page: create, filter, change role, deactivate, reset, unlock; set-password links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous.timed import TimestampSigner
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role, User
from app.users import UserError, set_active, set_role
from tests.conftest import CSRF_INPUT, PASSWORD, AuthActions
from tests.test_browser import FETCH_CALLBACK, WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import call
from tests.test_roles import callback_body, csrf_header

ADMIN = "admin@example.com"
VERA = "vera@example.com"
USER_CALLBACKS = [
    "admin-users-filters.data",
    "admin-users-grid.rowData",
    "admin-users-email.error",
    "admin-users-confirm.displayed",
]


@pytest.fixture
def admin(client, dash_app, auth):
    auth.login_as(Role.ADMIN)
    return dash_app


def audit_rows(app, action: str, target: str = VERA) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).where(AuditEntry.action == action, AuditEntry.target == target)
        rows = list(db.session.scalars(query))
        db.session.remove()
    return rows


def user_state(app, email: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        db.session.expunge(user)
        db.session.remove()
    return user


def create(client, dash_app, email=VERA, role="viewer", method="password"):
    return call(
        client,
        dash_app,
        "admin-users-email.error",
        {
            "admin-users-create.n_clicks": 1,
            "admin-users-email.value": email,
            "admin-users-role.value": role,
            "admin-users-method.value": method,
        },
    )


def secret_of(response) -> str:
    """The generated password or link that the answer shows once."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == "admin-users-secret-value":
                found.append(node["props"]["children"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(response.get_json())
    assert len(found) == 1, str_json(response)
    return found[0]


def str_json(response) -> str:
    return json.dumps(response.get_json())


def act(client, dash_app, button: str, email: str, **state):
    """Press an action button with ``email`` selected; return the callback's answer."""
    values = {
        f"admin-users-{button}.n_clicks": 1,
        "admin-users-grid.selectedRows": [{"email": email}],
        "admin-users-new-role.value": state.get("role", "analyst"),
        "admin-users-reset-method.value": state.get("method", "password"),
    }
    return call(client, dash_app, "admin-users-confirm.displayed", values)


def confirm(client, dash_app, asked):
    """Accept the confirmation dialog the answer ``asked`` opened."""
    answer = asked.get_json()["response"]
    assert answer["admin-users-confirm"]["displayed"] is True
    pending = answer["admin-users-pending"]["data"]
    values = {"admin-users-confirm.submit_n_clicks": 1, "admin-users-pending.data": pending}
    return call(client, dash_app, "admin-users-confirm.displayed", values)


def message(response) -> str:
    return str_json(response).split('"admin-users-message"', 1)[1]


def test_admin_creates_a_viewer_with_a_one_time_password_shown_once(app, client, admin):
    response = create(client, admin)
    assert response.status_code == 200, response.get_data(as_text=True)
    password = secret_of(response)
    assert password not in client.get("/_dash-layout").get_data(as_text=True)
    (row,) = audit_rows(app, "user.create")
    assert (row.actor_email, row.target, row.details) == (
        ADMIN,
        VERA,
        {"role": "viewer", "password": "generated"},
    )
    viewer = AuthActions(app, app.test_client())
    assert viewer.login(VERA, password).status_code == 302


@pytest.mark.parametrize(
    ("email", "role", "error"),
    [
        ("not an email", "viewer", "not a valid email"),
        ("", "viewer", "Enter an email address"),
        ("x" * 300 + "@example.com", "viewer", "'" + "x" * 57 + "...' is not a valid email"),
        (VERA, "boss", "Unknown role"),
    ],
)
def test_bad_new_user_forms_are_refused_with_a_message(client, admin, email, role, error):
    response = create(client, admin, email=email, role=role)
    answer = response.get_json()["response"]
    assert error in answer["admin-users-email"]["error"]
    assert answer["admin-users-secret"]["children"] is None  # no earlier user's password beside it


def test_an_email_already_taken_is_refused(client, admin, auth):
    auth.create(VERA, "viewer")
    response = create(client, admin)
    assert "already exists" in response.get_json()["response"]["admin-users-email"]["error"]


def test_a_set_password_link_works_once(app, client, admin):
    link = secret_of(create(client, admin, method="link"))
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert AuthActions(app, app.test_client()).login(VERA, "").status_code in {400, 401}
    visitor = app.test_client()
    page = visitor.get("/" + path)
    assert page.status_code == 200
    assert VERA in page.get_data(as_text=True)
    token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)
    new = {"password": "a brand new secret", "confirm": "a brand new secret", "csrf_token": token}
    done = visitor.post("/" + path, data=new)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert 'id="set-password-done"' in done.get_data(as_text=True)
    assert AuthActions(app, app.test_client()).login(VERA, "a brand new secret").status_code == 302
    again = visitor.post("/" + path, data=new | {"password": "another new secret"})
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)
    assert visitor.get("/" + path).status_code == 400
    assert [row.target for row in audit_rows(app, "user.set_password")] == [VERA]


def test_a_set_password_link_refuses_common_short_and_mismatched_passwords(app, client, admin):
    path = "/" + secret_of(create(client, admin, method="link")).split("/", 3)[3]
    visitor = app.test_client()
    token = CSRF_INPUT.search(visitor.get(path).get_data(as_text=True)).group(1)
    for new, confirm_, error in [
        ("short", "short", "at least 10"),
        ("qwertyuiop", "qwertyuiop", "most common"),
        ("a brand new secret", "another secret!!", "differ"),
    ]:
        answer = visitor.post(
            path, data={"password": new, "confirm": confirm_, "csrf_token": token}
        )
        assert answer.status_code == 400
        assert error in answer.get_data(as_text=True)
    assert visitor.get(path).status_code == 200  # refusals do not use the link up


def test_a_set_password_link_expires(app, client, admin, monkeypatch):
    path = "/" + secret_of(create(client, admin, method="link")).split("/", 3)[3]
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 25 * 3600)
    answer = app.test_client().get(path)
    assert answer.status_code == 400
    assert "expired" in answer.get_data(as_text=True)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 23 * 3600)
    assert app.test_client().get(path).status_code == 200


def test_a_forged_link_is_refused(app):
    assert app.test_client().get("/set-password?token=forged.value.here").status_code == 400


def test_role_change_asks_first_then_applies_and_is_audited(app, client, admin, auth):
    auth.create(VERA, "viewer")
    asked = act(client, admin, "set-role", VERA, role="analyst")
    assert "Change the role of vera@example.com to analyst?" in str_json(asked)
    assert user_state(app, VERA).role == "viewer"
    answer = confirm(client, admin, asked)
    assert "is now analyst" in message(answer)
    assert user_state(app, VERA).role == "analyst"
    (row,) = audit_rows(app, "user.set_role")
    assert row.details == {"old": "viewer", "new": "analyst"}
    assert row.actor_email == ADMIN


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(app, client, admin, auth):
    for button, verb in (("set-role", "demoted"), ("deactivate", "deactivated")):
        asked = act(client, admin, button, ADMIN, role="viewer")  # refused before any question
        assert asked.get_json()["response"]["admin-users-confirm"]["displayed"] is False
        refusal = f"{ADMIN} is the last active admin and cannot be {verb}."
        assert f'"children": "{refusal}"' in message(asked)  # the email in its own case
    assert (user_state(app, ADMIN).role, user_state(app, ADMIN).active) == ("admin", True)
    with app.app_context():
        with pytest.raises(UserError, match="last active admin"):
            set_role(ADMIN, Role.ANALYST)
        with pytest.raises(UserError, match="last active admin"):
            set_active(ADMIN, False)
        db.session.remove()
    auth.create("second@example.com", "admin")
    answer = confirm(
        client, admin, act(client, admin, "set-role", "second@example.com", role="viewer")
    )
    assert "is now viewer" in message(answer)


def test_a_deactivated_users_session_and_api_token_stop_at_once(app, client, admin, auth):
    token = auth.api_token(VERA, "viewer")
    viewer_client = app.test_client()
    AuthActions(app, viewer_client).login(VERA)
    assert viewer_client.get("/api/v1/me").status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 200
    answer = confirm(client, admin, act(client, admin, "deactivate", VERA))
    assert "is deactivated" in message(answer)
    assert viewer_client.get("/api/v1/me").status_code == 401
    assert viewer_client.get("/").status_code == 302
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 401
    assert [row.target for row in audit_rows(app, "user.deactivate")] == [VERA]
    back = act(client, admin, "reactivate", VERA)  # not destructive: no question
    assert "is active" in message(back)
    assert [row.target for row in audit_rows(app, "user.activate")] == [VERA]
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 302


def test_unlock_ends_a_lockout(app, client, admin, auth):
    auth.create(VERA, "viewer")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == VERA))
        user.locked_until = datetime.now(UTC) + timedelta(minutes=15)
        db.session.commit()
        db.session.remove()
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 401
    assert "is unlocked" in message(act(client, admin, "unlock", VERA))
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 302
    assert [row.target for row in audit_rows(app, "user.unlock")] == [VERA]


@pytest.mark.parametrize("method", ["password", "link"])
def test_reset_password_replaces_it_and_ends_sessions(app, client, admin, auth, method):
    auth.create(VERA, "viewer")
    viewer_client = app.test_client()
    AuthActions(app, viewer_client).login(VERA)
    answer = confirm(client, admin, act(client, admin, "reset", VERA, method=method))
    secret = secret_of(answer)
    assert viewer_client.get("/api/v1/me").status_code == 401
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 401
    if method == "password":
        assert AuthActions(app, app.test_client()).login(VERA, secret).status_code == 302
    else:
        assert app.test_client().get("/" + secret.split("/", 3)[3]).status_code == 200
    (row,) = audit_rows(app, "user.reset_password")
    assert row.details == {"method": "generated" if method == "password" else "link"}


def test_actions_need_a_selected_user(client, admin):
    for forged in ([], "nope", [{"email": 5}], [{"email": "a" * 300}]):
        values = {"admin-users-deactivate.n_clicks": 1, "admin-users-grid.selectedRows": forged}
        answer = call(client, admin, "admin-users-confirm.displayed", values)
        assert "Select a user first" in message(answer)
    answer = confirm_forged(client, admin, {"action": "admin-users-reset", "email": "x; drop"})
    assert "not a valid email" in message(answer)


def confirm_forged(client, dash_app, pending):
    values = {"admin-users-confirm.submit_n_clicks": 1, "admin-users-pending.data": pending}
    return call(client, dash_app, "admin-users-confirm.displayed", values)


def test_search_and_filters(app, client, admin, auth):
    auth.create(VERA, "viewer")
    auth.create("ana@example.com", "analyst")
    with app.app_context():
        set_active("ana@example.com", False)
        db.session.remove()

    def emails(**filters):
        values = {"admin-users-refresh.n_clicks": 1} | {
            f"admin-users-{key}.value": value for key, value in filters.items()
        }
        gathered = call(client, admin, "admin-users-filters.data", values).get_json()
        chosen = gathered["response"]["admin-users-filters"]["data"]
        rows = call(client, admin, "admin-users-grid.rowData", {"admin-users-filters.data": chosen})
        return [row["email"] for row in rows.get_json()["response"]["admin-users-grid"]["rowData"]]

    assert emails() == ["admin@example.com", "ana@example.com", VERA]
    assert emails(search="VER") == [VERA]
    assert emails(search="%") == []
    assert emails(**{"filter-role": "analyst"}) == ["ana@example.com"]
    assert emails(**{"filter-active": "inactive"}) == ["ana@example.com"]
    assert emails(**{"filter-locked": "locked"}) == []
    assert emails(**{"filter-locked": "unlocked", "filter-role": "bogus"}) == emails()


def test_the_grid_shows_what_each_user_can_see(app, client, admin, auth):
    from tests.test_groups_page import add_dataset

    auth.create(VERA, "viewer")
    add_dataset(app, "open_data", "all")
    add_dataset(app, "secret_data", "restricted")
    values = {"admin-users-filters.data": {}}
    rows = call(client, admin, "admin-users-grid.rowData", values).get_json()["response"]
    seen = {row["email"]: row["datasets"] for row in rows["admin-users-grid"]["rowData"]}
    assert seen == {ADMIN: "every dataset (admin)", VERA: "open_data"}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
@pytest.mark.parametrize("output", USER_CALLBACKS)
def test_viewers_and_analysts_cannot_call_the_users_callbacks(client, dash_app, auth, role, output):
    auth.login_as(role)
    key = next(key for key in dash_app.callback_map if output in key)
    response = client.post(
        "/_dash-update-component", json=callback_body(dash_app, key), headers=csrf_header(client)
    )
    assert response.status_code == 403


# --- in real browsers -------------------------------------------------------------------------


@pytest.fixture
def second_driver(tmp_path):
    """Another headless Chromium with a profile of its own: the viewer's browser."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'second-profile'}",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    chrome.set_script_timeout(WAIT)
    yield chrome
    chrome.quit()


@pytest.mark.browser
def test_admin_creates_a_viewer_who_is_kept_out_then_deactivated(
    driver, second_driver, base_url, auth
):
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    driver.get(f"{base_url}/admin/users")
    wait_for(driver, "#admin-users-email").send_keys(VERA)
    driver.find_element(By.ID, "admin-users-create").click()
    password = wait_for(driver, "#admin-users-secret-value").text
    assert len(password) >= 10

    viewer = second_driver
    viewer.get(f"{base_url}/login")
    wait_for(viewer, "#email").send_keys(VERA)
    viewer.find_element(By.ID, "password").send_keys(password)
    viewer.find_element(By.ID, "login-submit").click()
    wait_for(viewer, "#home-title")
    for page in ("/admin/users", "/admin/groups"):
        viewer.get(f"{base_url}{page}")
        wait_for(viewer, "#error-403")
    body = callback_body_for("admin-users-grid.rowData", "admin-users-refresh")
    refused = viewer.execute_async_script(FETCH_CALLBACK, body)
    assert refused["status"] == 403, refused
    assert "root@example.com" not in refused["body"]

    row = f"#admin-users-grid .ag-row[row-id='{VERA}'] [col-id='email']"
    driver.get(f"{base_url}/admin/users")
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.CSS_SELECTOR, row))).click()
    driver.find_element(By.ID, "admin-users-deactivate").click()
    WebDriverWait(driver, WAIT).until(ec.alert_is_present()).accept()
    wait_for(driver, "#admin-users-done")
    status = f"#admin-users-grid .ag-row[row-id='{VERA}'] [col-id='status']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, status), "inactive")
    )
    screenshot(driver, "users-deactivated.png")

    # The viewer's page is still open: its next request finds the session gone.
    after = viewer.execute_async_script(FETCH_CALLBACK, body)
    assert after["status"] == 401, after
    viewer.get(f"{base_url}/")
    WebDriverWait(viewer, WAIT).until(ec.url_contains("/login"))
    wait_for(viewer, "#login-form")


def callback_body_for(output: str, input_id: str) -> dict:
    """The body of a one-output callback request, as dash-renderer would send it."""
    component, prop = output.split(".")
    return {
        "output": output,
        "outputs": {"id": component, "property": prop},
        "inputs": [{"id": input_id, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{input_id}.n_clicks"],
        "state": [],
    }


def test_password_in_conftest_meets_the_policy():
    from app.passwords import check_password_policy

    check_password_policy(PASSWORD)
