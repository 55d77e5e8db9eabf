"""Logs: one line per record (JSON or text), a request id on each, one access line per request.

Each request gets an id: the caller's ``X-Request-ID`` when it is a sane token, else a new
one. It goes back in the ``X-Request-ID`` response header and into every log line written
while the request runs. The format is ``INSIGHTWAVE_LOG_FORMAT``: ``json``, ``text``, or
``auto`` (the default: text on a terminal, JSON otherwise, which is what a log shipper reads).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=-]{1,128}")
access_log = logging.getLogger("insightwave.access")
# Our own loggers at INFO; libraries (APScheduler logs every job run at INFO) at WARNING.
OUR_LOGGERS = ("insightwave", "app", "etl")
_HANDLER_NAME = "insightwave"
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _StandardErrorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is at the time (a test runner may swap it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def log_handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    """Return a handler writing ``log_format`` (json, text or auto) lines to ``stream``.

    Without ``stream``, lines go to the standard error of the moment.
    """
    if log_format == "auto":
        log_format = "text" if (stream or sys.stderr).isatty() else "json"
    handler = logging.StreamHandler(stream) if stream is not None else _StandardErrorHandler()
    handler.addFilter(RequestIdFilter())
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(log_format: str) -> None:
    """Send this process's logs to standard error in ``log_format``, once per process."""
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = log_handler(log_format)
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def init_request_logging(server: Flask) -> None:
    """Give every request an id and write its access line (install before other hooks)."""
    server.before_request(_start_request)
    server.after_request(_finish_request)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    from app.metrics import observe_request

    observe_request(request.method, route, response.status_code, duration)
    # Only a user already loaded for this request: loading one here would cost a query.
    user = g.get("_login_user")
    user_id = user.id if user is not None and user.is_authenticated else None
    access_log.info(
        "%s %s %s %.1f ms",
        request.method,
        request.path,
        response.status_code,
        duration * 1000,
        extra={
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 1),
            "user_id": user_id,
            "remote_addr": request.remote_addr,
        },
    )
    return response
