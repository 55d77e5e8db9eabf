"""The groups page: groups of users, their members, and who may see a restricted dataset."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from app.access import visible_datasets
from app.extensions import db
from app.models import AuditEntry, Dataset, Role
from app.users import get_user
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import call
from tests.test_roles import callback_body, csrf_header

VERA = "vera@example.com"
ANA = "ana@example.com"
GROUP_CALLBACKS = [
    "admin-groups-grid.rowData",
    "admin-groups-members.value",
    "admin-groups-visibility.value",
    "admin-groups-confirm.displayed",
]

COLUMNS = [{"name": "v", "label": "v", "type": "integer", "nullable": True}]


def add_dataset(app, name: str, visibility: str) -> None:
    with app.app_context():
        db.session.add(
            Dataset(
                name=name,
                label=name,
                columns=COLUMNS,
                visibility=visibility,
                key_columns=[],
                options={},
            )
        )
        db.session.commit()
        db.session.remove()


@pytest.fixture
def admin(client, dash_app, auth):
    auth.login_as(Role.ADMIN)
    auth.create(VERA, "viewer")
    auth.create(ANA, "analyst")
    add_dataset(app_of(dash_app), "secret_data", "restricted")
    add_dataset(app_of(dash_app), "open_data", "all")
    return dash_app


def app_of(dash_app):
    return dash_app.server


def act(client, dash_app, **values):
    return call(client, dash_app, "admin-groups-confirm.displayed", values)


def confirm(client, dash_app, asked):
    answer = asked.get_json()["response"]
    assert answer["admin-groups-confirm"]["displayed"] is True, answer
    values = {
        "admin-groups-confirm.submit_n_clicks": 1,
        "admin-groups-pending.data": answer["admin-groups-pending"]["data"],
    }
    return act(client, dash_app, **values)


def message(response) -> str:
    return json.dumps(response.get_json()["response"]["admin-groups-message"])


def audit(app, action: str) -> list[tuple[str, dict]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        found = [(row.target, row.details) for row in rows]
        db.session.remove()
    return found


def visible(app, email: str) -> list[str]:
    with app.app_context():
        names = [dataset.name for dataset in visible_datasets(get_user(email))]
        db.session.remove()
    return names


def create_group(client, dash_app, name="team"):
    return act(
        client, dash_app, **{"admin-groups-create.n_clicks": 1, "admin-groups-name.value": name}
    )


def save_members(client, dash_app, members, group="team"):
    return act(
        client,
        dash_app,
        **{
            "admin-groups-save-members.n_clicks": 1,
            "admin-groups-grid.selectedRows": [{"name": group}],
            "admin-groups-members.value": members,
        },
    )


def save_access(client, dash_app, visibility, groups=(), users=(), dataset="secret_data"):
    return act(
        client,
        dash_app,
        **{
            "admin-groups-save-access.n_clicks": 1,
            "admin-groups-datasets-grid.selectedRows": [{"name": dataset}],
            "admin-groups-visibility.value": visibility,
            "admin-groups-grant-groups.value": list(groups),
            "admin-groups-grant-users.value": list(users),
        },
    )


def test_a_group_is_created_given_members_and_access_then_deleted(app, client, admin):
    assert "Group team created" in message(create_group(client, admin))
    assert "already exists" in message(create_group(client, admin))
    assert "1 to 100" in message(create_group(client, admin, "  "))
    assert "1 added" in message(save_members(client, admin, [VERA]))
    assert visible(app, VERA) == ["open_data"]
    assert "group team" in message(save_access(client, admin, "restricted", groups=["team"]))
    assert visible(app, VERA) == ["open_data", "secret_data"]
    assert visible(app, ANA) == ["open_data"]
    asked = act(
        client,
        admin,
        **{"admin-groups-delete.n_clicks": 1, "admin-groups-grid.selectedRows": [{"name": "team"}]},
    )
    assert visible(app, VERA) == ["open_data", "secret_data"]  # not before the confirmation
    assert "Group team deleted" in message(confirm(client, admin, asked))
    assert visible(app, VERA) == ["open_data"]
    assert audit(app, "group.create") == [("team", {})]
    assert audit(app, "group.add_member") == [("team", {"user": VERA})]
    assert audit(app, "dataset.grant") == [("secret_data", {"group": "team"})]
    assert audit(app, "group.delete") == [("team", {"members": [VERA]})]


def test_removing_a_member_asks_first(app, client, admin):
    create_group(client, admin)
    save_members(client, admin, [VERA, ANA])
    asked = save_members(client, admin, [ANA])
    assert "Remove vera@example.com from team?" in json.dumps(asked.get_json())
    assert "Remove" not in message(save_members(client, admin, [VERA, ANA]))  # nothing removed
    confirm(client, admin, asked)
    assert audit(app, "group.remove_member") == [("team", {"user": VERA})]


def test_a_user_grant_is_given_and_revoked_after_confirmation(app, client, admin):
    save_access(client, admin, "restricted", users=[ANA])
    assert visible(app, ANA) == ["open_data", "secret_data"]
    asked = save_access(client, admin, "restricted")
    assert "Take secret_data away from user ana@example.com?" in json.dumps(asked.get_json())
    assert visible(app, ANA) == ["open_data", "secret_data"]
    confirm(client, admin, asked)
    assert visible(app, ANA) == ["open_data"]
    assert audit(app, "dataset.grant") == [("secret_data", {"user": ANA})]
    assert audit(app, "dataset.revoke") == [("secret_data", {"user": ANA})]


def test_a_dataset_is_made_restricted_and_everyone_visible(app, client, admin):
    asked = save_access(client, admin, "restricted", dataset="open_data", users=[ANA])
    assert (
        "Restrict open_data? Only its owner, admins and the users and groups granted it will "
        "see it; everyone else stops seeing it."
    ) in json.dumps(asked.get_json())
    assert visible(app, VERA) == ["open_data"]
    assert (
        "open_data: now seen by its owner, admins and its grantees; granted to user "
        "ana@example.com."
    ) in message(confirm(client, admin, asked))
    assert visible(app, VERA) == []
    opened = save_access(client, admin, "all", dataset="open_data", users=[ANA])
    assert "open_data: now seen by everyone signed in." in message(opened)
    assert visible(app, VERA) == ["open_data"]
    assert audit(app, "dataset.set_visibility") == [
        ("open_data", {"old": "all", "new": "restricted"}),
        ("open_data", {"old": "restricted", "new": "all"}),
    ]


def test_selecting_shows_members_and_access(client, admin):
    create_group(client, admin)
    save_members(client, admin, [VERA])
    save_access(client, admin, "restricted", groups=["team"], users=[ANA])
    shown = call(
        client,
        admin,
        "admin-groups-members.value",
        {"admin-groups-grid.selectedRows": [{"name": "team"}]},
    )
    assert shown.get_json()["response"]["admin-groups-members"]["value"] == [VERA]
    shown = call(
        client,
        admin,
        "admin-groups-visibility.value",
        {"admin-groups-datasets-grid.selectedRows": [{"name": "secret_data"}]},
    )
    answer = shown.get_json()["response"]
    assert answer["admin-groups-visibility"]["value"] == "restricted"
    assert answer["admin-groups-grant-groups"]["value"] == ["team"]
    assert answer["admin-groups-grant-users"]["value"] == [ANA]
    grids = call(client, admin, "admin-groups-grid.rowData", {"admin-groups-changed.data": 1})
    rows = grids.get_json()["response"]["admin-groups-datasets-grid"]["rowData"]
    assert rows[1] == {
        "name": "secret_data",
        "visibility": "restricted",
        "groups": "team",
        "users": ANA,
    }


@pytest.mark.parametrize(
    "values",
    [
        {"admin-groups-save-members.n_clicks": 1, "admin-groups-grid.selectedRows": "x"},
        {"admin-groups-save-access.n_clicks": 1, "admin-groups-datasets-grid.selectedRows": []},
        {"admin-groups-confirm.submit_n_clicks": 1, "admin-groups-pending.data": "forged"},
        {
            "admin-groups-confirm.submit_n_clicks": 1,
            "admin-groups-pending.data": {"action": "admin-groups-save-access", "access": 5},
        },
    ],
)
def test_forged_or_missing_selections_are_refused(client, admin, values):
    assert "admin-groups-error" in message(act(client, admin, **values))


def test_unknown_members_and_visibilities_are_refused(client, admin):
    create_group(client, admin)
    assert "No user with email" in message(save_members(client, admin, ["nobody@example.com"]))
    assert "all or restricted" in message(save_access(client, admin, "secret"))
    assert "No group called" in message(save_access(client, admin, "restricted", groups=["x"]))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
@pytest.mark.parametrize("output", GROUP_CALLBACKS)
def test_viewers_and_analysts_cannot_call_the_groups_callbacks(
    client, dash_app, auth, role, output
):
    auth.login_as(role)
    key = next(key for key in dash_app.callback_map if output in key)
    response = client.post(
        "/_dash-update-component", json=callback_body(dash_app, key), headers=csrf_header(client)
    )
    assert response.status_code == 403
    assert client.get("/admin/groups").status_code == 403


@pytest.mark.browser
def test_an_admin_creates_a_group_in_the_browser(driver, base_url, auth, app):
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    auth.create(VERA, "viewer")
    add_dataset(app, "secret_data", "restricted")
    driver.get(f"{base_url}/admin/groups")
    wait_for(driver, "#admin-groups-name").send_keys("analysts")
    driver.find_element(By.ID, "admin-groups-create").click()
    wait_for(driver, "#admin-groups-done")
    row = "#admin-groups-grid .ag-row[row-id='analysts'] [col-id='name']"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.CSS_SELECTOR, row)))
    dataset = "#admin-groups-datasets-grid .ag-row[row-id='secret_data'] [col-id='visibility']"
    assert wait_for(driver, dataset).text == "restricted"
    screenshot(driver, "groups.png")
