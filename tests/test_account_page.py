"""The account page: change your own password, see and end your sessions, your API tokens."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role
from tests.conftest import PASSWORD, AuthActions
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import call
from tests.test_roles import page_text

VERA = "viewer@example.com"
NEW = "a fresh long secret"


@pytest.fixture
def signed_in(client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    return dash_app


def change(client, dash_app, current, new, confirm=None):
    values = {
        "account-change-password.n_clicks": 1,
        "account-current.value": current,
        "account-new.value": new,
        "account-confirm.value": new if confirm is None else confirm,
    }
    response = call(client, dash_app, "account-password-message.children", values)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.dumps(response.get_json()["response"]["account-password-message"])


def sessions(client, dash_app, button="account-revoke.n_clicks", selected=None):
    values = {button: 1, "account-sessions-grid.selectedRows": selected}
    response = call(client, dash_app, "account-revoke-confirm.displayed", values)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def audit(app, action: str) -> list[str]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        found = [row.target for row in rows]
        db.session.remove()
    return found


def test_the_page_lists_my_sessions_and_tokens(client, signed_in):
    page = client.get("/account")
    assert page.status_code == 200
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert "/account" in layout


@pytest.mark.parametrize(
    ("current", "new", "confirm", "error"),
    [
        ("wrong password", NEW, None, "current password is wrong"),
        (PASSWORD, "short", None, "at least 10"),
        (PASSWORD, "1234567890", None, "most common"),
        (PASSWORD, "Password123", None, "most common"),
        (PASSWORD, NEW, "something else", "differ"),
        (PASSWORD, PASSWORD, None, "same as the current"),
        (None, None, None, "Enter your current password first"),
    ],
)
def test_bad_password_changes_are_refused(app, client, signed_in, current, new, confirm, error):
    answer = change(client, signed_in, current, new, confirm)
    assert error in answer
    assert "account-password-error" in answer
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 302


def test_a_password_change_keeps_this_session_and_ends_the_others(app, client, signed_in):
    other = app.test_client()
    AuthActions(app, other).login(VERA)
    assert "account-password-done" in change(client, signed_in, PASSWORD, NEW)
    assert client.get("/api/v1/me").status_code == 200
    assert other.get("/api/v1/me").status_code == 401
    assert AuthActions(app, app.test_client()).login(VERA).status_code == 401
    assert AuthActions(app, app.test_client()).login(VERA, NEW).status_code == 302
    assert audit(app, "user.change_password") == [VERA]


def test_revoking_another_session_signs_it_out(app, client, signed_in):
    other = app.test_client()
    AuthActions(app, other).login(VERA)
    rows = {row["this"]: row for row in grid(client)}
    theirs = [rows[""]]
    asked = sessions(client, signed_in, selected=theirs)
    assert asked["account-revoke-confirm"]["displayed"] is True
    assert other.get("/api/v1/me").status_code == 200  # not before the confirmation
    done = sessions(client, signed_in, "account-revoke-confirm.submit_n_clicks", theirs)
    assert "account-sessions-done" in json.dumps(done)
    assert [row["this"] for row in done["account-sessions-grid"]["rowData"]] == ["current"]
    assert other.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").status_code == 200
    assert len(audit(app, "session.revoke")) == 1


def test_revoking_this_session_signs_me_out(client, signed_in):
    (mine,) = grid(client)
    done = sessions(client, signed_in, "account-revoke-confirm.submit_n_clicks", [mine])
    assert done["account-location"]["href"] == "/login"
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/account").status_code == 302


@pytest.mark.parametrize("forged", [None, [], [{"id": 5}], [{"id": "zz"}], [{"id": "0" * 16}]])
def test_a_forged_session_selection_ends_nothing(client, signed_in, forged):
    answer = sessions(client, signed_in, "account-revoke-confirm.submit_n_clicks", forged)
    assert "account-sessions-error" in json.dumps(answer)
    assert client.get("/api/v1/me").status_code == 200


def test_someone_elses_session_cannot_be_ended(app, client, signed_in, auth):
    auth.create("other@example.com", "viewer")
    other = app.test_client()
    AuthActions(app, other).login("other@example.com")
    (mine,) = grid(client)
    (theirs,) = [key for key in _all_session_keys(app) if key != mine["id"]]
    answer = sessions(client, signed_in, "account-revoke-confirm.submit_n_clicks", [{"id": theirs}])
    assert "account-sessions-error" in json.dumps(answer)
    assert other.get("/api/v1/me").status_code == 200


def _all_session_keys(app) -> list[str]:
    from app.account import SESSION_KEY_LENGTH
    from app.models import UserSession

    with app.app_context():
        keys = [row.id[:SESSION_KEY_LENGTH] for row in db.session.scalars(select(UserSession))]
        db.session.remove()
    return keys


def grid(client) -> list[dict]:
    """The sessions grid's rows, as the page's layout serves them."""
    body = json.loads(page_text(client, "/account", ""))
    found: list[list[dict]] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == "account-sessions-grid":
                found.append(node["props"]["rowData"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body)
    return found[0]


@pytest.mark.browser
def test_a_viewer_sees_this_browser_and_changes_the_password(driver, base_url, auth):
    sign_in(driver, base_url, auth, VERA, "viewer")
    driver.get(f"{base_url}/account")
    this = "#account-sessions-grid .ag-row [col-id='this']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, this), "current")
    )
    wait_for(driver, "#account-current").send_keys(PASSWORD)
    driver.find_element(By.ID, "account-new").send_keys(NEW)
    driver.find_element(By.ID, "account-confirm").send_keys(NEW)
    driver.find_element(By.ID, "account-change-password").click()
    wait_for(driver, "#account-password-done")
    wait_for(driver, "#tokens-create")  # the API tokens, on the same page
    screenshot(driver, "account.png")
