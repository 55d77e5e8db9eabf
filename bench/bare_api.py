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
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import orjson
import psycopg
from flask import Flask, Response, request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
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


Rows = list[dict[str, Any]]
Answer = tuple[int, bytes]  # HTTP status, JSON body
# A request's work: it yields each statement to run, (kind, values), and is sent its rows.
Work = Generator[tuple[str, dict[str, Any]], Rows, Answer]


def answer(path: str, args: dict[str, list[str]], authorization: str) -> Work:
    """Answer a request of the read mix as ours does, one recorded statement at a time."""
    bearer = authorization.removeprefix("Bearer ")
    users = yield "token", {"digest": hashlib.sha256(bearer.encode()).hexdigest()}
    if not users:
        return 401, orjson.dumps({"error": {"code": "unauthorized"}})
    user_id = users[0]["id"]
    if path == "/api/v1/datasets":
        listed = yield "datasets", {"user_id": user_id}
        return 200, orjson.dumps({"datasets": [_describe(row) for row in listed]})
    parts = path.removeprefix("/api/v1/datasets/").split("/")
    if not path.startswith("/api/v1/datasets/") or len(parts) > 2:
        return 404, orjson.dumps({"error": {"code": "not_found"}})
    found = yield "dataset", {"user_id": user_id, "name": parts[0]}
    if not found:
        return 404, _not_found(parts[0])
    dataset, view = found[0], parts[1] if len(parts) == 2 else ""
    if view == "series":
        end = datetime.now(UTC)
        start = datetime.fromisoformat(args["from"][0]) if "from" in args else end - DAY
        grouped = "group_by" in args
        (row,) = yield (
            "grouped" if grouped else "series",
            {"start": start, "end": end, "dataset": dataset["id"]},
        )
        return 200, orjson.dumps(_series(dataset, args, start, end, grouped, row))
    if view == "events":
        limit = int(args.get("limit", ["100"])[0])
        kind, values = _events_query(dataset, args, limit)
        rows = yield kind, values
        return 200, orjson.dumps(_page(rows, limit))
    return (200, orjson.dumps(_describe(dataset))) if not view else (404, _not_found(view))


def _series(
    dataset: dict[str, Any],
    args: dict[str, list[str]],
    start: datetime,
    end: datetime,
    grouped: bool,
    row: dict[str, Any],
) -> dict[str, Any]:
    written = orjson.Fragment(next(iter(row.values())))  # the JSON PostgreSQL wrote, as in ours
    series = {
        "dataset": dataset["name"],
        **{name: args.get(name, [None])[0] for name in ("bucket", "agg", "field")},
        "from": start.isoformat(),
        "to": end.isoformat(),
        "points": [] if grouped else written,
    }
    return series | {"groups": written} if grouped else series


def _events_query(
    dataset: dict[str, Any], args: dict[str, list[str]], limit: int
) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {"dataset": dataset["id"], "wanted": limit + 1}
    for number, spec in enumerate(args.get("filter", [])):
        field, _, value = spec.split(":", 2)
        values[f"f{number}"] = field
        values[f"v{number}"] = float(value) if field == "value" else value
    if "cursor" not in args:
        return "events", values
    values["after_ts"], values["after_id"] = decode_cursor(args["cursor"][0])
    return "events_after", values


def _page(rows: Rows, limit: int) -> dict[str, Any]:
    found = sorted((row for row in rows if row["seen"] is None), key=_order)
    events = [
        {
            "id": r["id"],
            "ts": r["ts"].astimezone(UTC).isoformat(),
            "values": orjson.Fragment(r["payload"]),
        }
        for r in found[:limit]
    ]
    after = found[limit - 1] if len(found) > limit else None
    return {
        "events": events,
        "next_cursor": encode_cursor(after["ts"], after["id"]) if after else None,
    }


def _checked(statements: dict[str, Statement]) -> dict[str, Statement]:
    missing = set(KINDS) - set(statements)
    if missing:
        raise ValueError(f"statements missing: {', '.join(sorted(missing))}")
    return statements


class Connections:
    """One autocommit connection a thread, kept open (as our app's pool keeps its own)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.local = threading.local()
        self.opened: list[psycopg.Connection[Any]] = []

    def cursor(self) -> psycopg.Cursor[dict[str, Any]]:
        connection = getattr(self.local, "connection", None)
        if connection is None or connection.closed:
            connection = self.local.connection = psycopg.connect(self.address, autocommit=True)
            self.opened.append(connection)
        return connection.cursor(row_factory=dict_row)

    def close(self) -> None:
        for connection in self.opened:
            connection.close()


def create_server(database_url: str, statements: dict[str, Statement]) -> Flask:
    """The bare Flask app (for gunicorn): each request runs its recorded statements."""
    statements = _checked(statements)
    server = Flask(__name__)
    connections = server.extensions["bare_api"] = Connections(libpq_url(database_url))

    @server.get("/healthz")
    def healthz() -> Any:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @server.get("/<path:path>")
    def read(path: str) -> Any:
        work = answer(
            f"/{path}", request.args.to_dict(flat=False), request.headers.get("Authorization", "")
        )
        try:
            kind, values = next(work)
            while True:
                sql, recorded = statements[kind]
                with connections.cursor() as cursor:
                    rows = cursor.execute(sql, recorded | values).fetchall()
                kind, values = work.send(rows)
        except StopIteration as done:
            status, body = done.value
        return Response(body, status=status, mimetype="application/json")

    return server


class AsgiServer:
    """The same work as a raw ASGI app: uvicorn (uvloop, httptools), psycopg's async pool.

    No framework: the leanest Python serving there is, to say what the read mix's statements
    allow beyond Flask under gunicorn.
    """

    def __init__(self, database_url: str, statements: dict[str, Statement]) -> None:
        self.statements = _checked(statements)
        self.pool = AsyncConnectionPool(
            libpq_url(database_url), min_size=4, max_size=8, kwargs={"autocommit": True}, open=False
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        status, body = 200, b'{"status":"ok"}'
        if scope["path"] != "/healthz":
            headers = dict(scope["headers"])
            args = parse_qs(scope["query_string"].decode())
            work = answer(scope["path"], args, headers.get(b"authorization", b"").decode())
            status, body = await self._run(work)
        length = str(len(body)).encode()
        start = {b"content-type": b"application/json", b"content-length": length}
        await send(
            {"type": "http.response.start", "status": status, "headers": list(start.items())}
        )
        await send({"type": "http.response.body", "body": body})

    async def _run(self, work: Work) -> Answer:
        try:
            kind, values = next(work)
            while True:
                sql, recorded = self.statements[kind]
                async with self.pool.connection() as connection:
                    cursor = connection.cursor(row_factory=dict_row)
                    rows = await (await cursor.execute(sql, recorded | values)).fetchall()
                kind, values = work.send(rows)
        except StopIteration as done:
            result: Answer = done.value
            return result

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.pool.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def from_environment() -> Flask:
    """gunicorn's factory (``bench.bare_api:from_environment()``)."""
    return create_server(os.environ["DATABASE_URL"], load(Path(os.environ[STATEMENTS_ENV])))


def asgi_from_environment() -> AsgiServer:
    """uvicorn's factory (``uvicorn --factory bench.bare_api:asgi_from_environment``)."""
    return AsgiServer(os.environ["DATABASE_URL"], load(Path(os.environ[STATEMENTS_ENV])))


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


def _not_found(name: str) -> bytes:
    return orjson.dumps({"error": {"code": "not_found", "message": f"no dataset {name!r}"}})
