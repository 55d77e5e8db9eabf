"""Run Insight-Wave as separate processes on one machine: gunicorn, hubs and workers.

``python -m deploy.cluster`` migrates the database, then starts ``gunicorn wsgi:server`` with
several workers, one ``insightwave hub`` per hub port and several ``insightwave worker``
processes, all against one PostgreSQL (``DATABASE_URL``; without it the embedded server in
``INSIGHTWAVE_DATA_DIR`` is started first and shared). It prints ``cluster ready`` once every
process answers, and stops them all on SIGTERM or Ctrl-C. The same shape as the systemd units
in deploy/systemd/, for a laptop or a test.

Prometheus can scrape every process: gunicorn's /metrics sums its workers (each run gets an
empty ``PROMETHEUS_MULTIPROC_DIR`` of its own), each hub answers /metrics on its port, and with
``--worker-metrics-ports`` each worker serves /metrics on its port.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
STOP_SECONDS = 20.0


@dataclass
class Cluster:
    """The processes of one local deployment."""

    database_url: str
    host: str = "127.0.0.1"
    web_port: int = 8050
    web_workers: int = 2
    hub_ports: tuple[int, ...] = (8051, 8052)
    workers: int = 2
    worker_metrics_ports: tuple[int, ...] = ()  # one per worker, or none: no worker metrics
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    metrics_dir: str | None = None  # gunicorn's PROMETHEUS_MULTIPROC_DIR, made by start()

    def environment(self, **extra: str) -> dict[str, str]:
        # The multiprocess directory is the web's alone: a hub or worker writing there would
        # add its figures to the web's, and they serve their own.
        inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        return {**inherited, "DATABASE_URL": self.database_url, "PYTHONUNBUFFERED": "1", **extra}

    def start(self) -> None:
        """Migrate, then start web, hubs and workers; wait until each answers."""
        upgrade = [str(BIN / "insightwave"), "db", "upgrade"]
        subprocess.run(upgrade, env=self.environment(), check=True)  # noqa: S603 (our own commands)
        web = [
            str(BIN / "gunicorn"),
            "wsgi:server",
            "--bind", f"{self.host}:{self.web_port}",
            "--workers", str(self.web_workers),
            "--graceful-timeout", "10",
        ]  # fmt: skip
        self.metrics_dir = tempfile.mkdtemp(prefix="insightwave-web-metrics-")
        web_env = self.environment(PROMETHEUS_MULTIPROC_DIR=self.metrics_dir)
        self._spawn("web", web, web_env, cwd=ROOT)
        for port in self.hub_ports:
            env = self.environment(INSIGHTWAVE_HUB_HOST=self.host, INSIGHTWAVE_HUB_PORT=str(port))
            self._spawn(f"hub:{port}", [str(BIN / "insightwave"), "hub"], env)
        for number in range(self.workers):
            worker = [str(BIN / "insightwave"), "worker"]
            if self.worker_metrics_ports:
                port = self.worker_metrics_ports[number]
                worker += ["--metrics-host", self.host, "--metrics-port", str(port)]
            self._spawn(f"worker:{number + 1}", worker, self.environment())
        self._wait_healthy(f"http://{self.host}:{self.web_port}/healthz")
        for port in self.hub_ports:
            self._wait_healthy(f"http://{self.host}:{port}/healthz")
        for port in self.worker_metrics_ports:
            self._wait_healthy(f"http://{self.host}:{port}/metrics")

    def stop(self) -> int:
        """Send SIGTERM to every process, SIGKILL to any still running after a while."""
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        failures = 0
        for name, process in reversed(self.processes):
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
                print(f"{name} did not stop in time and was killed", file=sys.stderr)
            failures += code not in (0, -signal.SIGTERM)
        self.processes.clear()
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self.metrics_dir = None
        return failures

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> None:
        # Each child gets its own process group, so a Ctrl-C reaches us once and we stop them.
        process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)  # noqa: S603
        self.processes.append((name, process))

    def _wait_healthy(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while starting")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (our URL)
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.2)


def _ports(raw: str) -> tuple[int, ...]:
    return tuple(int(part) for part in raw.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, print ``cluster ready``, and run until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--web-port", type=int, default=8050)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--hub-ports", type=_ports, default=(8051, 8052))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-metrics-ports", type=_ports, default=(), help="e.g. 9101,9102: one per worker"
    )
    args = parser.parse_args(argv)
    if args.worker_metrics_ports and len(args.worker_metrics_ports) != args.workers:
        parser.error("--worker-metrics-ports needs one port per worker (--workers)")

    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    embedded: Any = None
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        from app.config import Config
        from app.embedded_db import start_embedded

        embedded = start_embedded(Config.from_env().data_dir)
        database_url = embedded.url
        print(f"Embedded PostgreSQL at {embedded.url}", flush=True)
    cluster = Cluster(
        database_url=database_url,
        host=args.host,
        web_port=args.web_port,
        web_workers=args.web_workers,
        hub_ports=args.hub_ports,
        workers=args.workers,
        worker_metrics_ports=args.worker_metrics_ports,
    )
    try:
        cluster.start()
        print(
            f"cluster ready: web http://{args.host}:{args.web_port}, hubs "
            + ", ".join(f"ws://{args.host}:{port}/live" for port in args.hub_ports)
            + f", {args.workers} workers"
            + "".join(
                f", worker metrics http://{args.host}:{port}/metrics"
                for port in args.worker_metrics_ports
            ),
            flush=True,
        )
        while not stopping:
            for name, process in cluster.processes:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"cluster failed to start: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    finally:
        failures = cluster.stop()
        if embedded is not None:
            embedded.release()
    print("cluster stopped", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
