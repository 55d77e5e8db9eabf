"""Whole journeys in headless Chromium, one per role, each ending with a screenshot.

A viewer opens a dashboard, changes its range and exports; an analyst uploads a CSV, watches
it live and schedules a job; an admin creates a user, changes their role and reads the audit
log. Screenshots go to ``test-artifacts/journey-<role>.png``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from app.cli import main
from app.dashboards import add_chart
from app.extensions import db
from app.tokens import create_token
from app.users import get_user
from tests import test_live_page
from tests.conftest import PLOTLY
from tests.test_browser import WAIT, nav_hrefs, screenshot, sign_in, wait_for
from tests.test_live_page import graph_points, wait_for_status

pytestmark = pytest.mark.browser

hubs = test_live_page.hubs  # a hub for the served app, started by the analyst's journey

RIDERSHIP = "subways_total_estimated_ridership"
BAR_TOTALS = """
const graph = document.querySelector('.dashboard-card .js-plotly-plot');
return graph && graph.data && graph.data.length ? Array.from(graph.data[0].y) : null;
"""


def choose(driver, select_id: str, label: str) -> None:
    """Pick ``label`` in a Mantine select, as a person would: open it, click the option."""
    select = driver.find_element(By.ID, select_id)
    select.click()
    # Only this select's list: another select's may still be in the page, hidden.
    listbox = WebDriverWait(driver, WAIT).until(lambda _d: select.get_attribute("aria-controls"))
    option = f"//*[@id='{listbox}']//*[@role='option' and normalize-space()='{label}']"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.XPATH, option))).click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, select_id).get_attribute("value") == label
    )


# --- the viewer -----------------------------------------------------------------------------


@pytest.fixture
def ridership(runner, tmp_path) -> list[tuple[datetime, float]]:
    """Load MTA's daily ridership, re-dated so its last day is an hour ago; return the rows.

    A dashboard's ranges end now; the real figures are kept, only moved to recent days, and
    an hour's margin keeps every event clear of a range's edge.
    """
    with (PLOTLY / "MTA_Daily_Ridership.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    days = [datetime.fromisoformat(row[0]) for row in body]
    anchor = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    moved = [anchor - (max(days) - day) for day in days]
    shifted = tmp_path / "mta.csv"
    with shifted.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, moment in zip(body, moved, strict=True):
            writer.writerow([moment.strftime("%Y-%m-%dT%H:%M:%SZ"), *row[1:]])
    args = ["ingest", str(shifted), "--dataset", "mta", "--time-column", "date"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    subways = header.index("Subways: Total Estimated Ridership")
    return [(moment, float(row[subways])) for row, moment in zip(body, moved, strict=True)]


def ridership_board(app, auth) -> int:
    """An analyst's dashboard of two ridership charts; return its id."""
    auth.create("owner@example.com", "analyst")
    charts = [
        {"dataset": "mta", "agg": "sum", "field": RIDERSHIP, "bucket": "1d", "view": "bar"},
        {"dataset": "mta", "agg": "max", "field": "buses_total_estimated_ridership"},
    ]
    with app.app_context():
        owner = get_user("owner@example.com")
        for chart in charts:
            board = add_chart(owner, "Ridership", chart).id
        db.session.remove()
    return board


def total_since(rows: list[tuple[datetime, float]], span: timedelta) -> float:
    since = datetime.now(UTC) - span
    return sum(value for moment, value in rows if moment > since)


def bar_total(driver) -> float | None:
    values = driver.execute_script(BAR_TOTALS)
    return sum(values) if values else None


def test_viewer_opens_a_dashboard_changes_its_range_and_exports(
    driver, base_url, auth, app, ridership, tmp_path
):
    board = ridership_board(app, auth)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    sign_in(driver, base_url, auth, "vic@example.com", "viewer")
    assert not [href for href in nav_hrefs(driver) if href.startswith("/admin")]
    for page in ("/admin/users", "/admin/audit"):
        driver.get(f"{base_url}{page}")
        wait_for(driver, "#error-403")

    driver.get(f"{base_url}/dashboards")
    wait_for(driver, f"#dashboards-list a[href='/dashboards?id={board}']").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "dashboard-title").text == "Ridership"
    )
    last_day = total_since(ridership, timedelta(hours=24))
    WebDriverWait(driver, WAIT).until(lambda d: bar_total(d) == last_day)
    choose(driver, "dashboard-range", "last 7d")
    week = total_since(ridership, timedelta(days=7))
    assert week > last_day
    WebDriverWait(driver, WAIT).until(lambda d: bar_total(d) == week)
    assert not driver.find_element(By.ID, "dashboard-delete").is_displayed()

    # The same chart on Explore (its own link), exported as CSV through the browser.
    query = {"dataset": "mta", "range": "7d", "agg": "sum", "field": RIDERSHIP, "bucket": "1d"}
    driver.get(f"{base_url}/explore?{urlencode({**query, 'view': 'bar'})}")
    WebDriverWait(driver, WAIT).until(
        lambda d: "in 1d buckets" in d.find_element(By.ID, "explore-note").text
    )
    driver.find_element(By.ID, "explore-export").click()
    exported = downloads / "mta-sum-7d.csv"
    WebDriverWait(driver, WAIT).until(lambda _d: exported.exists())
    records = list(csv.reader(io.StringIO(exported.read_text())))
    assert records[0][0] == "bucket"
    assert sum(float(value) for _, value in records[1:]) == week

    screenshot(driver, "journey-viewer.png")


# --- the analyst ----------------------------------------------------------------------------

PUSHED = {
    "total_bill": 50.25,
    "tip": 7.5,
    "sex": "Female",
    "smoker": "No",
    "day": "Sat",
    "time": "Dinner",
    "size": 3,
}


def live_totals(driver) -> list[float]:
    traces = graph_points(driver)
    return traces[0]["y"] if traces else []


def test_analyst_uploads_a_csv_sees_it_live_and_schedules_a_job(driver, base_url, auth, app, hubs):
    hubs.start()
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    wait_for(driver, "#datasets-upload input[type=file]").send_keys(str(PLOTLY / "tips.csv"))
    wait_for(driver, "#datasets-preview-grid .ag-row")
    assert driver.find_element(By.ID, "datasets-name").get_attribute("value") == "tips"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "datasets-load"))).click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "datasets-summary-loaded"), "243")
    )

    driver.get(f"{base_url}/live?dataset=tips")
    wait_for_status(driver, "live")
    WebDriverWait(driver, WAIT).until(lambda d: len(live_totals(d)) == 243)
    with app.app_context():
        token = create_token(get_user("ana@example.com"), "journey")
        db.session.remove()
    pushed = app.test_client().post(
        "/api/v1/datasets/tips/events",
        data=orjson.dumps([PUSHED]),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/json",
    )
    assert pushed.status_code in (200, 201), pushed.get_json()
    WebDriverWait(driver, WAIT).until(lambda d: len(live_totals(d)) == 244)
    assert live_totals(driver)[-1] == PUSHED["total_bill"]

    driver.get(f"{base_url}/jobs")
    wait_for(driver, "#jobs-name").send_keys("tips_demo")
    driver.find_element(By.ID, "jobs-dataset").send_keys("tips_ticks")
    driver.find_element(By.ID, "jobs-create").click()
    wait_for(driver, "#jobs-create-done")
    row = "#jobs-grid .ag-row [col-id='{}']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, row.format("name")), "tips_demo")
    )
    assert driver.find_element(By.CSS_SELECTOR, row.format("schedule")).text == "every 60 s"
    assert driver.find_element(By.CSS_SELECTOR, row.format("owner")).text == "ana@example.com"
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})", driver.find_element(By.ID, "jobs-grid")
    )
    screenshot(driver, "journey-analyst.png")


# --- the admin ------------------------------------------------------------------------------

NORA = "nora@example.com"
AUDIT_CELLS = """
return Array.from(document.querySelectorAll('#admin-audit-grid .ag-center-cols-container .ag-row'))
  .map((row) => ['action', 'target', 'details'].map(
    (col) => (row.querySelector(`[col-id='${col}']`) || {}).textContent || ''));
"""


def audit_entries(driver) -> list[tuple[str, str, str]]:
    """The (action, target, details) of each row the audit grid shows."""
    cells = driver.execute_script(AUDIT_CELLS)
    return [tuple(row) for row in cells]


def test_admin_creates_a_user_changes_their_role_and_finds_both_in_the_audit_log(
    driver, base_url, auth
):
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    driver.get(f"{base_url}/admin/users")
    wait_for(driver, "#admin-users-email").send_keys(NORA)
    choose(driver, "admin-users-role", "analyst")
    driver.find_element(By.ID, "admin-users-create").click()
    assert len(wait_for(driver, "#admin-users-secret-value").text) >= 10
    cell = f"#admin-users-grid .ag-row[row-id='{NORA}'] [col-id='{{}}']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, cell.format("role")), "analyst")
    )

    driver.find_element(By.CSS_SELECTOR, cell.format("email")).click()
    choose(driver, "admin-users-new-role", "viewer")
    driver.find_element(By.ID, "admin-users-set-role").click()
    WebDriverWait(driver, WAIT).until(ec.alert_is_present()).accept()
    wait_for(driver, "#admin-users-done")
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, cell.format("role")), "viewer")
    )

    driver.get(f"{base_url}/admin/audit")
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            {"user.create", "user.set_role"}
            <= {action for action, target, _ in audit_entries(d) if target == NORA}
        )
    )
    entries = {
        action: details for action, target, details in audit_entries(driver) if target == NORA
    }
    assert '"role": "analyst"' in entries["user.create"]
    assert '"old": "analyst"' in entries["user.set_role"]
    assert '"new": "viewer"' in entries["user.set_role"]
    screenshot(driver, "journey-admin.png")
