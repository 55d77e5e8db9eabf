"""``POST /api/v1/datasets/NAME/events``: bearer tokens, JSON and NDJSON, idempotency, limits."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
import pytest
from alembic import command

from app import migrate
from app.database import libpq_url
from app.extensions import db
from app.tokens import create_token
from app.users import get_user
from etl.datasets import get_dataset

ROWS = [
    {"time": "2024-05-01T10:00:00Z", "sensor": "a", "value": 1.5},
    {"time": "2024-05-01T10:00:01Z", "sensor": "b", "value": 2},
    {"time": "2024-05-01T10:00:02Z", "sensor": "a", "value": 3.25},
]


@pytest.fixture
def token_for(app, auth):
    def make(role):
        email = f"{role}-api@example.com"
        auth.create(email, role)
        with app.app_context():
            token = create_token(get_user(email), "test")
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return make


def push(client, headers, body, dataset="sensors", content_type="application/json", **extra):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(
        f"/api/v1/datasets/{dataset}/events",
        data=data,
        headers={**headers, **extra},
        content_type=content_type,
    )


def test_first_push_creates_the_dataset_and_loads_every_row(client, token_for):
    response = push(client, token_for("analyst"), ROWS)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {
        k: body[k] for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")
    } == {
        "rows_read": 3,
        "rows_loaded": 3,
        "rows_rejected": 0,
        "rows_duplicate": 0,
    }
    types = {column["name"]: column["type"] for column in body["columns"]}
    assert types == {"time": "timestamp", "sensor": "text", "value": "float"}


def test_ndjson_is_accepted(client, token_for):
    body = b"\n".join(orjson.dumps(row) for row in ROWS) + b"\n"
    response = push(client, token_for("admin"), body, content_type="application/x-ndjson")
    assert response.status_code == 201
    assert response.get_json()["rows_loaded"] == 3


def test_pushing_the_same_rows_again_reports_duplicates(client, token_for):
    headers = token_for("analyst")
    push(client, headers, ROWS)
    again = push(client, headers, ROWS).get_json()
    assert (again["rows_loaded"], again["rows_duplicate"]) == (0, 3)


def test_idempotency_key_replays_the_first_answer(client, token_for):
    headers = token_for("analyst")
    first = push(client, headers, ROWS, **{"Idempotency-Key": "batch-1"})
    second = push(client, headers, ROWS, **{"Idempotency-Key": "batch-1"})
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["rows_loaded"] == first.get_json()["rows_loaded"] == 3


def test_an_idempotency_key_reused_for_another_batch_is_refused(client, token_for, database_url):
    headers = token_for("analyst")
    assert push(client, headers, ROWS[:1], **{"Idempotency-Key": "k1"}).status_code == 201
    other = push(client, headers, ROWS[1:], **{"Idempotency-Key": "k1"})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    retry = push(client, headers, ROWS[:1], **{"Idempotency-Key": "k1"})
    assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (200, "true")


def test_a_key_stored_before_its_request_was_remembered_still_replays(
    client, token_for, database_url
):
    headers = token_for("analyst")
    first = push(client, headers, ROWS, **{"Idempotency-Key": "old"}).get_json()
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("UPDATE idempotency_keys SET request_sha256 = NULL")
    again = push(client, headers, ROWS[:1], **{"Idempotency-Key": "old"})
    assert (again.status_code, again.get_json()["rows_loaded"]) == (200, first["rows_loaded"])


def test_a_first_batch_with_no_loadable_row_creates_no_dataset(client, token_for, database_url):
    nested = [{"time": "2024-05-01T11:00:00Z", "sensor": {"nested": n}} for n in range(3)]
    response = push(client, token_for("analyst"), nested, dataset="nested")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "rejected"
    assert "so dataset 'nested' was not created: line 1: field 'sensor'" in error["message"]
    assert "(2 more rows rejected)" in error["message"]
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM datasets").fetchone()[0] == 0


def test_bad_rows_are_rejected_with_reasons_and_good_ones_load(client, token_for):
    headers = token_for("analyst")
    push(client, headers, ROWS)
    bad = [
        {"time": "2024-05-01T11:00:00Z", "sensor": "c", "value": "seven"},
        {"time": "2024-05-01T11:00:01Z", "sensor": "c", "value": 7},
        {"time": "2024-05-01T11:00:02Z", "sensor": {"nested": 1}, "value": 1},
    ]
    body = push(client, headers, bad).get_json()
    assert (body["rows_loaded"], body["rows_rejected"]) == (1, 2)
    assert body["rejected"][0] == {"line": 1, "reason": "column 'value': \"seven\" is not a number"}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad_json"),
        (b'{"a": 1}', "application/json", 422, "not_an_array"),
        (b"[]", "application/json", 422, "empty_batch"),
        (b"a,b\n1,2\n", "text/csv", 415, "unsupported_media_type"),
        (b"[1, 2, 3]", "application/json", 422, "rejected"),
    ],
)
def test_malformed_batches_get_a_clear_4xx(client, token_for, body, content_type, status, code):
    response = push(client, token_for("analyst"), body, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_a_bad_dataset_name_is_a_400(client, token_for):
    response = push(client, token_for("analyst"), ROWS, dataset="Robert'); DROP TABLE--")
    assert response.status_code in {400, 404}


def test_too_large_a_batch_is_a_413(client, token_for):
    rows = [{"v": i} for i in range(50_001)]
    assert push(client, token_for("analyst"), rows).status_code == 413


def test_a_viewer_token_cannot_push(client, token_for):
    response = push(client, token_for("viewer"), ROWS)
    assert response.status_code == 403


def test_no_or_a_wrong_token_is_a_401(client):
    assert push(client, {}, ROWS).status_code in {400, 401}
    wrong = push(client, {"Authorization": "Bearer iw_nope"}, ROWS)
    assert wrong.status_code in {400, 401}


def test_a_session_push_without_csrf_token_is_refused(client, auth):
    auth.login_as("analyst")
    response = push(client, {}, ROWS)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"


def test_a_revoked_token_stops_working(app, client, token_for):
    from app.models import ApiToken
    from app.tokens import revoke_token

    headers = token_for("analyst")
    assert push(client, headers, ROWS).status_code == 201
    with app.app_context():
        user = get_user("analyst-api@example.com")
        token_id = db.session.query(ApiToken.id).scalar()
        assert revoke_token(token_id, user)
        db.session.remove()
    assert push(client, headers, ROWS).status_code == 401


def test_a_field_name_with_a_nul_byte_is_a_422(client, token_for):
    response = push(client, token_for("analyst"), [{"\u0000": 1, "v": 2}])
    assert response.status_code == 422
    assert "NUL" in response.get_json()["error"]["message"]


def test_concurrent_first_pushes_to_a_new_dataset_all_load(base_url, token_for, database_url):
    headers = {**token_for("analyst"), "Content-Type": "application/json"}
    pushers = 12
    start = threading.Barrier(pushers)

    def push_one(n):
        row = {"time": f"2024-05-01T10:00:{n:02}Z", "sensor": f"s{n}", "value": n}
        request = urllib.request.Request(
            f"{base_url}/api/v1/datasets/race/events",
            data=orjson.dumps([row]),
            headers=headers,
            method="POST",
        )
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

    with ThreadPoolExecutor(pushers) as pool:
        answers = list(pool.map(push_one, range(pushers)))
    assert all(status in {200, 201} for status, _ in answers), answers
    assert sorted(status for status, _ in answers) == [200] * (pushers - 1) + [201]
    with psycopg.connect(libpq_url(database_url)) as conn:
        sensors = conn.execute("SELECT payload ->> 'sensor' FROM events").fetchall()
    assert sorted(sensor for (sensor,) in sensors) == sorted(f"s{n}" for n in range(pushers))


@pytest.mark.parametrize(
    "batch",
    [ROWS[:1], [{"time": "2024-05-01T10:00:05Z", "sensor": "c", "value": "seven"}], [{"x": 1}]],
    ids=["fits", "a row that does not fit", "no column in common"],
)
def test_a_push_that_lost_the_race_to_create_is_an_append(client, token_for, monkeypatch, batch):
    import etl.pipeline

    headers = token_for("analyst")
    assert push(client, headers, ROWS[1:]).status_code == 201
    appended = push(client, headers, batch)
    push(client, headers, ROWS[1:], dataset="raced")
    looked = []

    def created_since_we_looked(conn, name):  # as if another push created it meanwhile
        looked.append(name)
        return None if len(looked) == 1 else get_dataset(conn, name)

    monkeypatch.setattr(etl.pipeline, "get_dataset", created_since_we_looked)
    raced = push(client, headers, batch, dataset="raced")
    assert looked == ["raced", "raced"]
    assert raced.status_code == appended.status_code

    def answer(response, name):
        body = {k: v for k, v in response.get_json().items() if k not in {"dataset", "run_id"}}
        return orjson.dumps(body).decode().replace(repr(name), "NAME")

    assert answer(raced, "raced") == answer(appended, "sensors")


def restrict(database_url, dataset, *grantees):
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = %s", (dataset,))
        for email in grantees:
            conn.execute(
                "INSERT INTO dataset_grants (dataset_id, user_id) SELECT d.id, u.id "
                "FROM datasets d, users u WHERE d.name = %s AND u.email = %s",
                (dataset, email),
            )


def test_a_push_to_a_dataset_one_may_not_see_is_a_404_like_a_read(client, token_for, database_url):
    assert push(client, token_for("admin"), ROWS, dataset="secret_a").status_code == 201
    restrict(database_url, "secret_a")
    analyst = token_for("analyst")
    pushed = push(client, analyst, ROWS, dataset="secret_a")
    read = client.get("/api/v1/datasets/secret_a", headers=analyst)
    assert pushed.status_code == read.status_code == 404
    assert (
        pushed.get_json()
        == read.get_json()
        == {"error": {"code": "not_found", "message": "no dataset 'secret_a'"}}
    )
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3


def test_a_restricted_dataset_takes_pushes_from_those_who_may_see_it(
    client, auth, token_for, database_url
):
    owner = token_for("analyst")
    grantee = {"Authorization": f"Bearer {auth.api_token('grantee@example.com', 'analyst')}"}
    assert push(client, owner, ROWS[:1], dataset="secret_b").status_code == 201
    restrict(database_url, "secret_b", "grantee@example.com")
    assert push(client, owner, ROWS[1:2], dataset="secret_b").status_code == 200
    assert push(client, grantee, ROWS[2:], dataset="secret_b").status_code == 200
    assert push(client, token_for("viewer"), ROWS, dataset="secret_b").status_code == 403


def test_a_bad_ndjson_line_is_reported_at_its_line_in_the_body(client, token_for):
    headers = token_for("analyst")
    body = b'{"a":1}\n{bad\n{"a":2}'
    response = push(client, headers, body, content_type="application/x-ndjson")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_json"
    assert error["message"].endswith(": line 2 column 2"), error["message"]
    blank_lines = b'{"a":1}\r\n\n\r\n{"a":2}\n  {"a": tru}\n'
    response = push(client, headers, blank_lines, content_type="application/x-ndjson")
    assert response.get_json()["error"]["message"].endswith(": line 5 column 9")


def test_idempotency_keys_are_each_users_own(client, auth, token_for):
    analyst = token_for("analyst")
    other = {"Authorization": f"Bearer {auth.api_token('analyst2@example.com', 'analyst')}"}
    first = push(client, analyst, ROWS, **{"Idempotency-Key": "mine"})
    assert first.status_code == 201
    same = push(client, other, ROWS, **{"Idempotency-Key": "mine"})
    assert (same.status_code, same.headers.get("Idempotent-Replayed")) == (200, None)
    assert (same.get_json()["rows_duplicate"], same.get_json()["run_id"]) == (
        3,
        first.get_json()["run_id"] + 1,
    )
    another = push(client, other, ROWS[:1], **{"Idempotency-Key": "mine"})
    assert (another.status_code, another.get_json()["error"]["code"]) == (
        422,
        "idempotency_key_reused",  # other's own key now, for other's first batch
    )
    again = push(client, analyst, ROWS, **{"Idempotency-Key": "mine"})
    assert (again.headers["Idempotent-Replayed"], again.get_json()) == ("true", first.get_json())


def test_a_key_stored_before_keys_were_per_user_still_replays_for_its_user(fresh_database):
    url = fresh_database()
    command.upgrade(migrate.alembic_config(url), "0009")
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(
            "INSERT INTO users (id, email, role) OVERRIDING SYSTEM VALUE "
            "VALUES (42, 'a@example.com', 'analyst');"
            "INSERT INTO datasets (name, label, columns) VALUES ('old', 'old', '[]');"
            "INSERT INTO ingest_runs (id, dataset_name, source_kind, source, options, created_by)"
            " OVERRIDING SYSTEM VALUE VALUES (7, 'old', 'push', '{}', '{}', 42);"
            "INSERT INTO idempotency_keys (dataset_id, key, user_id, response) "
            "SELECT id, 'k', 42, '{\"run_id\": 7}' FROM datasets;"
            "INSERT INTO idempotency_keys (dataset_id, key, user_id, response) "
            "SELECT id, 'no user', NULL, '{\"run_id\": 7}' FROM datasets"
        )
    migrate.upgrade(url)
    with psycopg.connect(libpq_url(url)) as conn:
        keys = conn.execute("SELECT key, user_id FROM idempotency_keys ORDER BY key").fetchall()
        assert keys == [("k", 42), ("no user", 42)]  # the run says whose it was
        conn.execute(
            "INSERT INTO idempotency_keys (dataset_id, key, user_id, response) "
            "SELECT id, 'k', 43, '{}' FROM datasets"
        )
    command.downgrade(migrate.alembic_config(url), "0009")
    with psycopg.connect(libpq_url(url)) as conn:
        keys = conn.execute("SELECT key, user_id FROM idempotency_keys ORDER BY key").fetchall()
        assert keys == [("k", 42), ("no user", 42)]  # the first to use a key keeps it
