"""Live latency: commit to WebSocket receipt through one hub process, against 1-second polling.

One run: PostgreSQL (embedded unless a URL is given), a user with an API token, a dataset,
one ``insightwave hub`` subprocess and N real WebSocket clients in a few client processes,
all subscribed to the dataset. A writer commits batches through the real ingest path
(``etl.runs.run_now``, as the push API does) at a steady rate; each commit's time (after
COMMIT returns) is paired with each client's receipt of the message holding its last id.
Beside it, a poller reads new rows once a second as a ``dcc.Interval(interval=1000)``
dashboard would. Every other stretch of writing has one more client that subscribes and
never reads; the two kinds take turns (``--slices``), so that whatever else the machine does
falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from bisect import bisect_left
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.hub_process import HubProcess, prepare_app
from bench.ingest import scratch_database
from bench.live_clients import ClientFleet, ClientSpec, mint_token, stalled_client
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

DESCRIPTION = "live push latency: commit to WebSocket receipt vs 1-second polling"
BARS = {"p50_ms": 50.0, "p99_ms": 150.0, "stalled_p99_ratio": 1.10}  # DESIGN.md, at 1,000
DATASET = "bench_live"
POLL_INTERVAL = 1.0  # seconds: dcc.Interval(interval=1000)
WARM_UP_SECONDS = 1.0
SETTLE_SECONDS = 1.0
CATCH_UP_ROWS = 1500  # what the stalled client asks for, under the hub's max_points (2000)
STALLED_FIGURES = ("p50_ms", "p99_ms", "max_ms", "messages_per_s", "hub_cpu_share")
NEW_ROWS = "SELECT id, ts, payload FROM events WHERE dataset_id = %s AND id > %s ORDER BY id"


@dataclass(frozen=True)
class Settings:
    clients: int
    seconds: float = 10.0
    batch: int = 10
    rate: float = 10.0  # commits per second
    client_processes: int = 2
    slices: int = 4  # each phase in this many stretches, the two kinds taking turns
    server_url: str | None = None  # None: start the embedded server


@dataclass(frozen=True)
class Commit:
    last_id: int
    at: float  # time.monotonic() once COMMIT returned
    rows: int


class Writer:
    """Commit generated batches through ``run_now`` (the push API's path) at a steady rate."""

    def __init__(self, url: str, user_id: int, batch: int) -> None:
        self.conn = connect(url, "bench-live-writer")
        self.user_id = user_id
        self.batch = batch
        self.counter = 0
        self.dataset_id = 0

    def commit(self) -> Commit:
        rows = []
        for _ in range(self.batch):
            self.counter += 1
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            rows.append({"time": now, "n": self.counter, "value": self.counter * 0.25})
        options = IngestOptions(dataset=DATASET, owner_id=self.user_id)
        source = {"rows": len(rows)}
        summary = run_now(self.conn, options, "push", source, created_by=self.user_id, records=rows)
        at = time.monotonic()
        found = self.conn.execute(
            "SELECT max(id), min(dataset_id) FROM events WHERE run_id = %s", (summary.run_id,)
        ).fetchone()
        assert found is not None and found[0] is not None, "the batch loaded nothing"
        self.dataset_id = int(found[1])
        return Commit(int(found[0]), at, summary.rows_loaded)

    def run(self, seconds: float, rate: float) -> list[Commit]:
        """Commit ``seconds * rate`` batches, the k-th due ``k / rate`` seconds from now."""
        commits, start = [], time.monotonic()
        for k in range(max(1, round(seconds * rate))):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            commits.append(self.commit())
        return commits


class Poller(threading.Thread):
    """Read new rows every second, on a fixed schedule, as a polling dashboard does."""

    def __init__(self, url: str, dataset_id: int, after: int) -> None:
        super().__init__(name="bench-live-poller", daemon=True)
        self.url, self.dataset_id, self.after = url, dataset_id, after
        self.seen: list[tuple[int, float]] = []  # (highest id seen, time the poll returned)
        self.stop = threading.Event()

    def run(self) -> None:
        with connect(self.url, "bench-live-poller") as conn:
            start = time.monotonic()
            polls = 0
            while not self.stop.wait(max(0.0, start + polls * POLL_INTERVAL - time.monotonic())):
                polls += 1
                rows = conn.execute(NEW_ROWS, (self.dataset_id, self.after)).fetchall()
                if rows:
                    self.after = int(rows[-1][0])
                self.seen.append((self.after, time.monotonic()))


def receipts_ms(
    commits: list[Commit], last_ids: list[int], times: list[float]
) -> list[float | None]:
    """Per commit: ms until the first message (or poll) holding its last id; None: never."""
    found: list[float | None] = []
    for commit in commits:
        index = bisect_left(last_ids, commit.last_id)
        found.append((times[index] - commit.at) * 1000 if index < len(last_ids) else None)
    return found


def latencies_ms(commits: list[Commit], last_ids: list[int], times: list[float]) -> list[float]:
    """The receipts that happened, in ms."""
    return [ms for ms in receipts_ms(commits, last_ids, times) if ms is not None]


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5 for p50, 0.99 for p99)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass(frozen=True)
class Stretch:
    """One stretch of steady writing and what every client received of it."""

    commits: list[Commit]
    by_client: list[list[float | None]]  # per client, per commit: ms to receipt, or None
    messages: int
    seconds: float  # from the first commit to the last receipt
    hub_cpu: float  # seconds of the hub's CPU meanwhile
    delivered_all: bool


def _stretch(
    writer: Writer,
    fleet: ClientFleet,
    hub: HubProcess,
    settings: Settings,
    seconds: float,
    expected_rows: int,
) -> tuple[Stretch, int]:
    """Write for ``seconds`` and collect every client's receipts; also the rows expected."""
    started, cpu = time.monotonic(), hub.cpu_seconds()
    commits = writer.run(seconds, settings.rate)
    views = fleet.collect(commits[-1].last_id, timeout=30.0)
    cpu = hub.cpu_seconds() - cpu
    rows = expected_rows + sum(commit.rows for commit in commits)
    by_client = [receipts_ms(commits, view["last_ids"], view["times"]) for view in views]
    last_receipt = max((view["times"][-1] for view in views if view["times"]), default=started)
    delivered = all(None not in client for client in by_client) and all(
        view["rows"] == rows and view["in_order"] and not view["resyncs"] for view in views
    )
    messages = sum(len(view["last_ids"]) for view in views)
    stretch = Stretch(commits, by_client, messages, last_receipt - started, cpu, delivered)
    return stretch, rows


def _summary(stretches: list[Stretch]) -> dict[str, Any]:
    """Latency percentiles and rates over all pairs (client, commit) of some stretches."""
    latencies: list[float] = []
    first: list[float] = []
    last: list[float] = []
    for stretch in stretches:
        latencies += [ms for client in stretch.by_client for ms in client if ms is not None]
        # Per commit, the first and the last client to have it: the hub's own path (notify,
        # read, first write) apart from the fan-out and the clients' turn to read.
        for column in zip(*stretch.by_client, strict=True):
            received = [ms for ms in column if ms is not None]
            if received:
                first.append(min(received))
                last.append(max(received))
    seconds = max(sum(stretch.seconds for stretch in stretches), 1e-9)
    return {
        "commits": [commit for stretch in stretches for commit in stretch.commits],
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "first_client_p50_ms": round(percentile(first, 0.50), 2),
        "last_client_p50_ms": round(percentile(last, 0.50), 2),
        "messages_per_s": round(sum(stretch.messages for stretch in stretches) / seconds, 1),
        "hub_cpu_share": round(sum(stretch.hub_cpu for stretch in stretches) / seconds, 3),
        "delivered_all": all(stretch.delivered_all for stretch in stretches),
    }


class StalledPhase:
    """Open a stalled client (see ``stalled_client``) for one stretch; count what the hub did."""

    def __init__(self, hub: HubProcess, spec: ClientSpec, since: int) -> None:
        self.hub, self.spec, self.since = hub, spec, since
        self.counters: Counter[str] = Counter()

    def __enter__(self) -> StalledPhase:
        resyncs = self.hub.healthz().get("resyncs", 0)
        self.socket = stalled_client(
            "127.0.0.1",
            self.hub.port,
            mint_token(self.spec),
            DATASET,
            self.since,
            lambda: self.hub.healthz().get("resyncs", 0) > resyncs,
        )
        time.sleep(SETTLE_SECONDS)  # the hub works off the last subscribe requests
        self.before = self.hub.healthz()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self.hub.healthz()
        for key in ("resyncs", "messages_dropped", "dead_closed"):
            self.counters[key] += after.get(key, 0) - self.before.get(key, 0)
        self.socket.close()
        time.sleep(SETTLE_SECONDS)  # and off the closed connection


def run(settings: Settings, progress: Any) -> dict[str, Any]:
    """Run the whole scenario and return the figures."""
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        progress("starting PostgreSQL" if settings.server_url is None else "creating a database")
        url = stack.enter_context(scratch_database(settings.server_url))
        data_dir = Path(tempfile.mkdtemp(prefix="iw-bench-live-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        app = prepare_app(url, data_dir)
        writer = Writer(url, app.user_id, settings.batch)
        stack.callback(writer.conn.close)
        writer.commit()  # creates the dataset before anyone subscribes
        progress("starting the hub")
        hub = stack.enter_context(HubProcess(app, max_clients=settings.clients + 16))
        rss_before = hub.rss_kib()
        progress(f"connecting {settings.clients:,} clients")
        spec = ClientSpec(
            hub.url, DATASET, settings.clients, app.secret_key, app.user_id, app.api_token
        )
        fleet = stack.enter_context(ClientFleet(spec, settings.client_processes))
        time.sleep(SETTLE_SECONDS)  # let the subscriptions settle before the memory is read
        rss_after = hub.rss_kib()
        progress("warming up")
        warm, rows = _stretch(writer, fleet, hub, settings, WARM_UP_SECONDS, 0)
        poller = Poller(url, writer.dataset_id, warm.commits[-1].last_id)
        poller.start()
        free: list[Stretch] = []
        stalled: list[Stretch] = []
        counters: Counter[str] = Counter()
        seconds = settings.seconds / settings.slices
        for number in range(1, settings.slices + 1):
            progress(f"slice {number}/{settings.slices}: {seconds:g} s, then again stalled")
            stretch, rows = _stretch(writer, fleet, hub, settings, seconds, rows)
            free.append(stretch)
            since = max(0, stretch.commits[-1].last_id - CATCH_UP_ROWS)
            with StalledPhase(hub, spec, since) as phase:
                stretch, rows = _stretch(writer, fleet, hub, settings, seconds, rows)
                stalled.append(stretch)
            counters.update(phase.counters)
        time.sleep(POLL_INTERVAL * 1.5)  # the poller's next read sees the last commit
        poller.stop.set()
        poller.join()
        stats = hub.healthz()
        version = writer.conn.execute("SHOW server_version").fetchone()
    commits = [commit for stretch in free + stalled for commit in stretch.commits]
    commits.sort(key=lambda commit: commit.last_id)
    seen = poller.seen
    polled = latencies_ms(commits, [last for last, _ in seen], [at for _, at in seen])
    figures = _figures(settings, _summary(free), _summary(stalled), polled)
    return {
        **figures,
        "hub_rss_kib_before": rss_before,
        "hub_rss_kib_after": rss_after,
        "hub_rss_per_client_kib": round((rss_after - rss_before) / settings.clients, 1),
        "stalled_client": dict(counters),
        "hub_stats": stats,
        "postgresql_version": str(version[0] if version else "?"),
        "database": "embedded" if settings.server_url is None else "external",
        "load_average_before": round(load_before, 2),
    }


def _figures(
    settings: Settings, free: dict[str, Any], stalled: dict[str, Any], polled: list[float]
) -> dict[str, Any]:
    polling_p50 = percentile(polled, 0.50)
    ratio_vs_polling = polling_p50 / max(free["p50_ms"], 1e-9)
    stalled_ratio = stalled["p99_ms"] / max(free["p99_ms"], 1e-9)
    measured = {"p50_ms": free["p50_ms"], "p99_ms": free["p99_ms"]}
    return {
        "benchmark": "live",
        "clients": settings.clients,
        "client_processes": settings.client_processes,
        "seconds": settings.seconds,
        "slices": settings.slices,
        "batch": settings.batch,
        "rate": settings.rate,
        "commits": len(free["commits"]),
        "rows_committed": sum(commit.rows for commit in free["commits"]),
        "p50_ms": free["p50_ms"],
        "p99_ms": free["p99_ms"],
        "max_ms": free["max_ms"],
        "first_client_p50_ms": free["first_client_p50_ms"],
        "last_client_p50_ms": free["last_client_p50_ms"],
        "messages_per_s": free["messages_per_s"],
        "hub_cpu_share": free["hub_cpu_share"],
        "polling": {
            "interval_s": POLL_INTERVAL,
            "p50_ms": round(polling_p50, 2),
            "p99_ms": round(percentile(polled, 0.99), 2),
            "commits_seen": len(polled),
        },
        "ratio_vs_polling": round(ratio_vs_polling, 2),
        "stalled": {key: stalled[key] for key in STALLED_FIGURES},
        "stalled_p99_ratio": round(stalled_ratio, 3),
        "delivered_all": free["delivered_all"] and stalled["delivered_all"],
        "bars": BARS,
        "bars_met": {
            **{name: measured[name] <= BARS[name] for name in measured},
            "stalled_p99_ratio": stalled_ratio <= BARS["stalled_p99_ratio"],
        },
        **machine(),
    }


def format_table(result: dict[str, Any]) -> str:
    """Render the figures as a few lines for a person."""
    polling = result["polling"]
    lines = [
        f"live: {result['clients']:,} clients in {result['client_processes']} processes, "
        f"{result['commits']} commits of {result['batch']} rows at {result['rate']:g}/s, "
        f"PostgreSQL {result['postgresql_version']} ({result['database']}), "
        f"{result['cpu_count']} CPUs, load {result['load_average_before']}",
        f"{'':<18}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'msgs/s':>10}",
        f"{'hub':<18}{result['p50_ms']:>10.1f}{result['p99_ms']:>10.1f}"
        f"{result['max_ms']:>10.1f}{result['messages_per_s']:>10,.0f}",
        f"{'hub, 1 stalled':<18}{result['stalled']['p50_ms']:>10.1f}"
        f"{result['stalled']['p99_ms']:>10.1f}{result['stalled']['max_ms']:>10.1f}"
        f"{result['stalled']['messages_per_s']:>10,.0f}",
        f"{'polling 1 s':<18}{polling['p50_ms']:>10.1f}{polling['p99_ms']:>10.1f}",
        f"hub RSS {result['hub_rss_kib_before']:,} -> {result['hub_rss_kib_after']:,} KiB "
        f"({result['hub_rss_per_client_kib']} KiB a client); hub CPU "
        f"{result['hub_cpu_share']:.2f} of a core; per commit p50: first client "
        f"{result['first_client_p50_ms']:.1f} ms, "
        f"last client {result['last_client_p50_ms']:.1f} ms",
    ]
    for name, bar in result["bars"].items():
        verdict = "met" if result["bars_met"][name] else "NOT met"
        lines.append(f"{name:<18}{result[name]:>10.2f}   bar <= {bar:g}: {verdict}")
    lines.append(f"ratio_vs_polling  {result['ratio_vs_polling']:>10.1f}")
    lines.append(f"delivered all: {'yes' if result['delivered_all'] else 'NO'}")
    return "\n".join(lines)


OPTIONS = (  # name, type, what it is
    ("--seconds", float, "seconds of writing in each phase"),
    ("--batch", int, "rows a commit"),
    ("--rate", float, "commits a second"),
    ("--client-processes", int, "processes the clients are spread over"),
    ("--slices", int, "stretches each phase is cut into, the free and stalled taking turns"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``live`` subcommand's options."""
    parser.add_argument("--clients", type=positive(int), required=True, help="WebSocket clients")
    for name, kind, meaning in OPTIONS:
        default = getattr(Settings, name.removeprefix("--").replace("-", "_"))
        parser.add_argument(
            name, type=positive(kind), default=default, help=f"{meaning} (default %(default)s)"
        )
    add_output_and_server(parser)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 when some client missed a committed row."""
    settings = Settings(
        clients=args.clients,
        seconds=args.seconds,
        batch=args.batch,
        rate=args.rate,
        client_processes=min(args.client_processes, args.clients),
        slices=args.slices,
        server_url=server_url(args),
    )
    result = run(settings, progress_printer("live", args))
    print_result(result, args, format_table)
    return 0 if result["delivered_all"] else 1
