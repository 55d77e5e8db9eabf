"""Operations: /metrics, /readyz, request ids in JSON logs, and ``insightwave doctor``."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.cli import main
from app.config import Config, ConfigError
from app.hub import HubThread, build_hub
from app.logs import log_handler
from tests.conftest import wait_for
from tests.test_hub import open_live, receive, subscribe

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:9/nowhere"  # port 9: connection refused
METRICS_TOKEN = "metrics-token-for-the-tests"
GOOD_ROWS = [
    {"time": "2024-05-01T10:00:00Z", "sensor": "a", "value": 1.5},
    {"time": "2024-05-01T10:00:01Z", "sensor": "b", "value": 2.5},
]
MIXED_ROWS = [
    {"time": "2024-05-01T11:00:00Z", "sensor": "c", "value": "seven"},
    {"time": "2024-05-01T11:00:01Z", "sensor": "c", "value": 7},
]


def scrape(client, **kwargs) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Read /metrics into {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def push(client, token: str, rows) -> dict:
    response = client.post(
        "/api/v1/datasets/ops_sensors/events",
        json=rows,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_metrics_count_requests_by_route_template_and_status(client):
    before = scrape(client)
    client.get("/healthz")
    client.get("/api/v1/datasets/ops_sensors")  # anonymous: refused by the guard
    after = scrape(client)
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, "insightwave_http_requests_total", **labels) == (
        value(before, "insightwave_http_requests_total", **labels) + 1
    )
    refused = {"method": "GET", "route": "/api/v1/datasets/<name>", "status": "401"}
    assert value(after, "insightwave_http_requests_total", **refused) == (
        value(before, "insightwave_http_requests_total", **refused) + 1
    )
    client.open("/healthz", method="BREW")  # any word a client sends is one label, OTHER
    methods = {dict(labels).get("method") for name, labels in scrape(client)}
    assert "OTHER" in methods and "BREW" not in methods
    latency = {"method": "GET", "route": "/healthz"}
    assert value(after, "insightwave_http_request_duration_seconds_count", **latency) == (
        value(before, "insightwave_http_request_duration_seconds_count", **latency) + 1
    )


def test_pushed_and_rejected_rows_and_runs_by_status_show_in_metrics(client, auth):
    token = auth.api_token("pusher@example.com", "analyst")
    before = scrape(client)
    push(client, token, GOOD_ROWS)
    body = push(client, token, MIXED_ROWS)
    assert (body["rows_loaded"], body["rows_rejected"]) == (1, 1)
    after = scrape(client)
    for outcome, added in (("loaded", 3), ("rejected", 1), ("duplicate", 0)):
        labels = {"source": "push", "outcome": outcome}
        assert value(after, "insightwave_ingest_rows_total", **labels) == (
            value(before, "insightwave_ingest_rows_total", **labels) + added
        ), outcome
    assert value(after, "insightwave_ingest_runs", status="succeeded") == 2
    assert value(after, "insightwave_ingest_runs", status="dead") == 0
    assert value(after, "insightwave_database_up") == 1
    assert ("insightwave_db_pool_checkedout", ()) in after


def test_metrics_are_refused_to_other_hosts_without_the_token(make_app, auth):
    app = make_app(INSIGHTWAVE_METRICS_TOKEN=METRICS_TOKEN)
    remote = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    client = app.test_client()
    assert client.get("/metrics", **remote).status_code == 403
    # A proxy on this machine makes every visitor look local; its header gives it away.
    for header in ("X-Forwarded-For", "X-Real-IP"):
        assert client.get("/metrics", headers={header: "203.0.113.9"}).status_code == 403
    wrong = {"Authorization": "Bearer not-the-metrics-token"}
    assert client.get("/metrics", headers=wrong, **remote).status_code == 403
    right = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert client.get("/metrics", headers=right, **remote).status_code == 200
    viewer = {"Authorization": f"Bearer {auth.api_token('viewer@example.com', 'viewer')}"}
    assert client.get("/metrics", headers=viewer, **remote).status_code == 403
    admin = {"Authorization": f"Bearer {auth.api_token('admin@example.com', 'admin')}"}
    assert client.get("/metrics", headers=admin, **remote).status_code == 200


def test_behind_a_declared_proxy_loopback_alone_is_not_enough(make_app):
    # waitress strips X-Forwarded-* it does not trust: the proxy count is what gives it away.
    client = make_app(INSIGHTWAVE_PROXY_COUNT="1").test_client()
    assert client.get("/metrics").status_code == 403


def test_metrics_token_and_log_format_are_checked(data_dir):
    env = {"INSIGHTWAVE_DATA_DIR": str(data_dir)}
    with pytest.raises(ConfigError, match="INSIGHTWAVE_METRICS_TOKEN"):
        Config.from_env({**env, "INSIGHTWAVE_METRICS_TOKEN": "short"})
    with pytest.raises(ConfigError, match="INSIGHTWAVE_LOG_FORMAT: must be json, text or auto"):
        Config.from_env({**env, "INSIGHTWAVE_LOG_FORMAT": "xml"})
    assert Config.from_env(env).log_format == "auto"
    assert Config.from_env({**env, "INSIGHTWAVE_LOG_FORMAT": "JSON"}).log_format == "json"


def test_readyz_is_ready_with_the_database_at_the_newest_migration(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"},
    }


def test_readyz_is_503_when_migrations_are_behind(make_app, fresh_database):
    app = make_app(DATABASE_URL=fresh_database())  # an empty database, never migrated
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["not_ready"] == ["migrations"]
    assert body["checks"]["migrations"] == "not migrated: run insightwave db upgrade"


def test_readyz_is_503_when_the_database_is_unreachable(make_app):
    app = make_app(DATABASE_URL=CLOSED_PORT_URL)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["not_ready"] == ["database", "migrations"]
    assert app.test_client().get("/healthz").status_code == 503  # liveness says so too
    metrics = scrape(app.test_client())
    assert value(metrics, "insightwave_database_up") == 0


def test_readyz_and_metrics_follow_the_hub_running_in_this_process(make_app, auth):
    app = make_app(INSIGHTWAVE_HUB_PORT="0")
    hub = build_hub(app)
    app.extensions["live_hub"] = hub  # as insightwave serve does
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["hub"] == "not listening for clients"
    token = auth.api_token("live@example.com", "analyst")
    push(client, token, GOOD_ROWS)
    thread = HubThread(hub)
    thread.start()
    try:
        wait_for(lambda: hub.stats["listening"], what="the hub's LISTEN connection")
        assert client.get("/readyz").get_json()["checks"]["hub"] == "ok"
        before = scrape(client)
        bearer = {"Authorization": f"Bearer {token}"}
        live_token = client.get("/api/v1/live/token", headers=bearer).get_json()["token"]
        with open_live(hub, live_token, origin=None) as ws:
            assert subscribe(ws, "ops_sensors")["type"] == "subscribed"
            push(client, token, MIXED_ROWS)
            assert receive(ws)["type"] == "points"
            during = scrape(client)
        assert value(during, "insightwave_hub_listening") == 1
        assert value(during, "insightwave_hub_clients") == 1
        assert value(during, "insightwave_hub_connections_total") == 1
        assert value(during, "insightwave_hub_batches_total") >= 1
        assert value(during, "insightwave_hub_notify_lag_seconds_count") > value(
            before, "insightwave_hub_notify_lag_seconds_count"
        )
        assert ("insightwave_hub_messages_dropped_total", ()) in during
    finally:
        thread.stop()


@pytest.fixture
def log_lines(app):
    """Capture the JSON log lines written while a test runs."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    previous = logging.getLogger("insightwave").level
    root.addHandler(handler)
    logging.getLogger("insightwave").setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    logging.getLogger("insightwave").setLevel(previous)


def test_each_request_gets_an_id_in_its_header_and_its_access_log_line(client, auth, log_lines):
    email = auth.login_as("viewer")
    response = client.get("/api/v1/me", headers={"X-Request-ID": "trace-42.a"})
    assert response.headers["X-Request-ID"] == "trace-42.a"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32  # a bad one is replaced, not echoed
    access = [line for line in log_lines() if line["logger"] == "insightwave.access"]
    me = next(line for line in access if line["request_id"] == "trace-42.a")
    assert me["level"] == "info"
    assert (me["method"], me["path"], me["status"]) == ("GET", "/api/v1/me", 200)
    assert me["route"] == "/api/v1/me"
    assert isinstance(me["duration_ms"], float)
    assert me["user_id"] is not None and email
    health = next(line for line in access if line["path"] == "/healthz")
    assert health["request_id"] == generated.headers["X-Request-ID"]
    assert health["user_id"] is None


def test_every_log_line_written_during_a_request_carries_its_id(app, log_lines):
    with app.test_request_context("/healthz", headers={"X-Request-ID": "req-7"}):
        app.preprocess_request()
        logging.getLogger("etl.anything").warning("written by some module")
    logging.getLogger("etl.anything").warning("written outside a request")
    inside, outside = [line for line in log_lines() if line["logger"] == "etl.anything"]
    assert inside["request_id"] == "req-7" and inside["message"] == "written by some module"
    assert outside["request_id"] == "-"


def test_auto_log_format_is_json_off_a_terminal():
    stream = io.StringIO()
    logger = logging.getLogger("insightwave.test-format")
    handler = log_handler("auto", stream)
    logger.addHandler(handler)
    try:
        logger.warning("hello %s", "there")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "hello there" and line["level"] == "warning"


def test_doctor_passes_on_a_good_setup(runner):
    result = runner.invoke(main, ["doctor"], env={"INSIGHTWAVE_HUB_PORT": "0"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "OK   configuration",
        "OK   data directory",
        "OK   database",
        "OK   migrations",
        "OK   hub",
    ]
    assert "connected to PostgreSQL" in result.output
    assert lines[-1] == "Everything looks right."


def test_doctor_fails_with_a_clear_line_on_a_bad_database_url(runner):
    result = runner.invoke(main, ["doctor"], env={"DATABASE_URL": CLOSED_PORT_URL})
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "database" in line)
    assert line.startswith("FAIL database: cannot connect through DATABASE_URL:")
    assert "refused" in line.lower()
    assert "migrations" not in result.output  # it cannot be checked without a database


def test_doctor_names_a_malformed_setting_and_an_unmigrated_database(runner, fresh_database):
    result = runner.invoke(main, ["doctor"], env={"INSIGHTWAVE_HUB_PORT": "http"})
    assert result.exit_code == 1
    assert result.output.startswith("FAIL configuration: INSIGHTWAVE_HUB_PORT: must be a port")
    behind = runner.invoke(
        main, ["doctor"], env={"DATABASE_URL": fresh_database(), "INSIGHTWAVE_HUB_PORT": "0"}
    )
    assert behind.exit_code == 1
    assert "FAIL migrations: the database has never been migrated: run insightwave db upgrade" in (
        behind.output
    )
