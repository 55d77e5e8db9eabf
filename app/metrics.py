"""``/metrics``: Prometheus text of requests, latencies, ingest, runs, the live hub and the pool.

Counters and histograms are process-wide, in prometheus_client's default registry (the
ingest row counters live beside the code that commits a run, in ``etl.runs``). Figures that
belong to an app are read at scrape time: runs by status from the database (so they cover
every worker), the hub running in this process (``insightwave serve``), the connection pool.
Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory,
wiped before start): every worker's counters are then summed in each scrape.

Who may read it: a caller on this machine (loopback, with no proxy declared by
``INSIGHTWAVE_PROXY_COUNT`` and no forwarding header), a caller with
``Authorization: Bearer $INSIGHTWAVE_METRICS_TOKEN``, or a signed-in admin. Anyone else gets
403: the figures show the product's traffic and load, which is not for everyone. The
standalone processes (``insightwave hub`` on its own port, ``insightwave worker
--metrics-port``) serve their own figures by the same rule, minus the signed-in admin
(``may_scrape`` and ``standalone_exposition``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import RUN_STATUSES, Role

if TYPE_CHECKING:
    from app.hub.hub import LiveHub

bp = Blueprint("metrics", __name__)

HTTP_REQUESTS = Counter(
    "insightwave_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "insightwave_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HUB_NOTIFY_LAG = Histogram(
    "insightwave_hub_notify_lag_seconds",
    "Time from a NOTIFY reaching the live hub to its new points being handed to clients.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")
# The hub's counters (app.hub.hub.LiveHub.stats) exported, and what each counts.
HUB_COUNTERS = {
    "connections": "WebSocket connections accepted.",
    "messages_sent": "Messages written to clients.",
    "messages_dropped": "Messages dropped for clients too slow to read them (queue drops).",
    "resyncs": "Resyncs sent to clients that fell behind.",
    "notifications": "NOTIFY messages received from PostgreSQL.",
    "batches": "Per-dataset batches of points fanned out.",
    "listen_reconnects": "Times the LISTEN connection to PostgreSQL was lost.",
    "dead_closed": "Connections closed because pings went unanswered.",
    "subscriptions_ended": "Subscriptions ended because their user may no longer see the dataset.",
}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    method = method if method in HTTP_METHODS else "OTHER"  # a client may send any word
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


@bp.get("/metrics")
def metrics() -> Any:
    if not may_read_metrics():
        response = jsonify(error={"code": "forbidden", "message": "metrics are not public"})
        response.status_code = 403
        return response
    body = generate_latest(_process_registry()) + generate_latest(_scrape_registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def may_read_metrics() -> bool:
    """Tell whether this request may read /metrics (see the module's docstring)."""
    config = current_app.config["INSIGHTWAVE"]
    if may_scrape(config.metrics_token, config.proxy_count, request.remote_addr, request.headers):
        return True
    return bool(current_user.is_authenticated and Role(current_user.role).includes(Role.ADMIN))


class Headers(Protocol):
    """The request headers of Flask, websockets or werkzeug: looked up case-insensitively."""

    def __contains__(self, key: str, /) -> bool: ...

    def get(self, key: str, /) -> str | None: ...


def may_scrape(
    token: str | None, proxy_count: int, remote_addr: str | None, headers: Headers
) -> bool:
    """Tell whether a caller may read metrics without signing in: the right token, or loopback."""
    scheme, _, given = (headers.get("Authorization") or "").partition(" ")
    if token and scheme.lower() == "bearer":
        return secrets.compare_digest(given.strip().encode(), token.encode())
    # A proxy on this machine makes every visitor look local. Behind one, INSIGHTWAVE_PROXY_COUNT
    # says so (waitress even strips X-Forwarded-* it does not trust), or a forwarding header does.
    if proxy_count or any(header in headers for header in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(remote_addr or "").is_loopback
    except ValueError:
        return False


def standalone_exposition(families: Iterable[Metric] = ()) -> bytes:
    """Prometheus text of this process's own registry plus ``families`` read at scrape time."""
    # Not _process_registry(): in a hub or worker, PROMETHEUS_MULTIPROC_DIR (meant for gunicorn)
    # would sum other processes' files into this one's figures.
    return generate_latest(REGISTRY) + generate_latest(_registry_of(families))


def _process_registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry


def _scrape_registry() -> CollectorRegistry:
    hub = current_app.extensions.get("live_hub")
    hub_figures = hub_families(hub) if hub is not None else []
    return _registry_of([*_database_families(), *_pool_families(), *hub_figures])


def _database_families() -> list[Metric]:
    up = GaugeMetricFamily("insightwave_database_up", "1 when the database answered this scrape.")
    runs = GaugeMetricFamily(
        "insightwave_ingest_runs", "Ingest runs in the database, by status.", labels=["status"]
    )
    try:  # not through db.session: a rollback there would expire the signed-in user
        with db.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT status, count(*) FROM ingest_runs GROUP BY status")
            ).all()
    except SQLAlchemyError:
        up.add_metric([], 0)
        return [up]
    counts = {status: 0 for status in RUN_STATUSES} | {str(s): int(n) for s, n in rows}
    for status, count in sorted(counts.items()):
        runs.add_metric([status], count)
    up.add_metric([], 1)
    return [up, runs]


def _pool_families() -> list[Metric]:
    pool = db.engine.pool
    figures = {
        "size": "Connections the pool keeps open.",
        "checkedout": "Pooled connections in use.",
        "checkedin": "Pooled connections idle.",
        "overflow": "Connections beyond the pool's size (negative: unopened room in the pool).",
    }
    families: list[Metric] = []
    for name, help_text in figures.items():
        read = getattr(pool, name, None)
        if callable(read):
            family = GaugeMetricFamily(f"insightwave_db_pool_{name}", help_text)
            family.add_metric([], float(read()))
            families.append(family)
    return families


def hub_families(hub: LiveHub) -> list[Metric]:
    """The figures of a live hub: clients now, its LISTEN connection, its counters."""
    stats = _copy_stats(hub.stats)
    clients = GaugeMetricFamily("insightwave_hub_clients", "Live clients connected now.")
    clients.add_metric([], len(hub.clients))
    listening = GaugeMetricFamily(
        "insightwave_hub_listening", "1 while the hub holds its LISTEN connection."
    )
    listening.add_metric([], stats.get("listening", 0))
    families: list[Metric] = [clients, listening]
    for name, help_text in HUB_COUNTERS.items():
        family = CounterMetricFamily(f"insightwave_hub_{name}", help_text)
        family.add_metric([], stats.get(name, 0))
        families.append(family)
    refused = CounterMetricFamily(
        "insightwave_hub_refused", "Connections refused, by reason.", labels=["reason"]
    )
    for key, value in sorted(stats.items()):
        if key.startswith("refused_"):
            refused.add_metric([key.removeprefix("refused_")], value)
    families.append(refused)
    return families


def _copy_stats(stats: Any) -> dict[str, int]:
    # The hub's thread may add a key while this one copies; a second try gets a calm moment.
    for _attempt in range(3):
        try:
            return dict(stats)
        except RuntimeError:
            continue
    return {}
