"""Saved dashboards: save from explore (analysts), open (everyone), duplicate and delete."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.extensions import db
from app.models import Dashboard, Role
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_explore_page import push_recent
from tests.test_jobs_page import call

CHART = {
    "explore-save.n_clicks": 1,
    "explore-save-name.value": "Ops",
    "explore-dataset.value": "tank",
    "explore-agg.value": "sum",
    "explore-field.value": "level",
    "explore-bucket.value": "1h",
    "explore-view.value": "bar",
}


def dashboards(app) -> list[tuple[str, int]]:
    with app.app_context():
        found = [(d.name, len(d.spec["charts"])) for d in db.session.query(Dashboard).all()]
        db.session.remove()
    return sorted(found)


def test_an_analyst_saves_charts_and_a_viewer_may_not(app, client, dash_app, auth):
    push_recent(app, auth)
    auth.login_as(Role.ANALYST)
    for _ in range(2):
        saved = call(client, dash_app, "explore-save-message.children", CHART)
        assert "Saved to Ops" in saved.get_data(as_text=True)
    assert dashboards(app) == [("Ops", 2)]
    auth.logout()
    auth.login_as(Role.VIEWER)
    refused = call(client, dash_app, "explore-save-message.children", CHART)
    assert refused.status_code == 403
    assert dashboards(app) == [("Ops", 2)]


def test_only_the_owner_or_an_admin_deletes_and_copies_belong_to_their_maker(
    app, client, dash_app, auth
):
    push_recent(app, auth)
    auth.login_as(Role.ANALYST)
    call(client, dash_app, "explore-save-message.children", CHART)
    with app.app_context():
        ops = db.session.query(Dashboard).one().id
        db.session.remove()
    auth.logout()
    auth.create("other@example.com", Role.ANALYST)
    auth.login("other@example.com")
    change = {"dashboard-id.data": ops, "dashboard-delete-confirm.submit_n_clicks": 1}
    answer = call(client, dash_app, "dashboard-message.children", change).get_json()
    assert "owner or an admin" in answer["response"]["dashboard-message"]["children"]
    copy = {"dashboard-id.data": ops, "dashboard-duplicate.n_clicks": 1}
    answer = call(client, dash_app, "dashboard-message.children", copy).get_json()
    assert answer["response"]["dashboard-location"]["href"].startswith("/dashboards?id=")
    assert dashboards(app) == [("Ops", 1), ("Ops (copy)", 1)]
    auth.logout()
    auth.login_as(Role.ADMIN)
    answer = call(client, dash_app, "dashboard-message.children", change).get_json()
    assert answer["response"]["dashboard-location"]["href"] == "/dashboards"
    assert dashboards(app) == [("Ops (copy)", 1)]


@pytest.mark.browser
def test_a_chart_built_on_explore_is_saved_and_opened_by_a_viewer(driver, base_url, auth, app):
    values = push_recent(app, auth)
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/explore?dataset=tank&range=1h&agg=sum&field=level&bucket=1h&view=bar")
    wait_for(driver, "#explore-graph .js-plotly-plot")
    name = wait_for(driver, "#explore-save-name")
    name.send_keys("Plant floor")
    name.send_keys(Keys.ESCAPE)
    driver.find_element(By.ID, "explore-save").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: "Saved to Plant floor" in d.find_element(By.ID, "explore-save-message").text
    )
    screenshot(driver, "explore-saved.png")
    driver.delete_all_cookies()
    sign_in(driver, base_url, auth, "vic@example.com", "viewer")
    driver.get(f"{base_url}/dashboards")
    wait_for(driver, "#dashboards-list a").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "dashboard-title").text == "Plant floor"
    )
    totals = """
    const graph = document.querySelector('.js-plotly-plot');
    return graph && graph.data && graph.data.length ? Array.from(graph.data[0].y) : null;
    """
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            (d.execute_script(totals) or [None])
            and sum(d.execute_script(totals) or []) == sum(values)
        )
    )
    assert not driver.find_element(By.ID, "dashboard-delete").is_displayed()
    screenshot(driver, "dashboard-viewer.png")
