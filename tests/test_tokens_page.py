"""The API tokens page: each user creates, lists and revokes their own tokens."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry
from app.tokens import create_token, user_for_token
from app.users import get_user
from tests.test_browser import WAIT, sign_in
from tests.test_jobs_page import call


@pytest.fixture
def signed_in(client, dash_app, auth):
    auth.login_as("viewer")
    return dash_app


def created_token(response) -> str:
    children = response.json["response"]["tokens-created"]["children"]
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == "tokens-secret":
                found.append(node["props"]["children"])
            for value in node.get("props", {}).values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found[0]


def test_a_viewer_creates_a_token_that_is_shown_once_and_works(app, client, signed_in):
    response = call(
        client,
        signed_in,
        "tokens-created.children",
        {"tokens-create.n_clicks": 1, "tokens-name.value": "ci", "tokens-expiry.value": "30"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    token = created_token(response)
    assert token.startswith("iw_")
    rows = next(v for k, v in response.json["response"].items() if k == "tokens-grid")
    assert [row["name"] for row in rows["rowData"]] == ["ci"]
    assert rows["rowData"][0]["status"] == "active"
    assert token not in str(rows)  # the list shows a prefix, never the secret
    with app.app_context():
        assert user_for_token(token).email == "viewer@example.com"
        made = db.session.scalars(select(AuditEntry).filter_by(action="token.create")).one()
        assert (made.actor_email, made.target) == ("viewer@example.com", "viewer@example.com")
        db.session.remove()
    assert client.get("/tokens").status_code == 200
    assert token not in client.get("/_dash-layout").get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "expiry", "error"),
    [
        ("", "30", "name of 1 to 100"),
        ("x" * 101, "30", "name of 1 to 100"),
        ("ok", "1000", "expires"),
    ],
)
def test_bad_token_forms_are_refused_with_a_message(client, signed_in, name, expiry, error):
    response = call(
        client,
        signed_in,
        "tokens-created.children",
        {"tokens-create.n_clicks": 1, "tokens-name.value": name, "tokens-expiry.value": expiry},
    )
    assert response.status_code == 200
    assert error in response.json["response"]["tokens-name"]["error"]


def test_a_user_revokes_their_token_but_not_someone_elses(app, client, signed_in, auth):
    auth.create("other@example.com", "analyst")
    with app.app_context():
        mine = create_token(get_user("viewer@example.com"), "mine")
        theirs = create_token(get_user("other@example.com"), "theirs")
        ids = {t: user_for_token(t).id for t in (mine, theirs)}
        db.session.remove()
    rows = {row_name: row_id for row_id, row_name in _token_ids(app).items()}
    refused = call(
        client,
        signed_in,
        "tokens-grid.rowData",
        {
            "tokens-revoke-confirm.submit_n_clicks": 1,
            "tokens-grid.selectedRows": [{"id": rows["theirs"]}],
        },
    )
    assert "not yours" in refused.json["response"]["tokens-message"]["children"]
    done = call(
        client,
        signed_in,
        "tokens-grid.rowData",
        {
            "tokens-revoke-confirm.submit_n_clicks": 1,
            "tokens-grid.selectedRows": [{"id": rows["mine"]}],
        },
    )
    assert done.json["response"]["tokens-grid"]["rowData"][0]["status"] == "revoked"
    with app.app_context():
        assert user_for_token(mine) is None
        assert user_for_token(theirs) is not None
        db.session.remove()
    assert ids  # both tokens were real before


def _token_ids(app) -> dict[str, str]:
    from app.models import ApiToken

    with app.app_context():
        found = {str(t.id): t.name for t in db.session.query(ApiToken).all()}
        db.session.remove()
    return found


@pytest.mark.browser
def test_a_token_picked_in_the_grid_is_the_one_revoked(app, driver, base_url, auth):  # noqa: F811
    sign_in(driver, base_url, auth, "tess@example.com", "viewer")
    with app.app_context():
        user = get_user("tess@example.com")
        kept, gone = create_token(user, "kept"), create_token(user, "gone")
        db.session.remove()
    driver.get(f"{base_url}/tokens")
    names = "#tokens-grid .ag-row [col-id='name']"
    WebDriverWait(driver, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, names)) == 2)
    next(c for c in driver.find_elements(By.CSS_SELECTOR, names) if c.text == "gone").click()
    driver.find_element(By.ID, "tokens-revoke").click()
    WebDriverWait(driver, WAIT).until(ec.alert_is_present()).accept()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "tokens-message"), "revoked")
    )
    with app.app_context():
        assert user_for_token(kept) is not None
        assert user_for_token(gone) is None
        db.session.remove()
    warnings = [entry["message"] for entry in driver.get_log("browser")]
    assert not [text for text in warnings if "deprecated" in text.lower()], warnings
