"""The live page in headless Chromium against a real hub: pushed rows appear on the graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from selenium.webdriver.support.ui import WebDriverWait
from websockets.sync.client import connect

from app.hub import HubThread
from app.hub.access import HubAccess
from app.hub.hub import HubSettings, LiveHub
from app.hub.protocol import validator
from tests.test_browser import WAIT, screenshot, sign_in

pytestmark = pytest.mark.browser

GRAPH_POINTS = """
const box = document.getElementById(arguments[0]);
const graph = box && box.querySelector('.js-plotly-plot');
if (!graph || !graph.data || !graph.data.length) { return null; }
return graph.data.map((trace) => ({x: trace.x.length, y: Array.from(trace.y)}));
"""
PAGE_CHART = "page"  # the key of the live page's chart (app.components.live)


def chart_element_id(part: str, key: str = PAGE_CHART) -> str:
    """The DOM id of one piece of a live chart: its pattern-matching id as Dash writes it."""
    return json.dumps({"key": key, "type": f"live-chart-{part}"}, separators=(",", ":"))


class Hubs:
    """Start hubs for the served app (its live tokens point at the newest) and stop them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.running: list[HubThread] = []

    def start(self) -> LiveHub:
        settings = HubSettings(port=0, tick=0.01, heartbeat=5.0)
        config = self.app.config
        hub = LiveHub(
            settings, config["SQLALCHEMY_DATABASE_URI"], config["SECRET_KEY"], HubAccess(self.app)
        )
        self.running.append(HubThread(hub))
        config["HUB_PORT"] = self.running[-1].start()
        return hub

    def stop(self) -> None:
        while self.running:
            self.running.pop().stop()


@pytest.fixture
def hubs(app) -> Iterator[Hubs]:
    control = Hubs(app)
    yield control
    control.stop()
    app.config.pop("HUB_PORT", None)


@pytest.fixture
def pusher(app, auth):
    token = auth.api_token("pusher@example.com", "analyst")
    client = app.test_client()

    def push(values: list[float], dataset: str = "plant") -> None:
        rows = [
            {"time": f"2024-06-01T08:00:{push.sent + i:02d}Z", "temperature": v}
            for i, v in enumerate(values)
        ]
        push.sent += len(values)
        response = client.post(
            f"/api/v1/datasets/{dataset}/events",
            data=orjson.dumps(rows),
            headers={"Authorization": f"Bearer {token}"},
            content_type="application/json",
        )
        assert response.status_code in (200, 201), response.get_json()

    push.sent = 0
    push.headers = {"Authorization": f"Bearer {token}"}
    return push


def graph_points(driver, key: str = PAGE_CHART) -> Any:
    return driver.execute_script(GRAPH_POINTS, chart_element_id("graph", key))


def chart_element(driver, part: str, key: str = PAGE_CHART) -> Any:
    """One piece of a live chart, or None (selectors would need its quotes escaped)."""
    return driver.execute_script(
        "return document.getElementById(arguments[0]);", chart_element_id(part, key)
    )


def status_text(driver, key: str = PAGE_CHART) -> str:
    found = chart_element(driver, "status", key)
    return found.text.lower() if found is not None else ""


def wait_for_points(driver, expected: list[float], key: str = PAGE_CHART) -> None:
    def drawn(_driver: Any) -> bool:
        traces = graph_points(driver, key)
        return bool(traces) and traces[0]["y"] == expected

    try:
        WebDriverWait(driver, WAIT).until(drawn)
    except Exception as exc:
        status = status_text(driver, key)
        raise AssertionError(
            f"graph shows {graph_points(driver, key)}, expected {expected} (status {status!r})"
        ) from exc


def wait_for_status(driver, text: str, key: str = PAGE_CHART) -> None:
    WebDriverWait(driver, WAIT).until(lambda d: status_text(d, key) == text)


def test_pushed_rows_appear_on_the_live_graph_exactly_once(driver, base_url, auth, hubs, pusher):
    hubs.start()
    pusher([20.5, 21.0])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_points(driver, [20.5, 21.0])
    wait_for_status(driver, "live")
    pusher([21.5, 22.0, 22.5])
    wait_for_points(driver, [20.5, 21.0, 21.5, 22.0, 22.5])
    screenshot(driver, "live-graph.png")


def test_pause_holds_the_graph_and_resume_catches_up(driver, base_url, auth, hubs, pusher):
    hubs.start()
    pusher([1.0])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_status(driver, "live")
    chart_element(driver, "pause").click()
    wait_for_status(driver, "paused")
    pusher([2.0, 3.0])
    assert graph_points(driver)[0]["y"] == [1.0]
    chart_element(driver, "pause").click()
    wait_for_points(driver, [1.0, 2.0, 3.0])


def test_the_page_reconnects_to_a_new_hub_and_misses_nothing(driver, base_url, auth, hubs, pusher):
    hubs.start()
    pusher([5.0])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_status(driver, "live")
    # Stop the hub: the page shows it is reconnecting; rows committed meanwhile still arrive.
    hubs.stop()
    wait_for_status(driver, "reconnecting")
    pusher([6.0, 7.0])
    hubs.start()
    wait_for_points(driver, [5.0, 6.0, 7.0])
    wait_for_status(driver, "live")


def test_the_browser_parser_reads_recorded_hub_messages(driver, base_url, auth, hubs, pusher, app):
    hub = hubs.start()
    pusher([1.5, 2.5, 3.5])
    body = app.test_client().get("/api/v1/live/token", headers=pusher.headers).get_json()
    with connect(f"ws://127.0.0.1:{hub.bound_port}/live?token={body['token']}") as ws:
        ws.send(orjson.dumps({"type": "subscribe", "dataset": "plant", "since": 0}).decode())
        recorded = orjson.loads(ws.recv(timeout=10))
    validator("points").validate(recorded)
    assert recorded["after"] == 0 and recorded["ids"] == [1, 2, 3]
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_status(driver, "live")
    parse = "return window.dash_clientside.insightwave_live.pointsToExtendData(...arguments);"
    update, traces, window = driver.execute_script(parse, recorded, ["temperature"], None, 500)
    assert update == {"x": [recorded["ts"]], "y": [[1.5, 2.5, 3.5]]}
    assert (traces, window) == ([0], 500)
    newer = driver.execute_script(parse, recorded, ["temperature", "absent"], recorded["ids"][1], 9)
    assert newer[0] == {"x": [recorded["ts"][2:]] * 2, "y": [[3.5], [None]]}
    assert driver.execute_script(parse, recorded, ["temperature"], recorded["last_id"], 9) is None
    # A message that follows an id newer than the page's last one means one was lost: reload.
    receive = "return window.dash_clientside.insightwave_live.receive(...arguments);"
    state = {"dataset": "plant", "fields": ["temperature"], "window": 500}
    state["last_id"] = recorded["last_id"]  # the window this chart drew ends at the last point
    gap = {**recorded, "after": recorded["last_id"] + 100, "last_id": recorded["last_id"] + 101}
    socket = {"type": "live-chart-ws", "key": "parser"}  # a chart of its own: the page's is live
    _, resyncs, text = driver.execute_script(
        receive, {"data": orjson.dumps(gap).decode()}, state, 4, socket
    )
    assert (resyncs, text) == (5, "Catching up…")


def test_a_refused_subscription_is_not_asked_again_in_the_browser(
    driver, base_url, auth, hubs, pusher
):
    hubs.start()
    pusher([1.5])
    sign_in(driver, base_url, auth, "watcher@example.com", "viewer")
    driver.get(f"{base_url}/live?dataset=plant")
    wait_for_status(driver, "live")
    live = "return window.dash_clientside.insightwave_live"
    state = {"dataset": "plant", "fields": ["temperature"], "window": 500, "last_id": 1}
    socket = {"type": "live-chart-ws", "key": "refused"}  # a chart of its own
    open_socket = {"readyState": 1}
    sent, text, _ = driver.execute_script(
        f"{live}.connect(...arguments);", state, open_socket, False, 0, socket
    )
    assert orjson.loads(sent)["type"] == "subscribe" and text == "live"
    # The hub ends the subscription (its user lost access), as app.hub.hub sends it.
    ended = {
        "type": "error",
        "code": "not_found",
        "message": "no dataset 'plant' you may see",
        "dataset": "plant",
    }
    validator("error").validate(ended)
    _, _, shown = driver.execute_script(
        f"{live}.receive(...arguments);", {"data": orjson.dumps(ended).decode()}, state, 0, socket
    )
    assert shown == "Live: no dataset 'plant' you may see"
    for _ in range(2):  # every later tick: no subscribe sent, and the badge says why
        sent, text, color = driver.execute_script(
            f"{live}.connect(...arguments);", state, open_socket, False, 0, socket
        )
        assert not isinstance(sent, str) and (text, color) == ("not available", "red")
    redrawn = {**state, "drawn": 2}  # the server drew the chart again: it was visible then
    sent, text, _ = driver.execute_script(
        f"{live}.connect(...arguments);", redrawn, open_socket, False, 0, socket
    )
    assert orjson.loads(sent)["type"] == "subscribe" and text == "live"
