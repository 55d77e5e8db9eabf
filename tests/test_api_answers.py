"""How API answers are written: JSON through orjson as Flask would write it, model checks.

The read API answers through ``jsonify`` (app.json is ``app.json_provider.OrjsonProvider``);
answers are checked against their models only where configured (``app.api_spec``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

from app.api_spec import Me, responses, spec
from app.config import Config
from app.database import libpq_url
from app.extensions import db
from app.json_provider import OrjsonProvider
from app.models import Role
from app.tokens import create_token
from app.users import create_user, get_user


@dataclass
class Point:
    at: datetime
    value: float


DOCUMENTS = [
    {"b": 1, "a": [1.5, None, True, "text"], "nested": {"z": 0, "y": -2}},
    {"when": datetime(2026, 1, 1, 12, 30, tzinfo=UTC), "day": date(2026, 1, 2)},
    {"amount": Decimal("1.10"), "id": uuid.UUID(int=5), "html": "<b>&</b>"},
    {"point": Point(datetime(2026, 3, 4, tzinfo=UTC), 2.5)},
    [1, 2, {"x": 0.1}],
    {"big": 2**70},  # beyond orjson's 64 bits: the standard library writes it
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_jsonify_reads_back_as_flasks_own_provider_writes_it(document):
    ours, flasks = Flask("ours"), Flask("flasks")
    ours.json = OrjsonProvider(ours)
    flasks.json = DefaultJSONProvider(flasks)
    with ours.app_context():
        written = jsonify(document)
    with flasks.app_context():
        expected = jsonify(document)
    assert written.mimetype == "application/json"
    assert written.get_data().endswith(b"\n")
    # The same document (keys sorted, dates as HTTP dates, Decimal as text); only the bytes
    # may differ where JSON allows (UTF-8 instead of \u escapes).
    assert written.get_json() == expected.get_json()
    keys = list(written.get_json()) if isinstance(document, dict) else []
    assert keys == sorted(keys)


def test_indented_in_debug_mode_as_flask_does():
    server = Flask("debugging")
    server.json = OrjsonProvider(server)
    server.debug = True
    with server.app_context():
        assert jsonify({"a": 1}).get_data() == b'{\n  "a": 1\n}\n'


def _server(tmp_path, *, testing: bool, validate: bool) -> Flask:
    server = Flask(f"answers-{testing}-{validate}")
    server.json = OrjsonProvider(server)
    server.config["INSIGHTWAVE"] = Config(
        data_dir=tmp_path, secret_key="k" * 40, testing=testing, validate_responses=validate
    )

    @server.get("/me")
    @spec.validate(resp=responses(Me))
    def me():  # an answer its model refuses: no such role
        return jsonify(email="someone@example.com", role="superuser")

    return server


@pytest.mark.parametrize(
    ("testing", "validate", "status"),
    [(False, False, 200), (False, True, 500), (True, False, 500)],
)
def test_answers_are_checked_against_their_model_where_configured(
    tmp_path, testing, validate, status
):
    answer = _server(tmp_path, testing=testing, validate=validate).test_client().get("/me")
    assert answer.status_code == status
    if status == 200:
        assert answer.get_json() == {"email": "someone@example.com", "role": "superuser"}


def test_an_event_whose_number_orjson_refuses_still_reads(app, client, database_url):
    """A payload number beyond a double (written by SQL, not by ingest) reads exactly."""
    huge = 10**400
    with app.app_context():
        create_user("huge-writer@example.com", Role.ANALYST, "long enough password")
        token = create_token(get_user("huge-writer@example.com"), "test")
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}
    pushed = client.post("/api/v1/datasets/huge/events", json=[{"n": 2.5}], headers=headers)
    assert pushed.status_code in (200, 201)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(
            "INSERT INTO events (dataset_id, ts, dedupe_key, payload) "
            "SELECT id, now(), 'beyond a double', jsonb_build_object('n', %s::numeric) "
            "FROM datasets WHERE name = 'huge'",
            (str(huge),),
        )
    answer = client.get("/api/v1/datasets/huge/events", headers=headers)
    assert answer.status_code == 200
    assert sorted(event["values"]["n"] for event in answer.get_json()["events"]) == [2.5, huge]
