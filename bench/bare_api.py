"""The read mix's baseline: a bare Flask app that sends PostgreSQL what ours sends, nothing else.

``python -m bench load`` runs ``loadtest/api_read.js`` against ours and, in the same run with
the same gunicorn settings, against this app. Its statements are recorded from ours
(``record_statements``: one request of each kind the script makes, through our app's own
test client, each statement as psycopg received it), and it answers each request as ours
does: the bearer token's statement, the dataset's visibility statement, then the read's own,
with the same parameters, and the same JSON. What it leaves out is everything else of a
request in ours: the request checks of ``app.guard``, Flask-Login, parameter validation
against the OpenAPI models, the access log line, the metrics, the security headers, the ORM
session. So its requests a second are what this stack (Flask under gunicorn, psycopg, this
PostgreSQL, k6 on the same cores) reaches on the read mix's statements alone: the ceiling
of any app built on it that asks the database the same questions.

It serves only the requests of ``api_read.js`` (anything else answers 404) and does one
window of an events page where ours may read more (the seeded data fills a page from the
first). It is a measuring stick, not an API: it never runs outside the benchmark.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
from flask import Flask, Response, request
from psycopg.rows import dict_row
from sqlalchemy import event

from app.event_queries import decode_cursor, encode_cursor
from app.extensions import db
from etl.connection import libpq_url

STATEMENTS_ENV = "BARE_API_STATEMENTS"  # the recorded statements' file, for gunicorn's workers
Statement = tuple[str, dict[str, Any]]  # psycopg's SQL (named %(x)s parameters), its values
KINDS = ("token", "dataset", "datasets", "series", "grouped", "events", "events_after")
DAY = timedelta(hours=24)


def requests_to_record(dataset: str, start: datetime) -> dict[str, str]:
    """One request of each kind ``api_read.js`` makes (the page after is added from its cursor)."""
    base = f"/api/v1/datasets/{dataset}"
    grouped = f"bucket=minute&agg=avg&field=value&group_by=region&from={quote(start.isoformat())}"
    return {
        "datasets": "/api/v1/datasets",
        "dataset": base,
        "series": f"{base}/series?bucket=hour&agg=count",
        "grouped": f"{base}/series?{grouped}",
        "events": f"{base}/events?limit=50&filter=region:eq:north&filter=value:gte:10",
    }


def record_statements(server: Flask, token: str, dataset: str) -> dict[str, Statement]:
    """The statements our app ``server`` sends for each kind of request of the read mix."""
    log: list[Statement] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            if isinstance(query, str) and isinstance(params, dict):
                log.append((query, dict(params)))
            return super().execute(query, params, **kwargs)

    with server.app_context():
        engine = db.engine

    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        getattr(dbapi_connection, "driver_connection", dbapi_connection).cursor_factory = Recording

    event.listen(engine, "checkout", checked_out)
    client = server.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def statements_of(path: str) -> list[Statement]:
        log.clear()
        answer = client.get(path, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.get_data(as_text=True)}")
        return [(sql, params) for sql, params in log if not sql.lstrip().startswith("UPDATE")]

    try:
        paths = requests_to_record(dataset, datetime.now(UTC) - timedelta(hours=1))
        client.get(paths["datasets"], headers=headers)  # the token's first use is written down
        recorded: dict[str, Statement] = {}
        recorded["token"], recorded["datasets"] = statements_of(paths["datasets"])
        _, recorded["dataset"] = statements_of(paths["dataset"])
        for kind in ("series", "grouped", "events"):
            *_, recorded[kind] = statements_of(paths[kind])
        cursor = client.get(paths["events"], headers=headers).get_json()["next_cursor"]
        *_, recorded["events_after"] = statements_of(f"{paths['events']}&cursor={cursor}")
    finally:
        event.remove(engine, "checkout", checked_out)
        with server.app_context():
            db.engine.dispose()
    return recorded


def save(statements: dict[str, Statement], path: Path) -> None:
    path.write_bytes(
        orjson.dumps({kind: [sql, _typed(p)] for kind, (sql, p) in statements.items()})
    )


def load(path: Path) -> dict[str, Statement]:
    saved = orjson.loads(path.read_bytes())
    return {kind: (sql, _untyped(params)) for kind, (sql, params) in saved.items()}


def _typed(params: dict[str, Any]) -> dict[str, Any]:
    """JSON for the parameter values the statements hold: times and widths tagged."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, timedelta):
            out[name] = {"seconds": value.total_seconds()}
        elif isinstance(value, datetime):
            out[name] = {"time": value.isoformat()}
        else:
            out[name] = value
    return out


def _untyped(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict) and "seconds" in value:
            out[name] = timedelta(seconds=value["seconds"])
        elif isinstance(value, dict) and "time" in value:
            out[name] = datetime.fromisoformat(value["time"])
        else:
            out[name] = value
    return out


class Connections:
    """One autocommit connection a thread, kept open (as our app's pool keeps its own)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.local = threading.local()
        self.opened: list[psycopg.Connection[Any]] = []

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        connection = getattr(self.local, "connection", None)
        if connection is None or connection.closed:
            connection = self.local.connection = psycopg.connect(self.address, autocommit=True)
            self.opened.append(connection)
        with connection.cursor(row_factory=dict_row) as opened:
            yield opened

    def close(self) -> None:
        for connection in self.opened:
            connection.close()


def create_server(database_url: str, statements: dict[str, Statement]) -> Flask:
    """The bare app: each request runs its recorded statements with its own values."""
    missing = set(KINDS) - set(statements)
    if missing:
        raise ValueError(f"statements missing: {', '.join(sorted(missing))}")
    server = Flask(__name__)
    connections = server.extensions["bare_api"] = Connections(libpq_url(database_url))

    def run(kind: str, **values: Any) -> list[dict[str, Any]]:
        sql, recorded = statements[kind]
        with connections.cursor() as opened:
            return opened.execute(sql, recorded | values).fetchall()

    def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
        def checked(**kwargs: Any) -> Any:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            digest = hashlib.sha256(bearer.encode()).hexdigest()
            rows = run("token", digest=digest)
            if not rows:
                return _json({"error": {"code": "unauthorized"}}, 401)
            return view(rows[0]["id"], **kwargs)

        checked.__name__ = view.__name__
        return checked

    def dataset_view(view: Callable[..., Any]) -> Callable[..., Any]:
        """A view of a dataset the token's user may see (404 as ours for any other)."""

        def found(user_id: int, name: str) -> Any:
            rows = run("dataset", user_id=user_id, name=name)
            return view(rows[0]) if rows else _not_found(name)

        found.__name__ = view.__name__
        return signed_in(found)

    @server.get("/healthz")
    def healthz() -> Any:
        return _json({"status": "ok"})

    @server.get("/api/v1/datasets")
    @signed_in
    def datasets(user_id: int) -> Any:
        return _json({"datasets": [_describe(row) for row in run("datasets", user_id=user_id)]})

    @server.get("/api/v1/datasets/<name>")
    @dataset_view
    def describe(dataset: dict[str, Any]) -> Any:
        return _json(_describe(dataset))

    @server.get("/api/v1/datasets/<name>/series")
    @dataset_view
    def series(dataset: dict[str, Any]) -> Any:
        end = datetime.now(UTC)
        args = request.args
        grouped = args.get("group_by")
        start = datetime.fromisoformat(args["from"]) if "from" in args else end - DAY
        kind = "grouped" if grouped else "series"
        (row,) = run(kind, dataset=dataset["id"], start=start, end=end)
        written = next(iter(row.values()))  # the JSON array PostgreSQL wrote, as in ours
        answer = {
            "dataset": dataset["name"],
            "bucket": args.get("bucket"),
            "agg": args.get("agg"),
            "field": args.get("field"),
            "from": start.isoformat(),
            "to": end.isoformat(),
            "points": [] if grouped else orjson.Fragment(written),
        }
        if grouped:
            answer["groups"] = orjson.Fragment(written)
        return _json(answer)

    @server.get("/api/v1/datasets/<name>/events")
    @dataset_view
    def events(dataset: dict[str, Any]) -> Any:
        limit = int(request.args.get("limit", "100"))
        values: dict[str, Any] = {"dataset": dataset["id"], "wanted": limit + 1}
        for number, spec in enumerate(request.args.getlist("filter")):
            field, _, value = spec.split(":", 2)
            values[f"f{number}"] = field
            values[f"v{number}"] = float(value) if field == "value" else value
        kind = "events"
        if "cursor" in request.args:
            kind = "events_after"
            values["after_ts"], values["after_id"] = decode_cursor(request.args["cursor"])
        rows = sorted((r for r in run(kind, **values) if r["seen"] is None), key=_order)
        page = [
            {
                "id": r["id"],
                "ts": r["ts"].astimezone(UTC).isoformat(),
                "values": orjson.Fragment(r["payload"]),
            }
            for r in rows[:limit]
        ]
        after = rows[limit - 1] if len(rows) > limit else None
        next_cursor = encode_cursor(after["ts"], after["id"]) if after else None
        return _json({"events": page, "next_cursor": next_cursor})

    return server


def from_environment() -> Flask:
    """gunicorn's factory (``bench.bare_api:from_environment()``)."""
    return create_server(os.environ["DATABASE_URL"], load(Path(os.environ[STATEMENTS_ENV])))


def _order(row: dict[str, Any]) -> tuple[datetime, int]:
    return row["ts"], row["id"]


def _describe(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "label": row["label"],
        "columns": row["columns"],
        "time_column": row["time_column"],
        "key_columns": list(row["key_columns"] or []),
    }


def _not_found(name: str) -> Response:
    return _json({"error": {"code": "not_found", "message": f"no dataset {name!r}"}}, 404)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")
