"""gunicorn's settings for ``gunicorn wsgi:server`` started in this directory (flags override).

Threaded workers (``gthread``) keep HTTP connections alive between requests, where the
default ``sync`` worker closes each one: with clients that reuse connections (browsers, k6,
any HTTP library with a pool) that halves the work per small request on this 2-core machine
(BENCHMARKS.md, "Load"). A thread waiting on PostgreSQL releases the GIL, so the threads of
one worker overlap their queries.
"""

from __future__ import annotations

import os
from typing import Any

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5  # seconds an idle kept-alive connection stays open
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new connections
# over them. On one shared socket, a burst of connections (a client's pool opening, clients
# back after a restart) could all land on the worker that woke first and stay there, kept
# alive: one process, one core (BENCHMARKS.md, "Load").
reuse_port = True


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client's multiprocess mode that a worker is gone (its gauges go too)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
