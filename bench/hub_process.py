"""A user, an API token and one ``insightwave hub`` subprocess on a benchmark's database."""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from app import create_app
from app.config import Config
from app.extensions import db
from app.tokens import create_token
from app.users import create_user, get_user

LISTENING = re.compile(r"Live hub listening on port (\d+)")
HUB = "from app.cli import main; main()"  # ``insightwave hub`` without relying on PATH


@dataclass(frozen=True)
class BenchApp:
    """What the clients and the hub share: the secret key, the data directory, one user."""

    database_url: str
    data_dir: Path
    secret_key: str
    user_id: int
    api_token: str

    def environ(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        return {
            **env,
            "DATABASE_URL": self.database_url,
            "INSIGHTWAVE_DATA_DIR": str(self.data_dir),
            "INSIGHTWAVE_SECRET_KEY": self.secret_key,
        }


def prepare_app(database_url: str, data_dir: Path) -> BenchApp:
    """Create an analyst with an API token on the (migrated) database."""
    secret_key = secrets.token_urlsafe(48)
    environ = {
        "DATABASE_URL": database_url,
        "INSIGHTWAVE_DATA_DIR": str(data_dir),
        "INSIGHTWAVE_SECRET_KEY": secret_key,
    }
    server = create_app(Config.from_env(environ))
    with server.app_context():
        try:
            create_user("bench-live@example.com", "analyst")
            user = get_user("bench-live@example.com")
            assert user is not None
            token = create_token(user, "bench live")
            return BenchApp(database_url, data_dir, secret_key, user.id, token)
        finally:
            db.session.remove()
            db.engine.dispose()


class HubProcess:
    """Run ``insightwave hub`` on a free port as a child process; stop it on exit."""

    def __init__(self, app: BenchApp, max_clients: int, start_timeout: float = 60.0) -> None:
        self.app = app
        self.max_clients = max_clients
        self.start_timeout = start_timeout
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/live"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> HubProcess:
        env = {
            **self.app.environ(),
            "INSIGHTWAVE_HUB_PORT": "0",
            "INSIGHTWAVE_HUB_MAX_CLIENTS": str(self.max_clients),
            "PYTHONUNBUFFERED": "1",
        }
        self._stderr = tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
            [sys.executable, "-c", HUB, "hub"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._process.stdout

        def read() -> None:  # the hub prints the port once it listens, then nothing much
            for line in stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=read, name="bench-hub-stdout", daemon=True).start()
        try:
            while line := lines.get(timeout=self.start_timeout):
                match = LISTENING.search(line)
                if match:
                    return int(match.group(1))
        except queue.Empty:
            pass
        raise RuntimeError(f"the hub did not start: {self.errors()}")

    def errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def rss_kib(self) -> int:
        """The hub's resident memory (VmRSS), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def cpu_seconds(self) -> float:
        """User plus system CPU time the hub has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def healthz(self) -> dict[str, Any]:
        """The hub's counters (``GET /healthz`` on its port)."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our own hub)
            counters: dict[str, Any] = orjson.loads(response.read())
        return counters

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
