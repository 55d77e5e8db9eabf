"""``GET /metrics`` on a port of its own, for a process with no web server (the worker).

A small WSGI app on the standard library's threaded server, in daemon threads. It answers by
the rule of the web's /metrics (``app.metrics.may_scrape``): a loopback caller with no proxy
declared and no forwarding header, or ``Authorization: Bearer $INSIGHTWAVE_METRICS_TOKEN``;
anyone else gets 403.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.datastructures import EnvironHeaders

from app.metrics import may_scrape, standalone_exposition

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class MetricsServer:
    """Serve this process's Prometheus text at ``http://host:port/metrics`` until ``close``."""

    def __init__(self, host: str, port: int, token: str | None, proxy_count: int) -> None:
        self.token = token
        self.proxy_count = proxy_count
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        self._server = make_server(host, port, self._app, server_class, _QuietHandler)
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="insightwave-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _answer(start_response, "404 Not Found", _problem("not_found", "no such path"))
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            message = "only GET reads the metrics"
            return _answer(start_response, "405 Method Not Allowed", _problem("method", message))
        headers = EnvironHeaders(environ)
        if not may_scrape(self.token, self.proxy_count, environ.get("REMOTE_ADDR"), headers):
            message = "metrics are not public"
            return _answer(start_response, "403 Forbidden", _problem("forbidden", message))
        body = standalone_exposition()
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body] if environ["REQUEST_METHOD"] == "GET" else []


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _problem(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}}) + b"\n"


def _answer(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the worker's exit


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Log nothing: a scrape every few seconds is not news."""
