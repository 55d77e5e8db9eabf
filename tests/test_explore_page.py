"""The explore page: aggregates against hand-computed answers, the chart, the link, the export."""

from __future__ import annotations

import csv
import io
import json
import statistics
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlencode

import orjson
import psycopg
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.charts import CUSTOM, MAX_SPAN, Chart, parse_moment, range_over, window
from app.cli import main
from app.database import libpq_url
from app.event_queries import TimeRange, chart_series, parse_filter
from app.extensions import db
from app.models import Dataset, Role
from tests.conftest import PLOTLY
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import call
from tests.test_roles import page_text

DAY = timedelta(days=1)


@pytest.fixture
def sales(app, runner):
    result = runner.invoke(
        main, ["ingest", str(PLOTLY / "supermarket_Sales.csv"), "--dataset", "sales"]
    )
    assert result.exit_code == 0, result.output


JANUARY = TimeRange(datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 2, 1, tzinfo=UTC))
COMPUTE = {
    "count": len,
    "sum": sum,
    "avg": statistics.fmean,
    "min": min,
    "max": max,
    "p50": lambda v: statistics.quantiles(v, n=100, method="inclusive")[49] if len(v) > 1 else v[0],
    "p95": lambda v: statistics.quantiles(v, n=100, method="inclusive")[94] if len(v) > 1 else v[0],
}


def stored_rows(database_url) -> list[tuple[datetime, dict]]:
    """The sales events of January 2019 as stored, read apart from the code under test."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(
            "SELECT e.ts, e.payload FROM events e JOIN datasets d ON d.id = e.dataset_id "
            "WHERE d.name = 'sales' AND e.ts < '2019-02-01'"
        ).fetchall()


def per_day(rows, agg: str) -> dict[datetime, float]:
    """Per UTC day, ``agg`` of ``total`` computed in Python."""
    days: dict[datetime, list[float]] = {}
    for ts, payload in rows:
        day = datetime(ts.year, ts.month, ts.day, tzinfo=UTC)
        days.setdefault(day, []).append(payload["total"])
    return {day: float(COMPUTE[agg](values)) for day, values in days.items()}


def sales_chart(app, agg, filters=(), group=None, top=5):
    with app.app_context():
        dataset = db.session.query(Dataset).filter_by(name="sales").one()
        field = None if agg == "count" else "total"
        parsed = [parse_filter(item) for item in filters]
        lines = chart_series(dataset, JANUARY, DAY, agg, field, parsed, group, top)
        db.session.remove()
    return lines


def assert_points(points, expected, label):
    assert [bucket for bucket, _ in points] == sorted(expected), label
    for bucket, value in points:
        assert value == pytest.approx(expected[bucket], rel=1e-9), (label, bucket)


@pytest.mark.parametrize("agg", ["count", "sum", "avg", "min", "max", "p50", "p95"])
def test_every_aggregate_matches_a_hand_computed_answer(app, sales, database_url, agg):
    (line,) = sales_chart(app, agg)
    assert_points(line.points, per_day(stored_rows(database_url), agg), agg)


@pytest.mark.parametrize("agg", ["count", "sum", "avg", "min", "max", "p50", "p95"])
def test_group_by_keeps_the_top_groups_and_gathers_the_rest_as_other(app, sales, database_url, agg):
    rows = stored_rows(database_url)
    sizes: dict[str, int] = {}
    for _ts, payload in rows:
        sizes[payload["product_line"]] = sizes.get(payload["product_line"], 0) + 1
    assert len(sizes) == 6
    top = sorted(sizes, key=lambda name: (-sizes[name], name))[:2]
    lines = sales_chart(app, agg, group="product_line", top=2)
    assert [(line.group, line.other) for line in lines] == [
        *((name, False) for name in sorted(top)),
        (None, True),
    ]
    for line in lines:
        if line.other:
            wanted = [(ts, p) for ts, p in rows if p["product_line"] not in top]
        else:
            wanted = [(ts, p) for ts, p in rows if p["product_line"] == line.group]
        assert_points(line.points, per_day(wanted, agg), (agg, line.group))


EXPLORE_FILTERS = [
    ("city:eq:Yangon", lambda p: p["city"] == "Yangon"),
    ("city:in:Yangon,Mandalay", lambda p: p["city"] in {"Yangon", "Mandalay"}),
    ("quantity:between:3,5", lambda p: 3 <= p["quantity"] <= 5),
    ("product_line:contains:ACCESS", lambda p: "access" in p["product_line"].lower()),
    ("total:gte:500", lambda p: p["total"] >= 500),
]


@pytest.mark.parametrize(("spec", "test"), EXPLORE_FILTERS, ids=[s for s, _ in EXPLORE_FILTERS])
@pytest.mark.parametrize("agg", ["count", "sum", "p50"])
def test_each_filter_matches_a_hand_computed_answer(app, sales, database_url, spec, test, agg):
    wanted = [(ts, payload) for ts, payload in stored_rows(database_url) if test(payload)]
    assert wanted
    (line,) = sales_chart(app, agg, filters=[spec])
    assert_points(line.points, per_day(wanted, agg), (spec, agg))


def push_recent(app, auth) -> list[float]:
    """Push ten events over the last ten minutes and return their values."""
    token = auth.api_token("pusher@example.com", Role.ANALYST)
    now = datetime.now(UTC)
    values = [float(i) for i in range(10)]
    rows = [
        {"time": (now - timedelta(minutes=10 - i)).isoformat(), "level": v}
        for i, v in enumerate(values)
    ]
    response = app.test_client().post(
        "/api/v1/datasets/tank/events",
        data=orjson.dumps(rows),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.get_json()
    return values


def test_the_chart_the_link_and_the_export_agree(app, client, dash_app, auth):
    values = push_recent(app, auth)
    auth.login_as(Role.VIEWER)
    controls = {
        "explore-dataset.value": "tank",
        "explore-range.value": "1h",
        "explore-agg.value": "sum",
        "explore-field.value": "level",
        "explore-bucket.value": "1h",
        "explore-view.value": "bar",
    }
    response = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
    figure = response["explore-graph"]["figure"]
    assert figure["data"][0]["type"] == "bar"
    assert sum(figure["data"][0]["y"]) == pytest.approx(sum(values))
    link = response["explore-link"]["href"]
    assert link.startswith("/explore?") and "dataset=tank" in link and "agg=sum" in link
    assert client.get(link).status_code == 200
    export_values = {key: value for key, value in controls.items() if "view" not in key}
    exported = call(
        client, dash_app, "explore-download.data", {"explore-export.n_clicks": 1, **export_values}
    )
    content = exported.get_json()["response"]["explore-download"]["data"]["content"]
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["bucket", "sum(level)"]
    assert sum(float(row[1]) for row in rows[1:]) == pytest.approx(sum(values))


def test_a_restricted_dataset_is_not_charted_for_others(app, client, dash_app, auth, database_url):
    push_recent(app, auth)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = 'tank'")
    auth.login_as(Role.VIEWER)
    controls = {
        "explore-dataset.value": "tank",
        "explore-range.value": "1h",
        "explore-agg.value": "count",
        "explore-bucket.value": "auto",
        "explore-view.value": "line",
    }
    response = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
    assert response == {
        "explore-note": {"children": "Choose a dataset."},
        "explore-drawn": {"data": None},
    }
    export = call(
        client, dash_app, "explore-download.data", {"explore-export.n_clicks": 1, **controls}
    )
    assert "explore-download" not in (export.get_json() or {}).get("response", {})


def walk(node):
    """Every component in a layout's JSON, depth first."""
    if isinstance(node, dict):
        if "props" in node:
            yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def explore_controls(client, search: str) -> tuple[dict, str]:
    """The Explore page's control values for a link's ``search``, and the page's JSON text."""
    text = page_text(client, "/explore", search)
    values = {
        node["props"]["id"]: node["props"].get("value")
        for node in walk(json.loads(text))
        if str(node["props"].get("id", "")).startswith("explore-")
    }
    return values, text


def test_a_link_to_history_opens_on_the_days_its_events_span(app, client, auth, sales):
    auth.login_as(Role.VIEWER)
    values, text = explore_controls(client, "?dataset=sales")
    # supermarket_Sales.csv runs from 1 January to 30 March 2019.
    assert (values["explore-range"], values["explore-start"], values["explore-end"]) == (
        "custom",
        "2019-01-01 00:00:00",
        "2019-03-31 00:00:00",
    )
    assert "sales has no events in the last day; showing 2019-01-01 to 2019-03-31" in text
    values, text = explore_controls(client, "?dataset=sales&range=24h")  # a range asked for
    assert values["explore-range"] == "24h" and "explore-notice" not in text


def test_a_range_over_long_history_keeps_to_the_last_ten_years():
    first, last = datetime(1948, 1, 1, tzinfo=UTC), datetime(2017, 12, 14, 5, tzinfo=UTC)
    start, end = range_over(first, last)
    assert end == "2017-12-15 00:00:00"
    assert window(Chart(range=CUSTOM, start=start, end=end), datetime.now(UTC))[0] >= first
    assert parse_moment(end, "end") - parse_moment(start, "start") <= MAX_SPAN


def test_a_link_to_a_dataset_one_may_not_see_says_so_in_the_same_words(
    app, client, auth, database_url
):
    push_recent(app, auth)
    auth.login_as(Role.VIEWER)
    assert "explore-notice" not in page_text(client, "/explore", "?dataset=tank")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = 'tank'")
    hidden = page_text(client, "/explore", "?dataset=tank")
    missing = page_text(client, "/explore", "?dataset=tanks")
    assert "No dataset 'tank' is available to you." in hidden
    assert "No dataset 'tanks' is available to you." in missing
    assert "There is no dashboard '999'" in page_text(client, "/dashboards", "?id=999")


def test_a_link_reproduces_every_control():
    chart = Chart(
        dataset="sales",
        range="custom",
        start="2019-01-01 00:00:00",
        end="2019-02-01 00:00:00",
        agg="p95",
        field="total",
        bucket="1d",
        view="bar",
        group="city",
        top=3,
        filters=("quantity:between:3,5", "city:in:Yangon,Mandalay"),
    )
    assert Chart.from_mapping(parse_qs(chart.query_string())) == chart
    single = Chart(dataset="sales", filters=("city:eq:Yangon",))
    assert Chart.from_mapping(parse_qs(single.query_string())) == single


def test_a_link_drops_what_the_page_does_not_offer():
    chart = Chart.from_mapping(
        {"range": "2y", "agg": "median", "view": "pie", "top": "999", "filter": ["", "x" * 600]}
    )
    assert (chart.range, chart.agg, chart.view, chart.top, chart.filters) == (
        "24h",
        "count",
        "line",
        5,
        (),
    )


JANUARY_CONTROLS = {
    "explore-dataset.value": "sales",
    "explore-range.value": "custom",
    "explore-start.value": "2019-01-01 00:00:00",
    "explore-end.value": "2019-02-01 00:00:00",
    "explore-agg.value": "sum",
    "explore-field.value": "total",
    "explore-bucket.value": "1d",
    "explore-view.value": "bar",
    "explore-group.value": "city",
    "explore-top.value": 2,
}


def test_a_grouped_custom_range_chart_draws_one_trace_per_group(app, sales, client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    response = call(client, dash_app, "explore-note.children", JANUARY_CONTROLS).get_json()
    drawn = response["response"]
    names = [trace["name"] for trace in drawn["explore-graph"]["figure"]["data"]]
    assert len(names) == 3 and names[-1] == "other"
    assert drawn["explore-drawn"]["data"]["groups"] == [*names[:2], None]
    assert drawn["explore-drawn"]["data"]["width"] == 86400
    assert "31 buckets" not in drawn["explore-note"]["children"]
    assert "in 3 groups" in drawn["explore-note"]["children"]
    link = drawn["explore-link"]["href"]
    assert "range=custom" in link and "group=city" in link and "top=2" in link


def test_clicking_a_bar_drills_into_its_day_and_its_group(app, sales, client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    drawn = call(client, dash_app, "explore-note.children", JANUARY_CONTROLS).get_json()
    store = drawn["response"]["explore-drawn"]["data"]
    clicked = {"points": [{"curveNumber": 0, "x": "2019-01-05", "customdata": store["groups"][0]}]}
    steer = {  # only the click changed, as in the browser
        "explore-bucket.value": "1d",
        "explore-graph.clickData": clicked,
        "explore-drawn.data": store,
        "explore-filters.value": [],
    }
    response = call(client, dash_app, "explore-filter-value.value", steer).get_json()["response"]
    assert response["explore-range"]["value"] == "custom"
    assert response["explore-start"]["value"] == "2019-01-05 00:00:00"
    assert response["explore-end"]["value"] == "2019-01-06 00:00:00"
    assert response["explore-bucket"]["value"] == "auto"
    assert response["explore-filters"]["value"] == [f"city:eq:{store['groups'][0]}"]
    zoomed = {
        **JANUARY_CONTROLS,
        "explore-start.value": response["explore-start"]["value"],
        "explore-end.value": response["explore-end"]["value"],
        "explore-bucket.value": "auto",
        "explore-filters.value": response["explore-filters"]["value"],
    }
    redrawn = call(client, dash_app, "explore-note.children", zoomed).get_json()["response"]
    traces = redrawn["explore-graph"]["figure"]["data"]
    assert [trace["name"] for trace in traces] == [store["groups"][0]]
    assert redrawn["explore-drawn"]["data"]["width"] == 15 * 60  # auto bucket for one day


def test_a_legend_click_keeps_only_that_group(app, sales, client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    drawn = call(client, dash_app, "explore-note.children", JANUARY_CONTROLS).get_json()
    store = drawn["response"]["explore-drawn"]["data"]
    steer = {
        "explore-graph.restyleData": [{"visible": ["legendonly", True, "legendonly"]}, [0, 1, 2]],
        "explore-drawn.data": store,
        "explore-filters.value": ["quantity:gte:2"],
    }
    response = call(client, dash_app, "explore-filter-value.value", steer).get_json()["response"]
    assert response["explore-filters"]["value"] == [
        "quantity:gte:2",
        f"city:eq:{store['groups'][1]}",
    ]
    steer["explore-graph.restyleData"] = [
        {"visible": ["legendonly", "legendonly", True]},
        [0, 1, 2],
    ]
    other = call(client, dash_app, "explore-filter-value.value", steer)
    assert other.status_code == 204  # "other" is not one group: nothing to drill into


def test_the_filter_builder_adds_a_filter_and_bad_filters_say_why(
    app, sales, client, dash_app, auth
):
    auth.login_as(Role.VIEWER)
    add = {
        "explore-filter-add.n_clicks": 1,
        "explore-filter-field.value": "quantity",
        "explore-filter-op.value": "between",
        "explore-filter-value.value": " 3,5 ",
        "explore-filters.value": [],
    }
    response = call(client, dash_app, "explore-filter-value.value", add).get_json()["response"]
    assert response["explore-filters"]["value"] == ["quantity:between:3,5"]
    for bad, message in [
        ("quantity:between:5,3", "lower number first"),
        ("city:lt:x", "takes the operators"),
        ("nothing:eq:1", "no field"),
        ("total:eq:1 OR 1=1", "numeric"),
    ]:
        controls = {**JANUARY_CONTROLS, "explore-filters.value": [bad]}
        note = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
        assert message in note["explore-note"]["children"].lower(), bad
        # The chart area says so too, instead of keeping the last question's lines.
        figure = note["explore-graph"]["figure"]
        assert figure["data"] == []
        assert figure["layout"]["annotations"][0]["text"] == note["explore-note"]["children"]


def test_a_custom_range_must_make_sense(app, sales, client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    for start, end, bucket, message in [
        ("2019-02-01 00:00:00", "2019-01-01 00:00:00", "1d", "start before it ends"),
        ("yesterday", "2019-01-01 00:00:00", "1d", "not a date"),
        ("2010-01-01 00:00:00", "2019-01-01 00:00:00", "1m", "too many points"),
    ]:
        controls = {
            **JANUARY_CONTROLS,
            "explore-start.value": start,
            "explore-end.value": end,
            "explore-bucket.value": bucket,
        }
        note = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
        assert message in note["explore-note"]["children"], (start, end)


def test_a_grouped_export_has_one_row_per_group_and_bucket(app, sales, client, dash_app, auth):
    auth.login_as(Role.VIEWER)
    exported = call(
        client,
        dash_app,
        "explore-download.data",
        {"explore-export.n_clicks": 1, **JANUARY_CONTROLS},
    )
    content = exported.get_json()["response"]["explore-download"]["data"]["content"]
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["bucket", "city", "sum(total)"]
    assert {row[1] for row in rows[1:]} <= {"Yangon", "Mandalay", "Naypyitaw", "other"}
    assert len({row[1] for row in rows[1:]}) == 3
    total = sum(float(row[2]) for row in rows[1:])
    with app.app_context():
        dataset = db.session.query(Dataset).filter_by(name="sales").one()
        (line,) = chart_series(dataset, JANUARY, DAY, "sum", "total")
        db.session.remove()
    assert total == pytest.approx(sum(value for _, value in line.points))


TRACE_NAMES = """
const graph = document.querySelector('#explore-graph .js-plotly-plot');
return graph && graph.data ? Array.from(graph.data).map((trace) => trace.name) : [];
"""


@pytest.mark.browser
def test_clicking_the_legend_and_a_bar_drills_down_in_the_browser(driver, base_url, auth, sales):
    sign_in(driver, base_url, auth, "vic@example.com", "viewer")
    query = {key.split(".")[0].removeprefix("explore-"): v for key, v in JANUARY_CONTROLS.items()}
    driver.get(f"{base_url}/explore?{urlencode(query)}")
    WebDriverWait(driver, WAIT).until(lambda d: len(d.execute_script(TRACE_NAMES)) == 3)
    first = driver.execute_script(TRACE_NAMES)[0]
    legend = driver.find_elements(By.CSS_SELECTOR, "#explore-graph .legend .traces")
    next(item for item in legend if item.text == first).click()
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(TRACE_NAMES) == [first])
    link = driver.find_element(By.ID, "explore-link")
    WebDriverWait(driver, WAIT).until(
        lambda _d: f"filter=city:eq:{first}" in unquote(link.get_attribute("href"))
    )
    bar = wait_for(driver, "#explore-graph .bars .point path")
    ActionChains(driver).move_to_element(bar).pause(0.3).click().perform()  # Plotly's own layer
    WebDriverWait(driver, WAIT).until(
        lambda d: "in 15m buckets" in d.find_element(By.ID, "explore-note").text
    )
    href = driver.find_element(By.ID, "explore-link").get_attribute("href")
    assert "range=custom" in href and f"filter=city:eq:{first}" in unquote(href)
    screenshot(driver, "explore-drilled.png")


@pytest.mark.browser
def test_the_table_view_fills_its_width_and_the_grid_never_warns(driver, base_url, auth, sales):
    sign_in(driver, base_url, auth, "vic@example.com", "viewer")
    query = {key.split(".")[0].removeprefix("explore-"): v for key, v in JANUARY_CONTROLS.items()}
    driver.get(f"{base_url}/explore?{urlencode(query)}")  # a chart: the table is hidden
    WebDriverWait(driver, WAIT).until(lambda d: len(d.execute_script(TRACE_NAMES)) == 3)
    driver.get(f"{base_url}/explore?{urlencode(query | {'view': 'table'})}")
    rows = "#explore-table .ag-row"
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, rows))
    grid = driver.find_element(By.ID, "explore-table").rect["width"]
    headers = driver.find_elements(By.CSS_SELECTOR, "#explore-table .ag-header-cell")
    assert [cell.text for cell in headers] == ["Bucket", "Group", "Value"]
    assert sum(cell.rect["width"] for cell in headers) >= grid * 0.95
    assert [e["message"] for e in driver.get_log("browser") if "AG Grid" in e["message"]] == []
