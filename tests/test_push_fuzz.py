"""Hostile and random batches to the push endpoint: never a 500, never a partial dataset."""

from __future__ import annotations

import json

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.database import libpq_url
from app.extensions import db
from app.tokens import create_token
from app.users import get_user

HOSTILE = st.sampled_from(
    [
        "=cmd|' /C calc'!A0",
        "<script>alert(1)</script>",
        "'; DROP TABLE users; --",
        "\x00",
        "é" * 5000,
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=50),
    HOSTILE,
)
OBJECTS = st.dictionaries(st.one_of(st.text(max_size=20), HOSTILE), SCALARS, max_size=6)
BATCHES = st.lists(st.one_of(OBJECTS, SCALARS, st.lists(SCALARS, max_size=3)), max_size=8)


@pytest.fixture
def headers(app, auth):
    auth.create("fuzz@example.com", "analyst")
    with app.app_context():
        token = create_token(get_user("fuzz@example.com"), "fuzz")
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=BATCHES, name=st.sampled_from(["fuzzed", "Bad Name", "x" * 80, "ok_2"]))
def test_random_batches_get_an_answer_below_500(client, headers, database_url, batch, name):
    response = client.post(
        f"/api/v1/datasets/{name}/events",
        data=json.dumps(batch),  # stdlib: writes big ints and NaN; the server must refuse them
        headers=headers,
        content_type="application/json",
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    if response.status_code >= 400:
        assert body["error"]["message"]
        with psycopg.connect(libpq_url(database_url)) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id "
                "WHERE d.name = %s AND e.run_id IN (SELECT max(id) FROM ingest_runs)",
                (name,),
            ).fetchone()[0]
        assert stored == 0
    else:
        assert body["rows_read"] == len(batch)
        assert body["rows_loaded"] + body["rows_rejected"] + body["rows_duplicate"] == len(batch)
