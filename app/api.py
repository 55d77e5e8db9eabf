"""The REST API, ``/api/v1``; every view declares its role with ``@requires``."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import SplitResult, urlsplit

import orjson
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from flask_login import current_user
from psycopg.types.json import Jsonb

from app import audit
from app.access import dataset_exists, find_visible_dataset
from app.api_spec import LiveToken, Me, PushedEvents, PushSummary, responses, spec
from app.database import connect
from app.guard import requires
from app.hub import tokens as live_tokens
from app.models import Role
from etl.datasets import DatasetError, check_dataset_name
from etl.parse import MAX_COLUMNS
from etl.pipeline import IngestError, IngestOptions
from etl.runs import run_now

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PUSH_BYTES = 10 * 1024 * 1024
MAX_PUSH_ROWS = 50_000
MAX_IDEMPOTENCY_KEY = 200
REJECTIONS_SHOWN = 100


def api_error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


@bp.get("/me")
@requires(Role.VIEWER)
@spec.validate(resp=responses(Me), tags=["account"])
def me() -> Any:
    """Describe the signed-in user."""
    return jsonify(email=current_user.email, role=current_user.role)


# Documented, not validated by SpecTree: the body may be NDJSON, and the view reads it itself
# (size and row limits first) to answer 413 before parsing a huge body.
@bp.post("/datasets/<name>/events")
@requires(Role.ANALYST)
@spec.validate(
    json=PushedEvents,
    resp=responses(PushSummary, 400, 404, 413, 415, 422, ok_statuses=(200, 201)),  # 201: created
    skip_validation=True,
    tags=["datasets"],
)
def push_events(name: str) -> Any:
    """Load a JSON array (or NDJSON) of objects into a dataset, creating it when new."""
    try:
        check_dataset_name(name)
    except DatasetError as exc:
        return api_error(400, "bad_dataset_name", str(exc))
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        return api_error(413, "too_large", f"a batch may be at most {MAX_PUSH_BYTES} bytes")
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key.isprintable() or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        return api_error(400, "bad_idempotency_key", "Idempotency-Key: 1 to 200 printable chars")
    if dataset_exists(name) and find_visible_dataset(current_user, name) is None:
        # As the read routes answer: a dataset one may not see is not revealed to exist.
        # Whoever may see a dataset may push to it, so there is no 403 for a visible one.
        return api_error(404, "not_found", f"no dataset {name!r}")
    body = request.get_data(cache=False)
    items = _read_batch(body)
    if isinstance(items, Response):
        return items
    digest = hashlib.sha256(body).digest() if key is not None else None  # what a key answers
    with connect() as conn:
        if key is not None:
            stored = _stored_response(conn, name, key)
            if stored is not None:
                response, answered = stored
                if answered is not None and answered != digest:
                    return api_error(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another batch: send each "
                        "batch with a key of its own, and a retry with the same bytes",
                    )
                return _respond(response, replayed=True)
        result = _load(conn, name, items)
        if isinstance(result, Response):
            return result
        if key is not None:
            conn.execute(
                "INSERT INTO idempotency_keys (dataset_id, key, user_id, response, request_sha256)"
                " SELECT id, %s, %s, %s, %s FROM datasets WHERE name = %s ON CONFLICT DO NOTHING",
                (key, current_user.id, Jsonb(result), digest, name),
            )
    return _respond(result, replayed=False)


@bp.get("/live/token")
@requires(Role.VIEWER)
@spec.validate(resp=responses(LiveToken), tags=["live"])
def live_token() -> Any:
    """Give a short-lived token for the live hub, standing on this session or API token."""
    config = current_app.config["INSIGHTWAVE"]
    page = urlsplit(request.host_url)
    if g.get("bearer_auth"):
        bearer = request.headers["Authorization"].partition(" ")[2].strip()
        token = live_tokens.issue(config.secret_key, current_user.id, api_token=bearer)
    else:
        origin = f"{page.scheme}://{page.netloc}"
        token = live_tokens.issue(
            config.secret_key, current_user.id, session_token=current_user.session_id, origin=origin
        )
    response = jsonify(
        token=token, url=_hub_url(config, page), expires_in=config.live_token_seconds
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _hub_url(config: Any, page: SplitResult) -> str:
    if config.hub_url:
        return str(config.hub_url)
    port = current_app.config.get("HUB_PORT") or config.hub_port
    host = page.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'wss' if page.scheme == 'https' else 'ws'}://{host}:{port}/live"


def _read_batch(body: bytes) -> list[Any] | Response:
    if len(body) > MAX_PUSH_BYTES:
        return api_error(413, "too_large", f"a batch may be at most {MAX_PUSH_BYTES} bytes")
    mimetype = request.mimetype
    try:
        if mimetype in {"application/x-ndjson", "application/ndjson"}:
            parsed = _read_ndjson(body)
            if isinstance(parsed, Response):
                return parsed
            items = parsed
        elif mimetype == "application/json":
            items = orjson.loads(body)
        else:
            return api_error(
                415, "unsupported_media_type", "send application/json or application/x-ndjson"
            )
    except orjson.JSONDecodeError as exc:
        return api_error(400, "bad_json", f"the body is not valid JSON: {exc}")
    if not isinstance(items, list):
        return api_error(422, "not_an_array", "send a JSON array of objects")
    if not items:
        return api_error(422, "empty_batch", "the batch holds no objects")
    if len(items) > MAX_PUSH_ROWS:
        return api_error(413, "too_many_rows", f"a batch may hold at most {MAX_PUSH_ROWS} rows")
    # Checked before any work per column (and before a run is recorded), like a CSV header.
    fields = {field for item in items if isinstance(item, dict) for field in item}
    if len(fields) > MAX_COLUMNS:
        return api_error(
            422,
            "too_many_columns",
            f"the batch has {len(fields)} fields; a dataset may have at most {MAX_COLUMNS} columns",
        )
    return items


def _read_ndjson(body: bytes) -> list[Any] | Response:
    """Parse each line alone; a bad one is reported by its line in the body, not in itself."""
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                where = f"line {number} column {exc.colno}"
                return api_error(400, "bad_json", f"the body is not valid JSON: {exc.msg}: {where}")
    return items


def _load(conn: Any, name: str, items: list[Any]) -> dict[str, Any] | Response:
    options = IngestOptions(dataset=name, owner_id=current_user.id)
    source = {"rows": len(items)}
    try:
        summary = run_now(
            conn,
            options,
            "push",
            source,
            created_by=current_user.id,
            records=items,
            actor=audit.actor_of(current_user),
        )
    except IngestError as exc:
        return api_error(422, "rejected", str(exc))
    rejected = conn.execute(
        "SELECT line, reason FROM rejected_rows WHERE run_id = %s ORDER BY line LIMIT %s",
        (summary.run_id, REJECTIONS_SHOWN),
    ).fetchall()
    result = summary.to_json()
    result["rejected"] = [{"line": line, "reason": reason} for line, reason in rejected]
    return result


def _stored_response(conn: Any, name: str, key: str) -> tuple[dict[str, Any], bytes | None] | None:
    """The answer stored under this user's ``key`` and the SHA-256 of the body it answered
    (None before migration 0008 kept it). Each user's keys are their own (migration 0010)."""
    row = conn.execute(
        "SELECT k.response, k.request_sha256 FROM idempotency_keys k "
        "JOIN datasets d ON d.id = k.dataset_id "
        "WHERE d.name = %s AND k.user_id = %s AND k.key = %s",
        (name, current_user.id, key),
    ).fetchone()
    return (dict(row[0]), row[1]) if row is not None else None


def _respond(result: dict[str, Any], replayed: bool) -> Response:
    response = jsonify(result)
    response.status_code = 201 if result.get("created") and not replayed else 200
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/openapi.json")
def openapi() -> Any:
    """Serve the OpenAPI document (public: it describes the API and holds no data)."""
    return jsonify(spec.spec)


@bp.get("/docs")
def docs() -> Any:
    """Render the API reference from the OpenAPI document, with no script from a CDN.

    SpecTree's Swagger UI and Redoc pages load their JavaScript from a CDN, and nothing may
    be downloaded at run time, so the reference is a plain server-rendered page instead.
    """
    return render_template("api_docs.html", spec=spec.spec)


# The read endpoints register themselves on ``bp``; imported last, once ``bp`` exists.
from app import query_api  # noqa: E402, F401
