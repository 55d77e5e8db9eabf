"""The upload page: its typed functions, its callbacks over HTTP, hostile input, a browser."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import random
import time
import uuid
import zlib
from pathlib import Path

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import text

from app.cli import main
from app.database import libpq_url
from app.extensions import db
from app.job_views import act_on_job, create_job_for
from app.models import Role
from app.uploads import (
    MAX_UPLOAD_BYTES,
    UploadError,
    UploadTarget,
    decode_upload,
    load_upload,
    preview_upload,
    recent_runs,
    rejected_rows_text,
    save_upload,
    suggest_dataset_name,
    upload_path,
)
from app.users import get_user
from etl.columnar import BATCH_ROWS
from etl.pipeline import IngestError
from tests.conftest import PLOTLY
from tests.test_browser import WAIT, screenshot, sign_in, wait_for
from tests.test_jobs_page import DEMO
from tests.test_roles import ROUTER, callback_body, csrf_header

# file -> (dataset, rows in the file, rows identical to an earlier row, suggested time column)
FILES = {
    "tips.csv": ("tips", 244, 1, None),
    "finance-charts-apple.csv": ("apple", 506, 0, "date"),
    "supermarket_Sales.csv": ("supermarket", 1000, 0, "date"),
    "MTA_Daily_Ridership.csv": ("mta", 1706, 0, "date"),
    "2016-weather-data-seattle.csv": ("seattle_weather", 24381, 0, "date"),
    "gapminder-unclean.csv": ("gapminder", 1704, 0, None),
}
# "smoker" (Yes/No) is left out: whether that is text or boolean is etl.types' call.
TIPS_TYPES = {
    "total_bill": "float",
    "tip": "float",
    "sex": "text",
    "day": "text",
    "time": "text",
    "size": "integer",
}
TIPS_NAMES = ["total_bill", "tip", "sex", "smoker", "day", "time", "size"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x00" + zlib.compress(b"\xff" * 9000)
XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + zlib.compress(b"<xml/>" * 900)
HOSTILE_HEADER = "=cmd|' /C calc'!A0,<script>alert(1)</script>"


# --- helpers -------------------------------------------------------------------------------


def data_url(data: bytes, mime: str = "text/csv") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def stored_files(data_dir: Path) -> set[str]:
    directory = data_dir / "uploads"
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


def scalar(database_url: str, query: str, *params: object) -> object:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query, params).fetchone()[0]


@pytest.fixture
def analyst(app, auth):
    """Create an analyst; return a function that looks them up (inside an app context)."""
    auth.create("ana@example.com", Role.ANALYST)
    return lambda: get_user("ana@example.com")


def callback_key(dash_app, part: str) -> str:
    """The callback_map key of the one callback whose outputs include ``part``."""
    (key,) = [key for key in dash_app.callback_map if part in key.strip(".").split("...")]
    return key


def call(client, dash_app, part: str, values: dict[str, object]):
    """POST a callback as dash-renderer would; ``values`` maps 'id.prop' to inputs and state."""
    output = callback_key(dash_app, part)
    spec = dash_app.callback_map[output]

    def items(kind: str) -> list[dict[str, object]]:
        return [
            {
                "id": item["id"],
                "property": item["property"],
                "value": values.get(f"{item['id']}.{item['property']}"),
            }
            for item in spec[kind]
        ]

    inputs = items("inputs")
    outputs = [
        {"id": piece.split(".")[0], "property": piece.split(".")[1]}
        for piece in output.strip(".").split("...")
    ]
    changed = [
        f"{i['id']}.{i['property']}" for i in inputs if f"{i['id']}.{i['property']}" in values
    ]
    body = {
        "output": output,
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": changed or [f"{inputs[0]['id']}.{inputs[0]['property']}"],
        "state": items("state"),
    }
    return client.post("/_dash-update-component", json=body, headers=csrf_header(client))


def upload(client, dash_app, data: bytes, filename: str, mime: str = "text/csv") -> dict:
    response = call(
        client,
        dash_app,
        "datasets-upload-store.data",
        {"datasets-upload.contents": data_url(data, mime), "datasets-upload.filename": filename},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def load(client, dash_app, upload_id: object, name: str = "tips", **form: object) -> dict:
    values = {
        "datasets-load.n_clicks": 1,
        "datasets-upload-store.data": upload_id,
        "datasets-target.value": "new",
        "datasets-name.value": name,
        **form,
    }
    response = call(client, dash_app, "datasets-result.children", values)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def texts(node: object) -> list[str]:
    """Every string child in a Dash component tree (JSON), depth first."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [text for item in node for text in texts(item)]
    if isinstance(node, dict):
        return texts(node.get("props", {}).get("children"))
    return []


def find(node: object, component_id: str) -> dict | None:
    """The props of the component with ``component_id`` in a Dash tree (JSON)."""
    if isinstance(node, list):
        for item in node:
            found = find(item, component_id)
            if found is not None:
                return found
    elif isinstance(node, dict):
        props = node.get("props", {})
        if props.get("id") == component_id:
            return props
        return find(props.get("children"), component_id)
    return None


# --- the typed functions, called directly ---------------------------------------------------


@pytest.mark.parametrize("file", sorted(FILES))
def test_each_plotly_file_previews_and_loads_with_exact_counts(app, analyst, database_url, file):
    dataset, rows, repeated, time_column = FILES[file]
    with app.app_context():
        upload_id = save_upload((PLOTLY / file).read_bytes())
        preview = preview_upload(upload_id)
        assert preview.time_column == time_column
        assert 0 < len(preview.rows) <= 20
        assert set(preview.rows[0]) == {column.name for column in preview.columns}
        target = UploadTarget(dataset=dataset, time_column=preview.time_column)
        result = load_upload(upload_id, target, analyst())
        db.session.remove()
    summary = result.summary
    assert summary.rows_read == rows
    assert summary.rows_duplicate == repeated
    assert summary.rows_loaded + summary.rows_rejected + repeated == rows
    stored = scalar(
        database_url,
        "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = %s",
        dataset,
    )
    assert stored == summary.rows_loaded
    columns = scalar(database_url, "SELECT columns FROM datasets WHERE name = %s", dataset)
    assert [(c["name"], c["type"]) for c in columns] == [
        (column.name, column.type.value) for column in preview.columns
    ]
    kind, source, status = scalar(
        database_url,
        "SELECT row(source_kind, source->>'path', status) FROM ingest_runs WHERE id = %s",
        result.run_id,
    )
    assert (kind, status) == ("upload", "succeeded")
    assert Path(source).name == f"{upload_id}.csv"


def test_tips_preview_reads_format_rows_and_types(app):
    with app.app_context():
        preview = preview_upload(save_upload((PLOTLY / "tips.csv").read_bytes()))
    assert preview.format == "UTF-8, comma-separated"
    assert len(preview.rows) == 20
    assert preview.rows[0] == {
        "total_bill": "16.99",
        "tip": "1.01",
        "sex": "Female",
        "smoker": "No",
        "day": "Sun",
        "time": "Dinner",
        "size": "2",
    }
    types = {column.name: column.type.value for column in preview.columns}
    assert types.items() >= TIPS_TYPES.items()


def test_supermarket_preview_joins_date_and_time(app):
    with app.app_context():
        preview = preview_upload(save_upload((PLOTLY / "supermarket_Sales.csv").read_bytes()))
    types = {column.name: column.type.value for column in preview.columns}
    assert (types["date"], types["quantity"], types["tax_5_pct"]) == (
        "timestamp",
        "integer",
        "float",
    )
    assert (preview.time_column, preview.time_of_day_column) == ("date", "time")
    assert {column.name: column.label for column in preview.columns}["tax_5_pct"] == "Tax 5%"


def test_preview_of_a_decimal_comma_file_says_so_and_types_its_numbers(app, analyst):
    body = "Datum;Preis;Stück\r\n01.03.2024;1.299,90;2\r\n02.03.2024;4,5;1.000\r\n"
    with app.app_context():
        upload_id = save_upload(body.encode("cp1252"))
        preview = preview_upload(upload_id)
        summary = load_upload(upload_id, UploadTarget(dataset="preise"), analyst()).summary
    assert preview.format == "Latin-1, semicolon-separated, decimal comma"
    types = {column.name: column.type.value for column in preview.columns}
    assert types == {"datum": "timestamp", "preis": "float", "stuck": "integer"}
    assert (summary.rows_loaded, summary.rows_rejected, summary.format) == (2, 0, preview.format)


def test_tips_loads_243_rows_and_1_duplicate(app, analyst):
    with app.app_context():
        upload_id = save_upload((PLOTLY / "tips.csv").read_bytes())
        summary = load_upload(upload_id, UploadTarget(dataset="tips"), analyst()).summary
    assert (summary.rows_read, summary.rows_loaded, summary.rows_duplicate) == (244, 243, 1)


def test_a_type_override_is_stored_with_the_dataset(app, analyst, database_url):
    with app.app_context():
        upload_id = save_upload((PLOTLY / "tips.csv").read_bytes())
        target = UploadTarget(dataset="tips", column_types={"size": "float"})
        load_upload(upload_id, target, analyst())
    columns = scalar(database_url, "SELECT columns FROM datasets WHERE name = 'tips'")
    assert {column["name"]: column["type"] for column in columns}["size"] == "float"


def test_a_type_override_that_rejects_every_row_refuses_the_file_with_the_reason(
    app, analyst, database_url
):
    with app.app_context():
        upload_id = save_upload(b"name,v\na,x\nb,y\n")
        target = UploadTarget(dataset="all_bad", column_types={"v": "integer"})
        refusal = "line 2: column 'v': \"x\" is not an integer \\(1 more row rejected\\)"
        with pytest.raises(IngestError, match=refusal):
            load_upload(upload_id, target, analyst())
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0
    assert scalar(database_url, "SELECT status FROM ingest_runs") == "refused"


def test_a_batch_whose_every_row_is_rejected_does_not_stop_a_first_load(app, analyst, database_url):
    """The first load goes in batches of 100,000 rows; one of them may keep no row at all."""
    good = "".join(f"a{n},{n}\n" for n in range(5))
    bad = "".join(f"b{n},x\n" for n in range(BATCH_ROWS))
    with app.app_context():
        upload_id = save_upload(f"name,v\n{bad}{good}".encode())
        target = UploadTarget(dataset="mixed", column_types={"v": "integer"})
        summary = load_upload(upload_id, target, analyst()).summary
    assert (summary.rows_loaded, summary.rows_rejected) == (5, BATCH_ROWS)
    assert scalar(database_url, "SELECT count(*) FROM events") == 5


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("tips.csv", "tips"),
        ("supermarket_Sales.csv", "supermarket_sales"),
        ("2016-weather-data-seattle.csv", "data_2016_weather_data_seattle"),
        ("MTA Daily Ridership.CSV", "mta_daily_ridership"),
        ("%%.csv", "pct_pct"),
        ("___.csv", "upload"),
    ],
)
def test_dataset_name_is_suggested_from_the_file_name(filename, expected):
    assert suggest_dataset_name(filename) == expected


# --- the callbacks, through the Dash endpoint -----------------------------------------------


def test_analyst_uploads_tips_and_sees_the_preview(client, dash_app, auth, data_dir):
    auth.login_as(Role.ANALYST)
    response = upload(client, dash_app, (PLOTLY / "tips.csv").read_bytes(), "tips.csv")
    upload_id = response["datasets-upload-store"]["data"]
    assert str(uuid.UUID(upload_id)) == upload_id
    assert f"{upload_id}.csv" in stored_files(data_dir)
    assert response["datasets-preview-section"]["style"] == {}
    assert response["datasets-name"]["value"] == "tips"
    assert response["datasets-key-columns"]["data"] == TIPS_NAMES
    types = response["datasets-columns-grid"]["rowData"]
    assert {row["name"]: row["type"] for row in types}.items() >= TIPS_TYPES.items()
    preview = response["datasets-preview"]["children"]
    grid = find(preview, "datasets-preview-grid")
    assert len(grid["rowData"]) == 20
    assert [column["headerName"] for column in grid["columnDefs"]] == TIPS_NAMES
    assert "UTF-8, comma-separated" in " ".join(texts(preview))


def test_a_chosen_decimal_mark_reads_the_file_again_and_loads_it_so(
    client, dash_app, auth, database_url
):
    auth.login_as(Role.ANALYST)
    # Only "1.234"-like numbers: no vote, so a semicolon file is read with a decimal comma.
    body = b"when;weight\n2024-01-01;1.234\n2024-01-02;2.500\n2024-01-03;12.750\n"
    detected = upload(client, dash_app, body, "weights.csv")
    assert detected["datasets-decimal-mark"]["value"] == "comma"
    assert "decimal comma" in " ".join(texts(detected["datasets-preview"]["children"]))
    types = {row["name"]: row["type"] for row in detected["datasets-columns-grid"]["rowData"]}
    assert types["weight"] == "integer"  # 1234, 2500 and 12750
    upload_id = detected["datasets-upload-store"]["data"]
    again = call(
        client,
        dash_app,
        "datasets-upload-store.data",
        {"datasets-decimal-mark.value": "point", "datasets-upload-store.data": upload_id},
    ).get_json()["response"]
    assert again["datasets-decimal-mark"]["value"] == "point"
    assert again["datasets-upload-store"]["data"] == upload_id
    assert "datasets-name" not in again  # the form keeps what the user typed
    rows = again["datasets-columns-grid"]["rowData"]
    assert {row["name"]: row["type"] for row in rows}["weight"] == "float"
    form = {"datasets-columns-grid.rowData": rows, "datasets-decimal-mark.value": "point"}
    loaded = load(client, dash_app, upload_id, "weights", **form)
    assert find(loaded["datasets-result"]["children"], "datasets-summary-loaded")["children"] == "3"
    weights = scalar(
        database_url, "SELECT array_agg((payload->>'weight')::float8 ORDER BY ts) FROM events"
    )
    assert weights == [1.234, 2.5, 12.75]


def test_a_forged_decimal_mark_is_refused(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    upload_id = upload(client, dash_app, b"a;b\n1;2\n", "x.csv")["datasets-upload-store"]["data"]
    forged = {"datasets-decimal-mark.value": "semicolon", "datasets-upload-store.data": upload_id}
    response = call(client, dash_app, "datasets-upload-store.data", forged).get_json()["response"]
    assert "point or comma" in json.dumps(response["datasets-upload-message"])
    refused = load(client, dash_app, upload_id, "x", **{"datasets-decimal-mark.value": {"x": 1}})
    assert "point or comma" in json.dumps(refused["datasets-result"])
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0


def test_time_column_choices_follow_type_edits(client, dash_app, auth):
    auth.login_as(Role.ANALYST)
    rows = [
        {"name": "day", "label": "Day", "type": "timestamp", "nullable": False},
        {"name": "when", "label": "When", "type": "timestamp", "nullable": False},
        {"name": "n", "label": "N", "type": "integer", "nullable": False},
        {"name": "bad", "type": "nonsense"},
        {"name": "worse", "type": ["timestamp"]},
        "not a row",
    ]
    new_upload = {"datasets-columns-grid.rowData": rows, "datasets-upload-store.data": "x"}
    response = call(client, dash_app, "datasets-time-column.data", new_upload)
    assert response.get_json()["response"]["datasets-time-column"] == {
        "data": ["day", "when"],
        "value": "day",
    }
    rows[0]["type"] = "text"
    edit = {"datasets-columns-grid.rowData": rows, "datasets-time-column.value": "day"}
    response = call(client, dash_app, "datasets-time-column.data", edit)
    assert response.get_json()["response"]["datasets-time-column"] == {
        "data": ["when"],
        "value": None,
    }


def test_analyst_loads_the_upload_and_sees_the_summary(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    preview = upload(client, dash_app, (PLOTLY / "tips.csv").read_bytes(), "tips.csv")
    upload_id = preview["datasets-upload-store"]["data"]
    types = preview["datasets-columns-grid"]["rowData"]  # sent back unchanged
    response = load(client, dash_app, upload_id, "tips", **{"datasets-columns-grid.rowData": types})
    run_id = response["datasets-run-store"]["data"]
    summary = response["datasets-result"]["children"]
    counts = {
        label: find(summary, f"datasets-summary-{label}")["children"]
        for label in ("read", "loaded", "rejected", "duplicate")
    }
    assert counts == {"read": "244", "loaded": "243", "rejected": "0", "duplicate": "1"}
    assert find(summary, "datasets-rejected-button") is None  # nothing was rejected
    assert "/explore?dataset=tips" in json.dumps(summary)
    assert scalar(database_url, "SELECT options->'column_types' FROM ingest_runs") == {}
    runs = call(
        client, dash_app, "datasets-runs-grid.rowData", {"datasets-run-store.data": run_id}
    ).get_json()["response"]["datasets-runs-grid"]["rowData"]
    assert [(run["id"], run["dataset"], run["status"], run["loaded"]) for run in runs] == [
        (run_id, "tips", "succeeded", 243)
    ]


def test_recent_runs_list_files_loaded_by_hand_not_scheduled_or_pushed_ones(
    app, analyst, auth, runner
):
    with app.app_context():
        load_upload(save_upload(b"a,b\n1,2\n"), UploadTarget(dataset="by_page"), analyst())
        job_id = create_job_for(analyst(), DEMO)
        for _ in range(3):  # a stream's runs: one a second
            act_on_job(analyst(), "run", job_id)
        db.session.remove()
    assert (
        runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", "by_cli"]).exit_code
        == 0
    )
    pushed = app.test_client().post(
        "/api/v1/datasets/by_push/events",
        json=[{"a": 1}],
        headers={"Authorization": f"Bearer {auth.api_token('pat@example.com', 'analyst')}"},
    )
    assert pushed.status_code == 201, pushed.get_json()
    auth.create("root@example.com", Role.ADMIN)  # who sees every run
    with app.app_context():
        shown = [
            (run["dataset"], run["source"]) for run in recent_runs(get_user("root@example.com"))
        ]
        db.session.remove()
    assert shown == [("by_cli", "file"), ("by_page", "upload")]


def test_load_into_an_existing_dataset_adds_only_new_rows(client, dash_app, auth):
    auth.login_as(Role.ANALYST)
    tips = (PLOTLY / "tips.csv").read_bytes()
    first = upload(client, dash_app, tips, "tips.csv")["datasets-upload-store"]["data"]
    load(client, dash_app, first, "tips")
    second = upload(client, dash_app, tips, "tips.csv")["datasets-upload-store"]["data"]
    again = load(client, dash_app, second, "tips")
    assert "already exists" in " ".join(texts(again["datasets-result"]["children"]))
    response = load(
        client,
        dash_app,
        second,
        **{"datasets-target.value": "existing", "datasets-existing.value": "tips"},
    )
    summary = response["datasets-result"]["children"]
    assert find(summary, "datasets-summary-loaded")["children"] == "0"
    assert find(summary, "datasets-summary-duplicate")["children"] == "244"


def test_a_bad_type_choice_or_dataset_name_loads_nothing(client, dash_app, auth, database_url):
    auth.login_as(Role.ANALYST)
    upload_id = upload(client, dash_app, (PLOTLY / "tips.csv").read_bytes(), "tips.csv")[
        "datasets-upload-store"
    ]["data"]
    bad_type = [{"name": "tip", "label": "tip", "type": "money"}]
    cases = [
        ({"datasets-columns-grid.rowData": bad_type}, "'money' is not a column type"),
        ({"datasets-columns-grid.rowData": [{"name": "tip", "type": ["x"]}]}, "not a column"),
        ({"datasets-columns-grid.rowData": [{"name": "../x", "type": "text"}]}, "does not have"),
        ({"datasets-columns-grid.rowData": {"tip": "text"}}, "could not be read"),
        ({"datasets-key-columns.value": "tip"}, "could not be read"),
        ({"datasets-key-columns.value": ["nope"]}, "no column 'nope'"),
        ({"datasets-name.value": "Bad Name"}, "is not valid"),
        ({"datasets-time-column.value": "tip"}, "not timestamps"),
    ]
    for form, message in cases:
        response = load(client, dash_app, upload_id, **{"datasets-name.value": "tips", **form})
        result = response["datasets-result"]["children"]
        assert result["props"]["id"] == "datasets-load-error"
        assert message in " ".join(texts(result))
    assert scalar(database_url, "SELECT count(*) FROM events") == 0
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0


def test_viewer_cannot_upload_and_nothing_is_stored(client, dash_app, auth, data_dir):
    auth.login_as(Role.VIEWER)
    before = stored_files(data_dir)
    response = call(
        client,
        dash_app,
        "datasets-upload-store.data",
        {
            "datasets-upload.contents": data_url((PLOTLY / "tips.csv").read_bytes()),
            "datasets-upload.filename": "tips.csv",
        },
    )
    assert response.status_code == 403
    assert stored_files(data_dir) == before


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("../../etc/passwd.csv", b"a,b\n1,2\n", "plain name"),
        ("..\\..\\windows\\win.ini.csv", b"a,b\n1,2\n", "plain name"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "Only .csv, .tsv and .txt"),
        ("photo.csv", PNG, "binary"),
        ("sheet.csv", XLSX, "binary"),
        ("noise.txt", random.Random(7).randbytes(5000), "binary"),
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n\n", "empty"),
        ("quote.csv", b'"a,b\n1,2\n', "never closed"),
    ],
)
def test_a_refused_file_gets_a_message_and_is_not_stored(
    client, dash_app, auth, data_dir, filename, data, message
):
    auth.login_as(Role.ANALYST)
    before = stored_files(data_dir)
    response = upload(client, dash_app, data, filename)
    assert response["datasets-upload-store"]["data"] is None
    assert response["datasets-preview-section"]["style"] == {"display": "none"}
    alert = response["datasets-upload-message"]["children"]
    assert alert["props"]["id"] == "datasets-upload-error"
    assert message in alert["props"]["children"]
    assert stored_files(data_dir) == before


def test_a_file_over_the_limit_is_refused_without_decoding(client, dash_app, auth, data_dir):
    auth.login_as(Role.ANALYST)
    before = stored_files(data_dir)
    contents = "data:text/csv;base64," + "QUJD" * (MAX_UPLOAD_BYTES // 3 + 400)
    response = call(
        client,
        dash_app,
        "datasets-upload-store.data",
        {"datasets-upload.contents": contents, "datasets-upload.filename": "big.csv"},
    )
    assert response.status_code == 200
    alert = response.get_json()["response"]["datasets-upload-message"]["children"]
    assert "at most 50 MiB" in alert["props"]["children"]
    assert stored_files(data_dir) == before


def test_the_size_limit_is_exact():
    limit = b"a,b\n" + b"1" * (MAX_UPLOAD_BYTES - 4)
    assert len(decode_upload("limit.csv", data_url(limit))) == MAX_UPLOAD_BYTES
    with pytest.raises(UploadError, match="at most 50 MiB"):
        decode_upload("over.csv", data_url(limit + b"1"))


@pytest.mark.parametrize(
    "contents",
    [None, 1, "", "hello", "data:text/csv,a,b", "data:text/csv;base64,@@@@", ["data:,"]],
)
def test_malformed_contents_are_refused(contents):
    with pytest.raises(UploadError):
        decode_upload("x.csv", contents)


def test_the_browser_check_names_a_file_the_drop_zone_will_not_send(client, dash_app, auth):
    auth.login_as(Role.ANALYST)
    cases = [
        ({"target.files.0.name": "big.csv", "target.files.0.size": MAX_UPLOAD_BYTES + 1}, "50 MiB"),
        ({"dataTransfer.files.0.name": "a.xlsx", "dataTransfer.files.0.size": 10}, ".csv"),
    ]
    for event, message in cases:
        response = call(
            client,
            dash_app,
            "datasets-upload-check.children",
            {"datasets-upload-events.event": event},
        )
        alert = response.get_json()["response"]["datasets-upload-check"]["children"]
        assert message in alert["props"]["children"]
    fine = {"target.files.0.name": "tips.csv", "target.files.0.size": 9000}
    response = call(
        client, dash_app, "datasets-upload-check.children", {"datasets-upload-events.event": fine}
    )
    assert response.get_json()["response"]["datasets-upload-check"]["children"] is None


@pytest.mark.parametrize(
    "forged",
    [
        "../../x",
        "../uploads/../../secret_key",
        "/etc/passwd",
        str(uuid.uuid4()),  # well-formed, but never uploaded
        str(uuid.uuid4()).upper(),
        "{" + str(uuid.uuid4()) + "}",
        str(uuid.uuid1()),
        None,
        12,
        ["../../x"],
    ],
)
def test_a_forged_upload_id_loads_nothing(client, dash_app, auth, database_url, forged):
    auth.login_as(Role.ANALYST)
    response = load(client, dash_app, forged, "forged")
    result = response["datasets-result"]["children"]
    assert result["props"]["id"] == "datasets-load-error"
    assert response["datasets-run-store"]["data"] is None
    assert scalar(database_url, "SELECT count(*) FROM ingest_runs") == 0


def test_upload_path_accepts_only_stored_uuids(app):
    with app.app_context():
        upload_id = save_upload(b"a,b\n1,2\n")
        assert upload_path(upload_id).name == f"{upload_id}.csv"
        with pytest.raises(UploadError, match="unknown"):
            upload_path(f"{upload_id}/../{upload_id}")


def test_a_hostile_header_is_kept_as_inert_text_and_exported_neutralised(
    app, client, dash_app, auth, database_url
):
    """Labels are data: shown as text, never markup; exported cells cannot run as formulas."""
    auth.login_as(Role.ANALYST)
    data = f'{HOSTILE_HEADER}\n1,2\n=HYPERLINK("http://evil.example"),3,4\n'.encode()
    response = upload(client, dash_app, data, "hostile.csv")
    columns = response["datasets-columns-grid"]["rowData"]
    assert [(c["name"], c["label"]) for c in columns] == [
        ("cmd_c_calc_a0", "=cmd|' /C calc'!A0"),
        ("script_alert_1_script", "<script>alert(1)</script>"),
    ]
    grid = find(response["datasets-preview"]["children"], "datasets-preview-grid")
    assert grid["columnDefs"][1]["headerName"] == "<script>alert(1)</script>"  # a string prop
    assert "dangerously_allow_code" not in grid
    upload_id = response["datasets-upload-store"]["data"]
    loaded = load(client, dash_app, upload_id, "hostile")
    run_id = loaded["datasets-run-store"]["data"]
    summary = loaded["datasets-result"]["children"]
    assert find(summary, "datasets-summary-rejected")["children"] == "1"
    assert find(summary, "datasets-rejected-button") is not None
    download = call(
        client,
        dash_app,
        "datasets-rejected-download.data",
        {"datasets-rejected-button.n_clicks": 1, "datasets-run-store.data": run_id},
    ).get_json()["response"]["datasets-rejected-download"]["data"]
    assert download["filename"] == f"run-{run_id}-rejected.csv"
    records = list(csv.reader(io.StringIO(download["content"])))
    assert records[0] == ["line", "reason", "raw"]
    assert records[1][0] == "3"
    assert records[1][2] == '\'=HYPERLINK("http://evil.example"),3,4'


def test_rejected_rows_go_only_to_the_runs_creator_or_an_admin(app, client, dash_app, auth):
    auth.create("other@example.com", Role.ANALYST)
    auth.create("boss@example.com", Role.ADMIN)
    with app.app_context():
        upload_id = save_upload(PLOTLY.joinpath("gapminder-unclean.csv").read_bytes())
        owner = get_user("other@example.com")
        run_id = load_upload(upload_id, UploadTarget(dataset="gapminder"), owner).run_id
        assert rejected_rows_text(get_user("boss@example.com"), run_id).startswith("line,")
        db.session.remove()
    auth.login_as(Role.ANALYST)
    for forged in (run_id, run_id + 1, str(run_id), True, 2**70, None):
        response = call(
            client,
            dash_app,
            "datasets-rejected-download.data",
            {"datasets-rejected-button.n_clicks": 1, "datasets-run-store.data": forged},
        )
        assert response.status_code == 200
        result = response.get_json()["response"]
        assert "datasets-rejected-download" not in result
        assert result["datasets-download-message"]["children"]["props"]["title"] == "No download"


def test_the_datasets_list_says_what_each_visible_dataset_holds(
    app, client, dash_app, auth, runner, database_url
):
    auth.create("other@example.com", Role.ANALYST)
    with app.app_context():
        other = get_user("other@example.com")
        loaded = {}
        for name in ("weather", "hidden"):
            upload_id = save_upload((PLOTLY / "2016-weather-data-seattle.csv").read_bytes())
            target = UploadTarget(dataset=name, key_columns=("date",))
            loaded[name] = load_upload(upload_id, target, other).summary.rows_loaded
        db.session.execute(
            text("UPDATE datasets SET visibility = 'restricted' WHERE name = 'hidden'")
        )
        db.session.commit()
        db.session.remove()
    assert runner.invoke(main, ["datasets", "set-retention", "weather", "30"]).exit_code == 0
    auth.login_as(Role.ANALYST)
    response = call(
        client, dash_app, "datasets-list-grid.rowData", {"datasets-list-refresh.n_clicks": 1}
    )
    (row,) = response.get_json()["response"]["datasets-list-grid"]["rowData"]
    assert row["dataset"] == "[weather](/explore?dataset=weather)"
    assert (
        row["events"]
        == loaded["weather"]
        == scalar(
            database_url,
            "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id AND d.name = %s",
            "weather",
        )
    )
    assert row["last_event"] == "2015-12-31 00:00:00"  # the last line of the file
    assert row["columns"] == (
        "date (timestamp), max_temperature_c (integer), mean_temperature_c (integer), "
        "min_temperature_c (integer)"
    )
    assert (row["time_column"], row["key"], row["owner"]) == ("date", "date", "other@example.com")
    assert (row["visible_to"], row["retention"]) == ("everyone signed in", "30 days")


def save_upload_as(app, file: str) -> str:
    with app.app_context():
        return save_upload((PLOTLY / file).read_bytes())


def manage(client, dash_app, trigger: str, name: object, days: object = None) -> dict:
    values = {
        f"{trigger}": 1,
        "datasets-list-grid.selectedRows": [{"name": name}],
        "datasets-retention-days.value": days,
    }
    response = call(client, dash_app, "datasets-manage-message.children", values)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def test_the_owner_sets_retention_and_deletes_a_dataset_after_confirming(
    app, client, dash_app, auth, database_url
):
    email = auth.login_as(Role.ANALYST)
    upload_id = upload(client, dash_app, (PLOTLY / "tips.csv").read_bytes(), "tips.csv")[
        "datasets-upload-store"
    ]["data"]
    load(client, dash_app, upload_id, "tips")
    kept = manage(client, dash_app, "datasets-retention-set.n_clicks", "tips", 30)
    assert kept["datasets-existing"]["data"] == ["tips"]  # a second file may now go into it
    (row,) = kept["datasets-list-grid"]["rowData"]
    assert (row["retention"], row["retention_days"]) == ("30 days", 30)
    picked = call(
        client,
        dash_app,
        "datasets-retention-days.value",
        {"datasets-list-grid.selectedRows": [row]},
    )
    assert picked.get_json()["response"]["datasets-retention-days"]["value"] == 30
    assert "tips: events kept for 30 days." in json.dumps(kept["datasets-manage-message"])
    asked = manage(client, dash_app, "datasets-delete.n_clicks", "tips")
    assert asked["datasets-delete-confirm"] == {
        "displayed": True,
        "message": "Delete dataset tips? Its events, rollups, grants, jobs and runs go with it.",
    }
    assert "datasets-list-grid" not in asked  # nothing deleted before the answer
    assert scalar(database_url, "SELECT count(*) FROM events") == 243
    done = manage(client, dash_app, "datasets-delete-confirm.submit_n_clicks", "tips")
    assert done["datasets-list-grid"]["rowData"] == done["datasets-existing"]["data"] == []
    assert "Dataset tips is deleted, with its 243 events." in json.dumps(done)
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0
    assert scalar(database_url, "SELECT count(*) FROM events") == 0
    audited = scalar(
        database_url,
        "SELECT array_agg(action || ' ' || actor_email || ' ' || target || ' ' || details::text "
        "ORDER BY id) FROM audit_log WHERE action IN ('dataset.retention', 'dataset.delete')",
    )
    assert audited == [
        f'dataset.retention {email} tips {{"days": 30}}',
        f'dataset.delete {email} tips {{"events": 243}}',
    ]


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (-1, "0 (forever) to 36,500 days"),
        (40_000, "0 (forever) to 36,500 days"),
        (1.5, "whole number"),
        ("30", "whole number"),
        (True, "whole number"),
        (None, "whole number"),
    ],
)
def test_a_bad_retention_is_refused_with_its_reason(app, client, dash_app, auth, days, message):
    auth.login_as(Role.ANALYST)
    upload_id = save_upload_as(app, "tips.csv")
    load(client, dash_app, upload_id, "tips")
    refused = manage(client, dash_app, "datasets-retention-set.n_clicks", "tips", days)
    assert "datasets-list-grid" not in refused
    assert message in json.dumps(refused["datasets-manage-message"])


def test_only_the_owner_or_an_admin_may_change_a_dataset(app, client, dash_app, auth, database_url):
    auth.create("owner@example.com", Role.ANALYST)
    with app.app_context():
        for name in ("shared", "secret"):
            upload_id = save_upload((PLOTLY / "tips.csv").read_bytes())
            load_upload(upload_id, UploadTarget(dataset=name), get_user("owner@example.com"))
        db.session.execute(
            text("UPDATE datasets SET visibility = 'restricted' WHERE name = 'secret'")
        )
        db.session.commit()
        db.session.remove()
    auth.login_as(Role.ANALYST)
    for trigger in (
        "datasets-retention-set.n_clicks",
        "datasets-delete.n_clicks",
        "datasets-delete-confirm.submit_n_clicks",
    ):
        refused = manage(client, dash_app, trigger, "shared", 7)
        assert "Only the owner of shared or an admin may change it." in json.dumps(refused)
        hidden = manage(client, dash_app, trigger, "secret", 7)
        assert "no dataset called 'secret' that you may see" in json.dumps(hidden)
    assert manage(client, dash_app, "datasets-delete.n_clicks", None)["datasets-manage-message"]
    assert scalar(database_url, "SELECT count(*) FROM datasets WHERE retention_days IS NULL") == 2
    auth.logout()
    auth.login_as(Role.ADMIN)
    done = manage(client, dash_app, "datasets-delete-confirm.submit_n_clicks", "secret")
    assert "Dataset secret is deleted, with its 243 events." in json.dumps(done)
    assert [row["name"] for row in done["datasets-list-grid"]["rowData"]] == ["shared"]


def test_a_hidden_dataset_is_neither_offered_nor_writable(app, client, dash_app, auth):
    auth.create("other@example.com", Role.ANALYST)
    with app.app_context():
        upload_id = save_upload((PLOTLY / "tips.csv").read_bytes())
        load_upload(upload_id, UploadTarget(dataset="secret"), get_user("other@example.com"))
        db.session.execute(text("UPDATE datasets SET visibility = 'restricted'"))
        db.session.commit()
        db.session.remove()
    auth.login_as(Role.ANALYST)
    page = client.post(
        "/_dash-update-component",
        json=callback_body(dash_app, ROUTER, pathname="/datasets"),
        headers=csrf_header(client),
    ).get_json()["response"]["_pages_content"]["children"]
    assert find(page, "datasets-existing")["data"] == []
    assert find(page, "datasets-runs-grid")["rowData"] == []
    assert find(page, "datasets-list-grid")["rowData"] == []
    mine = upload(client, dash_app, (PLOTLY / "tips.csv").read_bytes(), "tips.csv")
    mine_id = mine["datasets-upload-store"]["data"]
    for form in (
        {"datasets-target.value": "existing", "datasets-existing.value": "secret"},
        {"datasets-name.value": "secret"},
    ):
        response = load(client, dash_app, mine_id, **form)
        assert response["datasets-result"]["children"]["props"]["id"] == "datasets-load-error"


# --- in a real browser ----------------------------------------------------------------------


def retype(driver, row: int, new_type: str) -> None:
    """Change the type of the column in ``row`` of the types grid with its select editor."""
    wait_for(driver, f"#datasets-columns-grid .ag-row[row-index='{row}'] [col-id='type']").click()
    wait_for(
        driver, "#datasets-columns-grid .ag-cell-inline-editing .ag-picker-field-wrapper"
    ).click()
    option = f"//*[contains(@class, 'ag-list-item') and normalize-space() = '{new_type}']"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.XPATH, option))).click()


@pytest.mark.browser
def test_analyst_uploads_and_loads_tips_in_the_browser(driver, base_url, auth, database_url):  # noqa: F811
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    chooser = wait_for(driver, "#datasets-upload input[type=file]")
    wait_for(driver, "#datasets-columns-grid .ag-header")  # drawn, while hidden
    time.sleep(1)  # AG Grid sizes a grid's columns just after drawing it
    assert [e["message"] for e in driver.get_log("browser") if "AG Grid" in e["message"]] == []
    chooser.send_keys(str(PLOTLY / "tips.csv"))
    wait_for(driver, "#datasets-preview-grid .ag-row")
    assert driver.find_element(By.ID, "datasets-name").get_attribute("value") == "tips"
    retype(driver, 6, "float")  # "size", the last row, from integer
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "datasets-load"))).click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "datasets-summary-loaded"), "243")
    )
    assert driver.find_element(By.ID, "datasets-summary-duplicate").text == "1"
    assert driver.find_element(By.ID, "datasets-summary-read").text == "244"
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})",
        driver.find_element(By.ID, "datasets-summary"),
    )
    screenshot(driver, "upload-summary.png")
    columns = scalar(database_url, "SELECT columns FROM datasets WHERE name = 'tips'")
    assert {column["name"]: column["type"] for column in columns}["size"] == "float"
    # The columns grid was drawn hidden; shown, its columns share its width.
    grid = driver.find_element(By.ID, "datasets-columns-grid").rect["width"]
    headers = driver.find_elements(By.CSS_SELECTOR, "#datasets-columns-grid .ag-header-cell")
    assert sum(cell.rect["width"] for cell in headers) >= grid * 0.95
    # The new dataset joins the list, with its events and a link into Explore.
    link = WebDriverWait(driver, WAIT).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#datasets-list-grid a[href='/explore?dataset=tips']")
        )
    )
    row = link.find_element(By.XPATH, "ancestor::div[@role='row']")
    assert row.find_element(By.CSS_SELECTOR, "[col-id='events']").text == "243"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    screenshot(driver, "datasets-list.png")
    link.click()
    WebDriverWait(driver, WAIT).until(ec.url_contains("/explore?dataset=tips"))


@pytest.mark.browser
def test_the_time_column_list_follows_type_edits_in_the_browser(driver, base_url, auth):  # noqa: F811
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    wait_for(driver, "#datasets-upload input[type=file]").send_keys(
        str(PLOTLY / "finance-charts-apple.csv")
    )
    wait_for(driver, "#datasets-preview-grid .ag-row")
    chosen = driver.find_element(By.ID, "datasets-time-column")
    assert chosen.get_attribute("value") == "date"

    def offered() -> list[str]:
        chosen.click()
        listbox = driver.find_element(By.ID, chosen.get_attribute("aria-controls"))
        found = [o.text for o in listbox.find_elements(By.CSS_SELECTOR, "[role='option']")]
        chosen.send_keys(Keys.ESCAPE)
        return found

    assert offered() == ["date"]
    retype(driver, 10, "timestamp")  # "direction"
    WebDriverWait(driver, WAIT).until(lambda _: offered() == ["date", "direction"])
    retype(driver, 0, "text")  # "date": no longer a time, so no longer the choice
    WebDriverWait(driver, WAIT).until(lambda _: offered() == ["direction"])
    assert chosen.get_attribute("value") == ""


@pytest.mark.browser
def test_the_decimal_mark_can_be_changed_in_the_browser(
    driver, base_url, auth, database_url, tmp_path
):  # noqa: F811
    path = tmp_path / "gewichte.csv"
    path.write_text("Tag;Gewicht\n01.03.2024;1.234\n02.03.2024;2.500\n", encoding="utf-8")
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    wait_for(driver, "#datasets-upload input[type=file]").send_keys(str(path))
    wait_for(driver, "#datasets-preview-grid .ag-row")
    weight_type = "#datasets-columns-grid .ag-row[row-index='1'] [col-id='type']"
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "datasets-format"), "decimal comma")
    )
    assert wait_for(driver, weight_type).text == "integer"
    point = "//*[@id='datasets-decimal-mark']//label[contains(., 'decimal point')]"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.XPATH, point))).click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, weight_type), "float")
    )
    assert "decimal comma" not in driver.find_element(By.ID, "datasets-format").text
    assert driver.find_element(By.ID, "datasets-name").get_attribute("value") == "gewichte"
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "datasets-load"))).click()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "datasets-summary-loaded"), "2")
    )
    screenshot(driver, "upload-decimal-mark.png")
    stored = scalar(
        database_url, "SELECT array_agg((payload->>'gewicht')::float8 ORDER BY ts) FROM events"
    )
    assert stored == [1.234, 2.5]


@pytest.mark.browser
def test_a_dataset_is_deleted_from_the_list_after_confirming_in_the_browser(
    driver, base_url, auth, database_url
):  # noqa: F811
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    wait_for(driver, "#datasets-upload input[type=file]").send_keys(str(PLOTLY / "tips.csv"))
    wait_for(driver, "#datasets-preview-grid .ag-row")
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "datasets-load"))).click()
    row = "#datasets-list-grid .ag-row[row-id='tips']"
    cell = WebDriverWait(driver, WAIT).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"{row} [col-id='events']"))
    )
    assert cell.text == "243"
    cell.click()
    wait_for(driver, f"{row}.ag-row-selected")
    driver.find_element(By.ID, "datasets-delete").click()
    asked = WebDriverWait(driver, WAIT).until(ec.alert_is_present())
    assert asked.text.startswith("Delete dataset tips?")
    asked.accept()
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element(
            (By.ID, "datasets-manage-message"), "Dataset tips is deleted, with its 243 events."
        )
    )
    assert driver.find_elements(By.CSS_SELECTOR, row) == []
    screenshot(driver, "datasets-deleted.png")
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0


@pytest.mark.browser
def test_rejected_rows_download_once_per_click_in_the_browser(driver, base_url, auth, database_url):  # noqa: F811
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    chooser = wait_for(driver, "#datasets-upload input[type=file]")
    chooser.send_keys(str(PLOTLY / "gapminder-unclean.csv"))
    wait_for(driver, "#datasets-preview-grid .ag-row")
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "datasets-load"))).click()
    wait_for(driver, "#datasets-rejected-button").click()
    exports = "SELECT count(*) FROM audit_log WHERE action = 'export.rejected_rows'"
    WebDriverWait(driver, WAIT).until(lambda _: scalar(database_url, exports) >= 1)
    # The button's arrival fired its callback too, so the summary downloaded the rows by
    # itself, then again for the click.
    time.sleep(2)
    assert scalar(database_url, exports) == 1


@pytest.mark.browser
def test_a_file_over_the_limit_is_named_in_the_browser(driver, base_url, auth, tmp_path):  # noqa: F811
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: nothing is written
    sign_in(driver, base_url, auth, "ana@example.com", "analyst")
    driver.get(f"{base_url}/datasets")
    wait_for(driver, "#datasets-upload input[type=file]").send_keys(str(big))
    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "datasets-upload-check"), "at most 50 MiB")
    )
    assert not driver.find_element(By.ID, "datasets-preview-section").is_displayed()


def test_uploads_older_than_a_week_are_removed_when_another_arrives(
    client, dash_app, auth, data_dir
):
    auth.login_as(Role.ANALYST)
    uploads = data_dir / "uploads"
    uploads.mkdir(exist_ok=True)
    old, recent = uploads / f"{uuid.uuid4()}.csv", uploads / f"{uuid.uuid4()}.csv"
    for path, age_days in ((old, 8), (recent, 6)):
        path.write_text("a,b\n1,2\n")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    new_id = upload(client, dash_app, b"a,b\n1,2\n", "new.csv")["datasets-upload-store"]["data"]
    assert not old.exists()
    assert recent.exists() and (uploads / f"{new_id}.csv").exists()
