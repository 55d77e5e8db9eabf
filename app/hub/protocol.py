"""The live protocol: JSON Schema files for every message, client messages checked against them.

The schema files in ``app/hub/schema/`` are the contract; the hub validates what clients send
with them, and the tests validate what the hub sends (and what the browser parses) with them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker

CLIENT_TYPES = ("subscribe", "unsubscribe")
HUB_TYPES = ("subscribed", "points", "resync", "heartbeat", "error")
MAX_CLIENT_MESSAGE_BYTES = 4096


class ProtocolError(ValueError):
    """A client message that is not JSON or does not match its schema."""


@cache
def schema(message_type: str) -> dict[str, Any]:
    """Return the JSON Schema of one message type."""
    if message_type not in CLIENT_TYPES + HUB_TYPES:
        raise KeyError(message_type)
    text = resources.files("app.hub").joinpath("schema", f"{message_type}.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def validator(message_type: str) -> Draft202012Validator:
    return Draft202012Validator(schema(message_type), format_checker=FormatChecker())


def parse_client_message(raw: str | bytes) -> dict[str, Any]:
    """Decode and check one client message.

    :raises ProtocolError: with a message fit to send back to the client.
    """
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("a message is one JSON object") from exc
    if not isinstance(message, dict):
        raise ProtocolError("a message is one JSON object")
    kind = message.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(f"type must be one of {', '.join(CLIENT_TYPES)}")
    error = next(iter(validator(kind).iter_errors(message)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "message"
        raise ProtocolError(f"{kind}: {where}: {error.message}")
    return message


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def subscribed(dataset: str, last_id: int | None) -> bytes:
    return encode({"type": "subscribed", "dataset": dataset, "last_id": last_id})


def resync(dataset: str, last_id: int | None, reason: str) -> bytes:
    return encode({"type": "resync", "dataset": dataset, "last_id": last_id, "reason": reason})


def heartbeat(interval: float) -> bytes:
    return encode({"type": "heartbeat", "time": now_iso(), "interval": interval})


def error(code: str, message: str, dataset: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if dataset is not None:
        body["dataset"] = dataset
    return encode(body)


def points(
    dataset: str, rows: list[tuple[int, datetime, dict[str, Any]]], *, after: int | None
) -> bytes:
    """Encode events (id, time, payload) column-wise: one list per payload field.

    ``after`` is the id these points follow; a client holding an older last id knows it
    missed a message and reloads.
    """
    ids = [row[0] for row in rows]
    times = [row[1].astimezone(UTC).isoformat(timespec="milliseconds") for row in rows]
    fields: dict[str, None] = {}
    for _, _, payload in rows:
        fields.update(dict.fromkeys(payload))
    values = {field: [payload.get(field) for _, _, payload in rows] for field in fields}
    return encode(
        {
            "type": "points",
            "dataset": dataset,
            "last_id": ids[-1],
            "after": after,
            "ids": ids,
            "ts": times,
            "values": values,
        }
    )
