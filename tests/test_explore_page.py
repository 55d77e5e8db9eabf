"""The explore page: aggregates against hand-computed answers, the chart, the link, the export."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from app.cli import main
from app.database import libpq_url
from app.extensions import db
from app.models import Dataset, Role
from app.queries import explore_series
from tests.conftest import PLOTLY
from tests.test_jobs_page import call

DAY = timedelta(days=1)


@pytest.fixture
def sales(app, runner):
    result = runner.invoke(
        main, ["ingest", str(PLOTLY / "supermarket_Sales.csv"), "--dataset", "sales"]
    )
    assert result.exit_code == 0, result.output


def hand_computed(database_url, agg: str) -> dict[datetime, float]:
    """Per UTC day of January 2019, computed in Python from the stored events."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT e.ts, (e.payload ->> 'total')::float8 FROM events e JOIN datasets d "
            "ON d.id = e.dataset_id WHERE d.name = 'sales' AND e.ts < '2019-02-01'"
        ).fetchall()
    days: dict[datetime, list[float]] = {}
    for ts, total in rows:
        days.setdefault(datetime(ts.year, ts.month, ts.day, tzinfo=UTC), []).append(total)
    compute = {
        "count": len,
        "sum": sum,
        "avg": statistics.fmean,
        "min": min,
        "max": max,
        "p50": lambda v: (
            statistics.quantiles(v, n=100, method="inclusive")[49] if len(v) > 1 else v[0]
        ),
        "p95": lambda v: (
            statistics.quantiles(v, n=100, method="inclusive")[94] if len(v) > 1 else v[0]
        ),
    }[agg]
    return {day: float(compute(values)) for day, values in days.items()}


@pytest.mark.parametrize("agg", ["count", "sum", "avg", "min", "max", "p50", "p95"])
def test_every_aggregate_matches_a_hand_computed_answer(app, sales, database_url, agg):
    start = datetime(2019, 1, 1, tzinfo=UTC)
    with app.app_context():
        dataset = db.session.query(Dataset).filter_by(name="sales").one()
        field = None if agg == "count" else "total"
        points = explore_series(dataset, field, agg, DAY, start, start + 31 * DAY)
        db.session.remove()
    expected = hand_computed(database_url, agg)
    assert [bucket for bucket, _ in points] == sorted(expected)
    for bucket, value in points:
        assert value == pytest.approx(expected[bucket], rel=1e-9), (agg, bucket)


def push_recent(app, auth) -> list[float]:
    """Push ten events over the last ten minutes and return their values."""
    token = auth.api_token("pusher@example.com", Role.ANALYST)
    now = datetime.now(UTC)
    values = [float(i) for i in range(10)]
    rows = [
        {"time": (now - timedelta(minutes=10 - i)).isoformat(), "level": v}
        for i, v in enumerate(values)
    ]
    response = app.test_client().post(
        "/api/v1/datasets/tank/events",
        data=orjson.dumps(rows),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.get_json()
    return values


def test_the_chart_the_link_and_the_export_agree(app, client, dash_app, auth):
    values = push_recent(app, auth)
    auth.login_as(Role.VIEWER)
    controls = {
        "explore-dataset.value": "tank",
        "explore-range.value": "1h",
        "explore-agg.value": "sum",
        "explore-field.value": "level",
        "explore-bucket.value": "1h",
        "explore-view.value": "bar",
    }
    response = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
    figure = response["explore-graph"]["figure"]
    assert figure["data"][0]["type"] == "bar"
    assert sum(figure["data"][0]["y"]) == pytest.approx(sum(values))
    link = response["explore-link"]["href"]
    assert link.startswith("/explore?") and "dataset=tank" in link and "agg=sum" in link
    assert client.get(link).status_code == 200
    export_values = {key: value for key, value in controls.items() if "view" not in key}
    exported = call(
        client, dash_app, "explore-download.data", {"explore-export.n_clicks": 1, **export_values}
    )
    content = exported.get_json()["response"]["explore-download"]["data"]["content"]
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["bucket", "sum(level)"]
    assert sum(float(row[1]) for row in rows[1:]) == pytest.approx(sum(values))


def test_a_restricted_dataset_is_not_charted_for_others(app, client, dash_app, auth, database_url):
    push_recent(app, auth)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = 'tank'")
    auth.login_as(Role.VIEWER)
    controls = {
        "explore-dataset.value": "tank",
        "explore-range.value": "1h",
        "explore-agg.value": "count",
        "explore-bucket.value": "auto",
        "explore-view.value": "line",
    }
    response = call(client, dash_app, "explore-note.children", controls).get_json()["response"]
    assert response == {"explore-note": {"children": "Choose a dataset."}}
    export = call(
        client, dash_app, "explore-download.data", {"explore-export.n_clicks": 1, **controls}
    )
    assert "explore-download" not in (export.get_json() or {}).get("response", {})
