"""Live charts as a component: several on one dashboard, each live on its own; saving from /live.

The browser tests run against a real hub (``hubs`` and ``pusher`` from test_live_page).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.dashboards import add_chart
from app.extensions import db
from app.models import Dashboard, Dataset, Role
from app.users import get_user
from tests import test_live_page
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import call
from tests.test_live_page import chart_element, graph_points, wait_for_points, wait_for_status
from tests.test_roles import ROUTER, callback_body, csrf_header

hubs = test_live_page.hubs  # fixtures: a hub for the served app, and rows pushed by an analyst
pusher = test_live_page.pusher

CHART_KEYS = """
return Array.from(document.querySelectorAll('[id*="live-chart-graph"]'))
  .map((element) => JSON.parse(element.id).key);
"""
SAVE = {
    "live-save.n_clicks": 1,
    "live-save-name.value": "Floor",
    "live-dataset.value": "plant",
    "live-fields.value": ["temperature"],
    "live-window.value": "1000",
}


def live_dashboard(app, datasets: list[str]) -> int:
    """Save a dashboard "Floor" of one live chart per dataset (as the pusher, an analyst)."""
    with app.app_context():
        user = get_user("pusher@example.com")
        for name in datasets:
            chart = {"kind": "live", "dataset": name, "fields": ["temperature"], "window": 500}
            board = add_chart(user, "Floor", chart).id
        db.session.remove()
    return board


def restrict(app, name: str) -> None:
    """Let only the dataset's owner (the pusher), grantees and admins see it."""
    with app.app_context():
        db.session.query(Dataset).filter_by(name=name).update({"visibility": "restricted"})
        db.session.commit()
        db.session.remove()


def chart_keys(driver) -> list[str]:
    """The keys of the live charts on the page, in page order."""
    keys: list[str] = []

    def rendered(_driver: Any) -> bool:
        keys[:] = driver.execute_script(CHART_KEYS)
        return bool(keys)

    WebDriverWait(driver, WAIT).until(rendered)
    return keys


def saved_dashboards(app) -> list[tuple[str, list[dict[str, Any]]]]:
    with app.app_context():
        found = [(d.name, d.spec["charts"]) for d in db.session.query(Dashboard).all()]
        db.session.remove()
    return found


@pytest.mark.browser
def test_two_live_charts_on_one_dashboard_each_show_their_own_rows_once(
    driver, base_url, auth, app, hubs, pusher
):
    hubs.start()
    pusher([1.0, 2.0], "plant")
    pusher([10.0], "mill")
    board = live_dashboard(app, ["plant", "mill"])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/dashboards?id={board}")
    plant, mill = chart_keys(driver)
    wait_for_points(driver, [1.0, 2.0], plant)
    wait_for_points(driver, [10.0], mill)
    wait_for_status(driver, "live", plant)
    wait_for_status(driver, "live", mill)
    pusher([3.0], "plant")
    pusher([20.0, 30.0], "mill")
    pusher([4.0], "plant")
    wait_for_points(driver, [1.0, 2.0, 3.0, 4.0], plant)
    wait_for_points(driver, [10.0, 20.0, 30.0], mill)
    time.sleep(1)  # a point drawn twice, or in the other chart, would show by now
    assert [trace["y"] for trace in graph_points(driver, plant)] == [[1.0, 2.0, 3.0, 4.0]]
    assert [trace["y"] for trace in graph_points(driver, mill)] == [[10.0, 20.0, 30.0]]
    # Times are shown in UTC, 24-hour, as everywhere else in the app.
    updated = chart_element(driver, "updated", plant).text
    assert re.fullmatch(r"Last point at \d\d:\d\d:\d\d UTC \(id \d+\)", updated), updated
    screenshot(driver, "live-dashboard.png")


@pytest.mark.browser
def test_a_live_chart_of_a_dataset_the_viewer_may_not_see_shows_no_data(
    driver, base_url, auth, app, hubs, pusher
):
    hubs.start()
    pusher([99.0], "vault")
    pusher([5.0], "plant")
    restrict(app, "vault")
    board = live_dashboard(app, ["vault", "plant"])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/dashboards?id={board}")
    vault, plant = chart_keys(driver)
    wait_for_points(driver, [5.0], plant)
    WebDriverWait(driver, WAIT).until(
        lambda d: "not available to you" in chart_element(d, "note", vault).text
    )
    pusher([98.0], "vault")
    pusher([6.0], "plant")
    wait_for_points(driver, [5.0, 6.0], plant)
    assert graph_points(driver, vault) is None
    assert chart_element(driver, "status", vault).text.lower() == "no dataset"


@pytest.mark.browser
def test_an_analyst_saves_the_live_chart_and_it_is_live_on_the_dashboard(
    driver, base_url, auth, hubs, pusher
):
    hubs.start()
    pusher([1.0], "plant")
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_status(driver, "live")
    name = wait_for(driver, "#live-save-name")
    name.send_keys("Plant floor")
    name.send_keys(Keys.ESCAPE)
    driver.find_element(By.ID, "live-save").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: "Saved to Plant floor" in d.find_element(By.ID, "live-save-message").text
    )
    driver.find_element(By.CSS_SELECTOR, "#live-save-message a").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "dashboard-title").text == "Plant floor"
    )
    (key,) = chart_keys(driver)
    wait_for_points(driver, [1.0], key)
    wait_for_status(driver, "live", key)
    pusher([2.0], "plant")
    wait_for_points(driver, [1.0, 2.0], key)


def test_an_analyst_saves_a_live_chart_and_a_viewer_may_not(app, client, dash_app, auth, pusher):
    pusher([1.0], "plant")
    auth.login_as(Role.ANALYST)
    saved = call(client, dash_app, "live-save-message.children", SAVE)
    assert "Saved to Floor" in saved.get_data(as_text=True)
    ((name, charts),) = saved_dashboards(app)
    assert name == "Floor"
    assert [
        {key: chart[key] for key in ("kind", "dataset", "fields", "window")} for chart in charts
    ] == [{"kind": "live", "dataset": "plant", "fields": ["temperature"], "window": 1000}]
    auth.logout()
    auth.login_as(Role.VIEWER)
    refused = call(client, dash_app, "live-save-message.children", SAVE)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    assert len(saved_dashboards(app)[0][1]) == 1


def test_an_analyst_cannot_save_a_dataset_they_may_not_see(app, client, dash_app, auth, pusher):
    pusher([1.0], "vault")
    restrict(app, "vault")
    auth.login_as(Role.ANALYST)
    refused = call(
        client, dash_app, "live-save-message.children", {**SAVE, "live-dataset.value": "vault"}
    )
    assert "Choose a dataset first." in refused.get_data(as_text=True)
    assert saved_dashboards(app) == []


@pytest.mark.parametrize(("role", "shown"), [(Role.VIEWER, False), (Role.ANALYST, True)])
def test_the_save_control_is_offered_to_analysts_only(client, dash_app, auth, role, shown):
    auth.login_as(role)
    response = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, ROUTER, pathname="/live"),
        headers=csrf_header(client),
    )
    assert response.status_code == 200
    assert ('"live-save"' in json.dumps(response.get_json())) == shown


def test_the_server_draws_no_window_of_a_dataset_the_user_may_not_see(
    app, client, dash_app, auth, pusher
):
    pusher([42.5], "vault")
    restrict(app, "vault")
    auth.login_as(Role.VIEWER)

    def piece(part: str, prop: str) -> dict[str, Any]:
        return {"id": {"key": "k", "type": f"live-chart-{part}"}, "property": prop}

    def draw(dataset: str) -> dict[str, Any]:
        (output,) = [key for key in dash_app.callback_map if "live-chart-state" in key]
        source = {"dataset": dataset, "fields": ["temperature"], "window": 500}
        body = {
            "output": output,
            "outputs": [
                piece("graph", "figure"),
                piece("state", "data"),
                piece("note", "children"),
            ],
            "inputs": [
                {**piece("source", "data"), "value": source},
                {**piece("resync", "data"), "value": 0},
            ],
            "changedPropIds": ['{"key":"k","type":"live-chart-source"}.data'],
            "state": [],
        }
        answer = client.post("/_dash-update-component", json=body, headers=csrf_header(client))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert "42.5" not in answer.get_data(as_text=True)
        return {
            json.loads(key)["type"]: value for key, value in answer.get_json()["response"].items()
        }

    hidden = draw("vault")
    assert hidden["live-chart-graph"]["figure"]["data"] == []
    assert hidden["live-chart-note"]["children"] == "vault: not available to you"
    assert hidden["live-chart-state"]["data"] is None
    pusher([7.5], "plant")
    shown = draw("plant")
    assert [trace["y"] for trace in shown["live-chart-graph"]["figure"]["data"]] == [[7.5]]
    assert shown["live-chart-state"]["data"]["dataset"] == "plant"
