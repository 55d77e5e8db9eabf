"""The app in a real headless Chromium: sign-in, role-filtered navigation, 403/404, theme, sign-out.

The session ``app`` is served over HTTP by werkzeug in a background thread; each test gets a
fresh browser profile. Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import BROWSER_WAIT as WAIT
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CALLBACK_BODY = {
    "output": "admin-users-grid.rowData",
    "outputs": {"id": "admin-users-grid", "property": "rowData"},
    "inputs": [{"id": "admin-users-filters", "property": "data", "value": {}}],
    "changedPropIds": ["admin-users-filters.data"],
    "state": [],
}
# Calls the admin page's callback the way dash-renderer would, from inside the page.
FETCH_CALLBACK = """
const done = arguments[arguments.length - 1];
const token = (document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/) || [])[1] || "";
fetch("/_dash-update-component", {
  method: "POST",
  headers: {"Content-Type": "application/json", "X-CSRFToken": decodeURIComponent(token)},
  body: JSON.stringify(arguments[0]),
}).then(async (r) => done({status: r.status, body: await r.text()}),
        (e) => done({status: -1, body: String(e)}));
"""


def wait_for(driver, selector: str):
    located = ec.presence_of_element_located((By.CSS_SELECTOR, selector))
    return WebDriverWait(driver, WAIT).until(located)


def sign_in(driver, base_url: str, auth, email: str, role: str) -> None:
    auth.create(email, role)
    driver.get(f"{base_url}/login")
    wait_for(driver, "#email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "home-title"), "Welcome")
    )


def nav_hrefs(driver) -> list[str]:
    navbar = wait_for(driver, "#shell-navbar")
    return [link.get_attribute("pathname") for link in navbar.find_elements(By.TAG_NAME, "a")]


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name))


def call_admin_callback(driver) -> dict:
    result: dict = driver.execute_async_script(FETCH_CALLBACK, CALLBACK_BODY)
    return result


def test_admin_signs_in_and_sees_home_with_admin_navigation(driver, base_url, auth):
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    assert "root@example.com" in driver.find_element(By.ID, "home-title").text
    assert "/admin/users" in nav_hrefs(driver)
    screenshot(driver, "home-admin.png")


def test_viewer_has_no_admin_link_and_gets_403_on_admin_page(driver, base_url, auth):
    sign_in(driver, base_url, auth, "val@example.com", "viewer")
    hrefs = nav_hrefs(driver)
    assert "/" in hrefs
    assert "/admin/users" not in hrefs
    driver.get(f"{base_url}/admin/users")
    wait_for(driver, "#error-403")
    assert driver.find_elements(By.ID, "admin-users-grid") == []
    screenshot(driver, "viewer-403.png")


def test_viewer_cannot_call_admin_callback_from_the_browser(driver, base_url, auth):
    sign_in(driver, base_url, auth, "val@example.com", "viewer")
    result = call_admin_callback(driver)
    assert result["status"] == 403, result
    assert "root@example.com" not in result["body"]


def test_admin_can_call_admin_callback_from_the_browser(driver, base_url, auth):
    auth.create("val@example.com", "viewer")
    sign_in(driver, base_url, auth, "root@example.com", "admin")
    result = call_admin_callback(driver)
    assert result["status"] == 200, result
    rows = json.loads(result["body"])["response"]["admin-users-grid"]["rowData"]
    assert sorted(row["email"] for row in rows) == ["root@example.com", "val@example.com"]


def test_unknown_page_shows_404(driver, base_url, auth):
    sign_in(driver, base_url, auth, "val@example.com", "viewer")
    driver.get(f"{base_url}/no-such-page")
    wait_for(driver, "#error-404")
    assert driver.find_elements(By.ID, "home-title") == []


def test_dark_switch_sets_the_color_scheme(app, driver, base_url, auth):
    from tests.test_explore_page import push_recent

    push_recent(app, auth)  # a chart to look at
    sign_in(driver, base_url, auth, "val@example.com", "viewer")
    html = driver.find_element(By.TAG_NAME, "html")
    assert html.get_attribute("data-mantine-color-scheme") == "light"
    driver.find_element(By.CSS_SELECTOR, "label[for='shell-theme-switch']").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: html.get_attribute("data-mantine-color-scheme") == "dark"
    )
    assert driver.find_element(By.ID, "shell-theme-switch").is_selected()
    # The grids and charts follow: AG Grid by its theme mode, Plotly by the stylesheet.
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ag-theme-mode") == "dark"
    driver.get(f"{base_url}/explore?dataset=tank&range=1h&view=bar")  # the switch is kept
    frame = wait_for(driver, "#explore-graph .js-plotly-plot .main-svg")  # the bottom layer
    layers = driver.find_elements(By.CSS_SELECTOR, "#explore-graph .js-plotly-plot .main-svg")
    assert len(layers) > 1
    assert all(  # the layers above it let the chart show through
        _alpha(layer.value_of_css_property("background-color")) == 0 for layer in layers[1:]
    )
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ag-theme-mode") == "dark"
    )
    tick = wait_for(driver, "#explore-graph .xtick text")
    assert _brightness(frame.value_of_css_property("background-color")) < 80
    plot_area = driver.find_element(By.CSS_SELECTOR, "#explore-graph .bglayer .bg")
    assert _brightness(plot_area.value_of_css_property("fill")) < 80
    assert _brightness(tick.value_of_css_property("fill")) > 170
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    screenshot(driver, "dark-explore.png")


def _alpha(css_colour: str) -> float:
    parts = re.findall(r"[\d.]+", css_colour)
    return float(parts[3]) if len(parts) > 3 else 1.0


def _brightness(css_colour: str) -> float:
    """The mean of the red, green and blue of an rgb() or rgba() colour, 0 to 255."""
    red, green, blue = (float(part) for part in re.findall(r"[\d.]+", css_colour)[:3])
    return (red + green + blue) / 3


def test_sign_out_through_the_user_menu(driver, base_url, auth):
    sign_in(driver, base_url, auth, "val@example.com", "viewer")
    driver.find_element(By.ID, "shell-user-menu").click()
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "shell-logout"))).click()
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "logout-submit"))).click()
    WebDriverWait(driver, WAIT).until(ec.url_to_be(f"{base_url}/login"))
    wait_for(driver, "#login-form")
    driver.get(f"{base_url}/")
    WebDriverWait(driver, WAIT).until(ec.url_contains("/login"))
    assert driver.current_url.startswith(f"{base_url}/login")
    wait_for(driver, "#login-form")


def test_on_a_narrow_screen_the_burger_opens_and_closes_the_navigation(driver, base_url, auth):
    driver.set_window_size(400, 800)
    sign_in(driver, base_url, auth, "nan@example.com", "analyst")
    navbar = driver.find_element(By.ID, "shell-navbar")

    def shown() -> bool:
        return navbar.rect["x"] + navbar.rect["width"] > 0

    WebDriverWait(driver, WAIT).until(lambda _: not shown())
    driver.find_element(By.ID, "home-title").click()  # the page is not under the navigation
    assert not driver.find_element(By.ID, "shell-user-email").is_displayed()
    burger = driver.find_element(By.ID, "shell-burger")
    burger.click()
    WebDriverWait(driver, WAIT).until(lambda _: shown())
    screenshot(driver, "narrow-navigation.png")
    link = navbar.find_element(By.CSS_SELECTOR, "a[href='/explore']")
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable(link)).click()
    WebDriverWait(driver, WAIT).until(ec.url_to_be(f"{base_url}/explore"))
    WebDriverWait(driver, WAIT).until(lambda _: not shown())
    burger.click()
    WebDriverWait(driver, WAIT).until(lambda _: shown())
    burger.click()
    WebDriverWait(driver, WAIT).until(lambda _: not shown())
    assert driver.get_window_size()["width"] <= 420
