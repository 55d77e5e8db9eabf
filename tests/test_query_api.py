"""The read API: datasets, events with filters and cursors, series, and the OpenAPI document.

Answers are checked against sums worked out here from the CSV itself (Plotly's Apple stock
prices: one row per trading day), not against the SQL under test.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime, timedelta
from statistics import mean, median
from typing import Any

import psycopg
import pytest
from openapi_spec_validator import validate

from app.database import libpq_url
from app.event_queries import TimeRange, chart_series, parse_filter
from app.extensions import db
from app.models import Dataset, Role
from app.tokens import create_token
from app.users import create_user, get_user
from etl.pipeline import IngestOptions, ingest_csv
from etl.runs import create_run
from tests.conftest import PLOTLY

APPLE = PLOTLY / "finance-charts-apple.csv"
NAME = "apple"
BASE = f"/api/v1/datasets/{NAME}"


def apple_rows() -> list[dict[str, Any]]:
    with APPLE.open(newline="") as stream:
        return [
            {
                "date": row["Date"],
                "open": float(row["AAPL.Open"]),
                "volume": int(row["AAPL.Volume"]),
                "direction": row["direction"],
            }
            for row in csv.DictReader(stream)
        ]


@pytest.fixture
def apple(database_url):
    """Load the CSV as dataset ``apple``; return its column names by their CSV label."""
    options = IngestOptions(dataset=NAME, time_column="Date")
    with psycopg.connect(libpq_url(database_url)) as conn:
        run_id = create_run(conn, options, "file", {"path": str(APPLE)})
        with conn.transaction(), APPLE.open("rb") as stream:
            summary = ingest_csv(conn, stream, options, run_id=run_id)
    assert summary.rows_loaded == len(apple_rows())
    return {column.get("label", column["name"]): column["name"] for column in summary.columns}


@pytest.fixture
def token_for(app, auth):
    def make(role: str) -> dict[str, str]:
        email = f"{role}-reader@example.com"
        auth.create(email, role)
        with app.app_context():
            token = create_token(get_user(email), "test")
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def viewer(token_for):
    return token_for("viewer")


def get(client, headers, path, **params):
    return client.get(path, headers=headers, query_string=params)


def all_events(client, headers, path=BASE + "/events", **params):
    """Follow next_cursor to the end; return every event and the number of pages."""
    events, cursor, pages = [], None, 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = get(client, headers, path, **query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        events += body["events"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return events, pages


def dates(events):
    return [event["ts"][:10] for event in events]


# (filter, the same test in Python on a CSV row)
FILTERS = [
    ("aapl_open:eq:127.489998", lambda r: r["open"] == 127.489998),
    ("aapl_open:ne:127.489998", lambda r: r["open"] != 127.489998),
    ("aapl_open:lt:100", lambda r: r["open"] < 100),
    ("aapl_open:lte:93.129997", lambda r: r["open"] <= 93.129997),
    ("aapl_open:gt:130", lambda r: r["open"] > 130),
    ("aapl_open:gte:132.940002", lambda r: r["open"] >= 132.940002),
    ("aapl_open:in:127.489998,127.629997,1", lambda r: r["open"] in {127.489998, 127.629997}),
    ("aapl_volume:gte:80000000", lambda r: r["volume"] >= 80_000_000),
    ("aapl_open:between:95,100", lambda r: 95 <= r["open"] <= 100),
    ("aapl_open:between:127.489998,127.489998", lambda r: r["open"] == 127.489998),
    ("aapl_volume:eq:63152400", lambda r: r["volume"] == 63_152_400),
    ("direction:eq:Decreasing", lambda r: r["direction"] == "Decreasing"),
    ("direction:ne:Decreasing", lambda r: r["direction"] != "Decreasing"),
    ("direction:contains:INCREAS", lambda r: "increas" in r["direction"].lower()),
    ("direction:in:Increasing,Sideways", lambda r: r["direction"] == "Increasing"),
    ("date:contains:2016-03", lambda r: r["date"].startswith("2016-03")),
]


@pytest.mark.parametrize(("spec", "test"), FILTERS, ids=[spec for spec, _ in FILTERS])
def test_each_filter_returns_exactly_the_matching_rows(client, viewer, apple, spec, test):
    expected = [row["date"] for row in apple_rows() if test(row)]
    assert expected, "a filter that matches nothing proves little"
    events, _ = all_events(client, viewer, filter=spec, limit=1000)
    assert dates(events) == expected


def test_filters_combine_and_a_time_range_narrows(client, viewer, apple):
    expected = [
        row["date"]
        for row in apple_rows()
        if "2016-01-01" <= row["date"] < "2016-07-01"
        and 95 <= row["open"] < 100
        and row["direction"] == "Increasing"
    ]
    assert expected
    events, _ = all_events(
        client,
        viewer,
        **{"from": "2016-01-01T00:00:00Z", "to": "2016-07-01"},
        filter=["aapl_open:gte:95", "aapl_open:lt:100", "direction:eq:Increasing"],
    )
    assert dates(events) == expected


@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
def test_pages_hold_every_row_exactly_once_oldest_first(client, viewer, apple, limit):
    events, pages = all_events(client, viewer, limit=limit)
    rows = apple_rows()
    assert dates(events) == [row["date"] for row in rows]
    assert len({event["id"] for event in events}) == len(rows)
    assert pages == -(-len(rows) // limit)  # no empty page at the end
    assert events[0]["values"]["aapl_open"] == rows[0]["open"]


def test_default_page_is_a_hundred_events(client, viewer, apple):
    body = get(client, viewer, BASE + "/events").get_json()
    assert len(body["events"]) == 100
    assert body["next_cursor"]


AGGREGATES = {"count": len, "sum": sum, "avg": mean, "min": min, "max": max}
PERCENTILES = {"p50": median, "p95": lambda values: values[0]}  # one row a day


@pytest.mark.parametrize("bucket", ["minute", "hour", "day"])
@pytest.mark.parametrize("agg", [*AGGREGATES, *PERCENTILES])
def test_series_matches_hand_computed_aggregates(client, viewer, apple, agg, bucket):
    # One row per trading day at midnight: every bucket grain groups by the day.
    by_day: dict[str, list[float]] = defaultdict(list)
    for row in apple_rows():
        if row["date"] < "2016-01-01" and row["direction"] == "Increasing":
            by_day[row["date"]].append(row["open"])
    params = {"from": "2015-01-01T00:00:00Z", "to": "2016-01-01T00:00:00Z"}
    response = get(
        client,
        viewer,
        BASE + "/series",
        **params,
        bucket=bucket,
        agg=agg,
        filter="direction:eq:Increasing",
        **({} if agg == "count" else {"field": "aapl_open"}),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    got = {point["bucket"][:10]: point["value"] for point in body["points"]}
    compute = AGGREGATES.get(agg) or PERCENTILES[agg]
    expected = {day: float(compute(values)) for day, values in by_day.items()}
    assert got == pytest.approx(expected)
    assert [point["bucket"][:10] for point in body["points"]] == sorted(by_day)


def test_series_over_a_month_of_days_sums_volume(client, viewer, apple):
    june = [row for row in apple_rows() if row["date"].startswith("2016-06")]
    response = get(
        client,
        viewer,
        BASE + "/series",
        **{"from": "2016-06-01", "to": "2016-07-01"},
        bucket="day",
        agg="sum",
        field="aapl_volume",
    )
    values = [point["value"] for point in response.get_json()["points"]]
    assert values == [float(row["volume"]) for row in june]


def test_series_defaults_to_the_last_day(client, viewer, apple):
    body = get(client, viewer, BASE + "/series").get_json()
    assert body["points"] == []  # the prices end in 2017
    assert (body["agg"], body["bucket"]) == ("count", "hour")
    from datetime import datetime

    span = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert span.total_seconds() == 24 * 3600


def test_datasets_list_and_describe_the_schema(client, viewer, apple):
    listed = get(client, viewer, "/api/v1/datasets").get_json()["datasets"]
    assert [dataset["name"] for dataset in listed] == [NAME]
    described = get(client, viewer, BASE).get_json()
    assert described == listed[0]
    types = {column["name"]: column["type"] for column in described["columns"]}
    assert types["aapl_open"] == "float"
    assert types["aapl_volume"] == "integer"
    assert types["direction"] == "text"
    assert described["time_column"] == "date"


@pytest.fixture
def secret_dataset(app):
    with app.app_context():
        create_user("owner@example.com", Role.ANALYST, "long enough password")
        owner = get_user("owner@example.com")
        db.session.add(
            Dataset(
                name="secret",
                label="Secret",
                columns=[{"name": "x", "type": "float", "nullable": True}],
                visibility="restricted",
                owner_id=owner.id,
                key_columns=[],
                options={},
            )
        )
        db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("suffix", ["", "/events", "/series"])
def test_an_invisible_dataset_answers_like_a_missing_one(client, viewer, secret_dataset, suffix):
    hidden = get(client, viewer, "/api/v1/datasets/secret" + suffix)
    missing = get(client, viewer, "/api/v1/datasets/nothing" + suffix)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json()["error"]["code"] == missing.get_json()["error"]["code"]
    listed = get(client, viewer, "/api/v1/datasets").get_json()["datasets"]
    assert "secret" not in [dataset["name"] for dataset in listed]


def test_admin_sees_the_restricted_dataset(client, token_for, secret_dataset):
    admin = token_for("admin")
    assert get(client, admin, "/api/v1/datasets/secret/events").get_json()["events"] == []


@pytest.mark.parametrize(
    "path",
    ["/api/v1/datasets", BASE, BASE + "/events", BASE + "/series", "/api/v1/me"],
)
def test_anonymous_callers_get_401(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("signed_in", [True, False])
def test_a_path_the_api_lacks_answers_404_in_json(client, viewer, signed_in):
    response = client.get("/api/v1/nonexistent", headers=viewer if signed_in else {})
    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "not_found",
        "message": "there is no API route /api/v1/nonexistent",
    }


def test_a_method_a_route_lacks_answers_405_in_json(client, token_for, apple):
    response = client.delete(BASE, headers=token_for("admin"))
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


BAD_EVENTS = [
    {"filter": "aapl_open'; DROP TABLE events; --:eq:1"},
    {"filter": "payload->>'x':eq:1"},
    {"filter": "nothing:eq:1"},
    {"filter": "aapl_open:eq:1 OR 1=1"},
    {"filter": "aapl_open:eq:NaN"},
    {"filter": "aapl_open:contains:1"},
    {"filter": "aapl_open:= 1 OR 1=1 --:1"},
    {"filter": "direction:lt:x"},
    {"filter": "no operator"},
    {"filter": "aapl_open:in:" + ",".join(["1"] * 101)},
    {"filter": ["aapl_open:gte:1"] * 11},  # one request holding a worker for seconds
    {"filter": "aapl_open:between:100,95"},
    {"filter": "aapl_open:between:95"},
    {"filter": "aapl_open:between:1,2,3"},
    {"filter": "direction:between:a,b"},
    {"cursor": "not a cursor"},
    {"cursor": "WyJ4IiwgMV0"},  # ["x", 1]
    {"cursor": "WyIyMDE2LTAxLTAxIiwgMTAwMDAwMDAwMDAwMDAwMDAwMDAwMDBd"},  # an id past bigint
    {"filter": "direction:eq:\x00"},  # PostgreSQL text holds no NUL
    {"limit": "0"},
    {"limit": "1001"},
    {"limit": "ten"},
    {"from": "yesterday"},
    {"order": "id; DROP TABLE events"},
]


@pytest.mark.parametrize("params", BAD_EVENTS, ids=[str(p) for p in BAD_EVENTS])
def test_bad_event_queries_get_400_in_the_error_shape(client, viewer, apple, params, app):
    response = get(client, viewer, BASE + "/events", **params)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] in {"bad_query", "invalid_request"}
    assert error["message"]
    assert get(client, viewer, BASE + "/events", limit=1).status_code == 200  # table intact


BAD_SERIES = [
    {"filter": ["aapl_open:gte:1"] * 11},
    {"agg": "sum", "field": "aapl_open) FROM users; --"},
    {"agg": "sum", "field": "direction"},
    {"agg": "sum"},
    {"agg": "count(*) FROM users --"},
    {"agg": "median", "field": "aapl_open"},
    {"bucket": "week"},
    {"bucket": "minute', ts) FROM users; --"},
    {"from": "2016-01-02", "to": "2016-01-01"},
    {"filter": "1=1; --:eq:1"},
    {"filter": "direction:in:a,\x00"},
    {"to": "0001-01-01T00:00:00Z"},  # no day before it to default from to
    {"group_by": "nothing"},
    {"group_by": "direction", "top": "0"},
    {"group_by": "direction", "top": "21"},
    {"group_by": "direction'; DROP TABLE events; --"},
    {"agg": "p99", "field": "aapl_open"},
]


def test_series_grouped_by_a_column_keeps_the_top_and_gathers_the_rest(client, viewer, apple):
    rows = [row for row in apple_rows() if "2016-01-01" <= row["date"] < "2017-01-01"]
    sizes: dict[str, int] = defaultdict(int)
    for row in rows:
        sizes[row["direction"]] += 1
    assert len(sizes) == 2
    biggest = max(sizes, key=lambda name: sizes[name])
    body = get(
        client,
        viewer,
        BASE + "/series",
        **{"from": "2016-01-01T00:00:00Z", "to": "2017-01-01T00:00:00Z"},
        bucket="day",
        agg="sum",
        field="aapl_volume",
        group_by="direction",
        top=1,
    ).get_json()
    assert body["points"] == []
    assert [(line["group"], line["other"]) for line in body["groups"]] == [
        (biggest, False),
        (None, True),
    ]
    for line in body["groups"]:
        wanted = {
            row["date"]: float(row["volume"])
            for row in rows
            if (row["direction"] == biggest) != line["other"]
        }
        assert {point["bucket"][:10]: point["value"] for point in line["points"]} == wanted


@pytest.mark.parametrize("params", BAD_SERIES, ids=[str(p) for p in BAD_SERIES])
def test_bad_series_queries_get_400(client, viewer, apple, params):
    response = get(client, viewer, BASE + "/series", **params)
    assert response.status_code == 400, response.get_json()
    assert set(response.get_json()["error"]) == {"code", "message"}


def test_an_injection_in_a_text_value_is_only_a_value(client, viewer, apple):
    for value in ["x' OR '1'='1", "%", "_", "Increasing'; DROP TABLE events; --"]:
        events, _ = all_events(client, viewer, filter=f"direction:eq:{value}")
        assert events == []
    events, _ = all_events(client, viewer, filter="direction:contains:%", limit=1000)
    assert events == []  # no LIKE wildcards
    assert len(all_events(client, viewer, limit=1000)[0]) == len(apple_rows())


def test_openapi_document_is_valid_and_covers_the_api(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post"}
    }
    assert operations == {
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/live/token"),
        ("GET", "/api/v1/datasets"),
        ("GET", "/api/v1/datasets/{name}"),
        ("GET", "/api/v1/datasets/{name}/events"),
        ("POST", "/api/v1/datasets/{name}/events"),
        ("GET", "/api/v1/datasets/{name}/series"),
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearer": []}]


def test_docs_page_needs_nothing_from_a_cdn(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "/api/v1/datasets/{name}/series" in page
    assert "<script" not in page
    assert "https://" not in page


def test_boolean_filters_on_pushed_events(client, token_for):
    analyst = token_for("analyst")
    rows = [
        {"time": f"2024-05-01T10:00:{second:02d}Z", "ok": second % 3 == 0, "n": second}
        for second in range(12)
    ]
    pushed = client.post("/api/v1/datasets/checks/events", json=rows, headers=analyst)
    assert pushed.status_code == 201, pushed.get_json()
    types = {column["name"]: column["type"] for column in pushed.get_json()["columns"]}
    assert types["ok"] == "boolean"
    path = "/api/v1/datasets/checks/events"
    for spec, wanted in [("ok:eq:true", True), ("ok:eq:FALSE", False), ("ok:ne:true", False)]:
        events, _ = all_events(client, analyst, path, filter=spec)
        assert [event["values"]["n"] for event in events] == [
            row["n"] for row in rows if row["ok"] is wanted
        ]
    assert get(client, analyst, path, filter="ok:eq:yes").status_code == 400
    assert get(client, analyst, path, filter="ok:gt:true").status_code == 400
    series = get(
        client,
        analyst,
        "/api/v1/datasets/checks/series",
        **{"from": "2024-05-01T10:00:00Z", "to": "2024-05-01T11:00:00Z"},
        bucket="minute",
        agg="sum",
        field="n",
        filter="ok:eq:true",
    ).get_json()
    assert series["points"] == [{"bucket": "2024-05-01T10:00:00+00:00", "value": 0 + 3 + 6 + 9}]


@pytest.mark.parametrize("bucket", ["minute", "hour", "day"])
@pytest.mark.parametrize("agg", list(AGGREGATES))
def test_series_from_rollups_equals_the_group_by_over_events(client, viewer, apple, agg, bucket):
    # Without a filter the answer comes from the rollups; a filter every row passes makes
    # the same question go to the events.
    params = {"from": "2015-03-04T10:20:30Z", "to": "2016-08-09T07:06:05Z"}
    field = {} if agg == "count" else {"field": "aapl_open"}
    common = {"bucket": bucket, "agg": agg, **field, **params}
    fast = get(client, viewer, BASE + "/series", **common).get_json()["points"]
    raw = get(client, viewer, BASE + "/series", filter="aapl_volume:gte:-1", **common).get_json()[
        "points"
    ]
    assert [point["bucket"] for point in fast] == [point["bucket"] for point in raw]
    assert [point["value"] for point in fast] == pytest.approx([point["value"] for point in raw])
    assert len(fast) > 100


def test_a_filtered_page_walks_past_events_that_do_not_match(client, token_for):
    # 5,000 events, four to a second (ties in time), most of them filtered out: the page
    # query reads them window by window (1,000, then 4,000 more), and the pages must come out
    # exactly as the filter over the whole dataset, in (ts, id) order, none lost or repeated.
    analyst = token_for("analyst")
    rows = [
        {
            "time": f"2024-05-01T{n // 14400:02d}:{n // 240 % 60:02d}:{n // 4 % 60:02d}Z",
            "kind": "rare" if n % 613 == 5 or n >= 4997 else "common",
            "n": n,
        }
        for n in range(5000)
    ]
    pushed = client.post("/api/v1/datasets/walk/events", json=rows, headers=analyst)
    assert pushed.status_code == 201, pushed.get_json()
    path = "/api/v1/datasets/walk/events"
    wanted = [row["n"] for row in rows if row["kind"] == "rare"]
    assert len(wanted) == 12

    events, pages = all_events(client, analyst, path, filter="kind:eq:rare", limit=4)
    assert [event["values"]["n"] for event in events] == wanted
    assert pages == 3
    order = [(event["ts"], event["id"]) for event in events]
    assert order == sorted(order) and len(set(order)) == len(order)

    # The last three events alone match: the walk reaches the end of the dataset.
    events, _ = all_events(client, analyst, path, filter="n:gte:4997", limit=100)
    assert [event["values"]["n"] for event in events] == [4997, 4998, 4999]
    # Nothing matches: an empty page without a cursor, not an endless walk.
    body = get(client, analyst, path, filter="n:gt:5000").get_json()
    assert body == {"events": [], "next_cursor": None}


def test_a_read_records_the_tokens_last_use_and_a_revoked_token_stops_at_once(
    client, token_for, database_url
):
    # Read requests run without a transaction (app.database.reads_without_transaction): the
    # token's last-used time they write must still be stored, and a revocation committed
    # elsewhere must hold from the very next request.
    headers = token_for("viewer")
    secret = headers["Authorization"].removeprefix("Bearer ")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        before = conn.execute(
            "SELECT last_used_at FROM api_tokens WHERE prefix = %s", (secret[:10],)
        ).fetchone()
        assert before == (None,)
        assert get(client, headers, "/api/v1/me").status_code == 200
        (used,) = conn.execute(
            "SELECT last_used_at FROM api_tokens WHERE prefix = %s", (secret[:10],)
        ).fetchone()
        assert used is not None
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE prefix = %s", (secret[:10],))
    assert get(client, headers, "/api/v1/me").status_code == 401
    assert get(client, headers, "/api/v1/datasets").status_code == 401


AWKWARD_GROUPS = [
    'say "hi"',
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "ünï €",
    "<b>&amp;</b>",
    "=1+1",
]


@pytest.mark.parametrize("agg", ["count", "sum", "avg", "min", "max", "p50", "p95"])
def test_series_json_written_by_the_database_reads_as_the_charts_lines(app, client, token_for, agg):
    # The API's series JSON is written by PostgreSQL; the explore page reads the same query
    # as Python values. Both must agree, group names JSON must escape included.
    analyst = token_for("analyst")
    rows = [
        {"time": f"2024-05-01T10:{minute:02d}:{second:02d}Z", "value": minute * 1.25 - second}
        | ({} if second % 5 == 0 else {"kind": AWKWARD_GROUPS[second % len(AWKWARD_GROUPS)]})
        for minute in range(3)
        for second in range(0, 60, 3)
    ]
    pushed = client.post("/api/v1/datasets/awkward/events", json=rows, headers=analyst)
    assert pushed.status_code == 201, pushed.get_json()
    span = {"from": "2024-05-01T10:00:30Z", "to": "2024-05-01T10:02:50Z"}
    field = {} if agg == "count" else {"field": "value"}
    for grouping in [{}, {"group_by": "kind", "top": 4}, {"group_by": "kind", "top": 20}]:
        for filters in [{}, {"filter": "value:gte:-30"}]:
            params = {"bucket": "minute", "agg": agg, **span, **field, **grouping, **filters}
            answer = get(client, analyst, "/api/v1/datasets/awkward/series", **params)
            assert answer.status_code == 200, answer.get_json()
            body = answer.get_json()
            with app.app_context():
                dataset = db.session.query(Dataset).filter_by(name="awkward").one()
                lines = chart_series(
                    dataset,
                    TimeRange(
                        datetime.fromisoformat(span["from"]), datetime.fromisoformat(span["to"])
                    ),
                    timedelta(minutes=1),
                    agg,
                    None if agg == "count" else "value",
                    [parse_filter(spec) for spec in filters.values()],
                    grouping.get("group_by"),
                    grouping.get("top", 5),
                )
                db.session.remove()
            expected = [
                {
                    "group": line.group,
                    "other": line.other,
                    "points": [
                        {"bucket": bucket.isoformat(), "value": value}
                        for bucket, value in line.points
                    ],
                }
                for line in lines
            ]
            if grouping:
                assert body["points"] == []
                assert body["groups"] == expected
            else:
                assert body["points"] == (expected[0]["points"] if expected else [])
    grouped = get(
        client,
        analyst,
        "/api/v1/datasets/awkward/series",
        bucket="hour",
        group_by="kind",
        top=20,
        **span,
    ).get_json()
    assert {line["group"] for line in grouped["groups"]} == {*AWKWARD_GROUPS, None}
