"""Saved dashboards: save from explore (analysts), open (everyone), duplicate and delete."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.charts import Chart
from app.dashboards import DashboardError, add_chart
from app.database import libpq_url
from app.extensions import db
from app.models import Dashboard, Role, User
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_explore_page import JANUARY_CONTROLS, push_recent, sales  # noqa: F401
from tests.test_jobs_page import call
from tests.test_roles import csrf_header, page_text

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


def saved_charts(app, name="Ops") -> list[dict]:
    with app.app_context():
        spec = db.session.query(Dashboard).filter_by(name=name).one().spec
        db.session.remove()
    return spec["charts"]


def dashboard_id(app, name="Ops") -> int:
    with app.app_context():
        found = db.session.query(Dashboard).filter_by(name=name).one().id
        db.session.remove()
    return found


def arrange(client, dash_app, board: int, index: int, action: str, count: int):
    """Click one arrangement button, as the browser posts the ALL-pattern callback."""
    output = next(key for key in dash_app.callback_map if "dashboard-reload.href" in key)
    buttons = [
        {
            "id": {"type": "dashboard-arrange", "index": i, "action": a},
            "property": "n_clicks",
            "value": 1 if (i, a) == (index, action) else None,
        }
        for i in range(count)
        for a in ("earlier", "later", "resize", "remove")
    ]
    changed = json.dumps(
        {"action": action, "index": index, "type": "dashboard-arrange"}, separators=(",", ":")
    )
    body = {
        "output": output,
        "outputs": [
            {"id": "dashboard-reload", "property": "href"},
            {"id": "dashboard-message", "property": "children"},
        ],
        "inputs": [buttons],
        "changedPropIds": [f"{changed}.n_clicks"],
        "state": [{"id": "dashboard-id", "property": "data", "value": board}],
    }
    return client.post("/_dash-update-component", json=body, headers=csrf_header(client))


def draw_all(client, dash_app, board: int, indices: list[int], span="1h"):
    """Call the dashboard's draw: every chart's figure and its link to Explore."""
    output = next(key for key in dash_app.callback_map if "dashboard-chart" in key)
    body = {
        "output": output,
        "outputs": [
            [{"id": {"type": kind, "index": i}, "property": prop} for i in indices]
            for kind, prop in (("dashboard-chart", "figure"), ("dashboard-explore", "href"))
        ],
        "inputs": [
            {"id": "dashboard-range", "property": "value", "value": span},
            {"id": "dashboard-tick", "property": "n_intervals", "value": None},
        ],
        "changedPropIds": ["dashboard-range.value"],
        "state": [{"id": "dashboard-id", "property": "data", "value": board}],
    }
    response = client.post("/_dash-update-component", json=body, headers=csrf_header(client))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def draw(client, dash_app, board: int, indices: list[int], span="1h"):
    """The figures of the charts at ``indices`` over ``span``, by output id."""
    drawn = draw_all(client, dash_app, board, indices, span)
    return {key: value for key, value in drawn.items() if "dashboard-chart" in key}


def test_the_owner_arranges_the_grid_and_others_may_not(app, client, dash_app, auth):
    push_recent(app, auth)
    auth.login_as(Role.ANALYST)
    for agg in ("sum", "max", "count"):
        call(client, dash_app, "explore-save-message.children", {**CHART, "explore-agg.value": agg})
    board = dashboard_id(app)
    assert [c["agg"] for c in saved_charts(app)] == ["sum", "max", "count"]
    reload = arrange(client, dash_app, board, 0, "later", 3).get_json()["response"]
    assert reload["dashboard-reload"]["href"].startswith(f"/dashboards?id={board}&")
    assert [c["agg"] for c in saved_charts(app)] == ["max", "sum", "count"]
    arrange(client, dash_app, board, 2, "earlier", 3)
    assert [c["agg"] for c in saved_charts(app)] == ["max", "count", "sum"]
    arrange(client, dash_app, board, 1, "resize", 3)
    assert [c["width"] for c in saved_charts(app)] == [6, 12, 6]
    arrange(client, dash_app, board, 0, "remove", 3)
    assert [c["agg"] for c in saved_charts(app)] == ["count", "sum"]
    auth.logout()
    for role in (Role.VIEWER, Role.ANALYST):
        auth.create(f"{role.value}2@example.com", role)
        auth.login(f"{role.value}2@example.com")
        refused = arrange(client, dash_app, board, 0, "remove", 2).get_json()["response"]
        assert "owner or an admin" in refused["dashboard-message"]["children"]
        auth.logout()
    assert [c["agg"] for c in saved_charts(app)] == ["count", "sum"]


def test_a_saved_chart_keeps_its_group_and_filters(app, client, dash_app, auth):
    push_recent(app, auth)  # tank: level 0..9 over the last ten minutes
    auth.login_as(Role.ANALYST)
    grouped = {
        **CHART,
        "explore-group.value": "level",
        "explore-top.value": 3,
        "explore-filters.value": ["level:between:2,7"],
        "explore-agg.value": "count",
    }
    call(client, dash_app, "explore-save-message.children", grouped)
    (chart,) = saved_charts(app)
    assert (chart["kind"], chart["group"], chart["top"], chart["filters"]) == (
        "historical",
        "level",
        3,
        ["level:between:2,7"],
    )
    assert chart["range"] == "24h"  # what explore showed: the dashboard's "as saved" range
    traces = draw(client, dash_app, dashboard_id(app), [0])
    (found,) = traces.values()
    data = found["figure"]["data"]
    assert [trace["name"] for trace in data] == ["2.0", "3.0", "4.0", "other"]
    assert sum(sum(trace["y"]) for trace in data) == 6  # levels 2..7


def test_a_chart_keeps_its_saved_range_when_the_dashboard_asks_for_it(
    app,
    sales,  # noqa: F811 (the fixture)
    client,
    dash_app,
    auth,
):
    auth.login_as(Role.ANALYST)
    january = {**JANUARY_CONTROLS, "explore-save.n_clicks": 1, "explore-save-name.value": "Old"}
    assert "Saved to Old" in call(
        client, dash_app, "explore-save-message.children", january
    ).get_data(as_text=True)
    board = dashboard_id(app, "Old")
    (saved,) = draw(client, dash_app, board, [0], span="saved").values()
    days = saved["figure"]["data"][0]["x"]
    assert len(days) == 31 and days[0].startswith("2019-01-01")
    x_range = saved["figure"]["layout"]["xaxis"]["range"]
    assert x_range[0] < "2019-01-01" and x_range[1] > "2019-02-01"  # the range asked, half a day on
    # Over the last year nothing of 2019 is left: the chart says so instead of bare axes.
    (recent,) = draw(client, dash_app, board, [0], span="1y").values()
    assert all(not trace.get("x") for trace in recent["figure"]["data"])
    assert recent["figure"]["layout"]["annotations"][0]["text"] == "No data in this range"


def test_a_chart_of_a_dataset_the_viewer_may_not_see_says_so(
    app, client, dash_app, auth, database_url
):
    push_recent(app, auth)
    auth.login_as(Role.ANALYST)
    call(client, dash_app, "explore-save-message.children", CHART)
    board = dashboard_id(app)
    assert "tank: sum(level)" in page_text(client, "/dashboards", f"?id={board}")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = 'tank'")
    auth.logout()
    auth.login_as(Role.VIEWER)
    (found,) = draw(client, dash_app, board, [0]).values()
    hidden = "A chart of a dataset you may not see"
    assert found["figure"]["layout"]["annotations"][0]["text"] == hidden
    assert not found["figure"]["data"]
    page = page_text(client, "/dashboards", f"?id={board}")
    assert hidden in page and "tank" not in page and "level" not in page  # neither named


def test_each_chart_links_to_explore_as_drawn(app, client, dash_app, auth):
    push_recent(app, auth)
    auth.login_as(Role.ANALYST)
    call(client, dash_app, "explore-save-message.children", CHART)
    auth.logout()
    auth.login_as(Role.VIEWER)
    drawn = draw_all(client, dash_app, dashboard_id(app), [0], span="7d")
    (link,) = [value["href"] for key, value in drawn.items() if "dashboard-explore" in key]
    assert link.startswith("/explore?")
    shown = Chart.from_mapping(parse_qs(urlsplit(link).query))
    assert (shown.dataset, shown.agg, shown.field, shown.bucket, shown.view, shown.range) == (
        "tank",
        "sum",
        "level",
        "1h",
        "bar",
        "7d",  # the dashboard's range, as drawn
    )


@pytest.mark.parametrize(
    "chart",
    [
        {"kind": "live", "dataset": "tank", "fields": [], "window": 500},
        {"kind": "live", "dataset": "tank", "fields": ["a", "b", "c", "d", "e"], "window": 500},
        {"kind": "live", "dataset": "tank", "fields": ["level"], "window": 7},
        {"kind": "live", "dataset": None, "fields": ["level"], "window": 500},
        {"kind": "live", "dataset": "tank", "fields": "level", "window": 500},
    ],
)
def test_a_malformed_live_chart_is_refused(app, auth, chart):
    auth.create("ana2@example.com", Role.ANALYST)
    with app.app_context():
        analyst = db.session.query(User).filter_by(email="ana2@example.com").one()
        with pytest.raises(DashboardError):
            add_chart(analyst, "Ops", chart)
        db.session.rollback()
        db.session.remove()
    assert dashboards(app) == []
