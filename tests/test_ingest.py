"""``insightwave ingest`` end to end on the real Plotly files in tests/data/plotly."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from app.cli import main
from app.database import libpq_url
from tests.conftest import PLOTLY

# file -> (dataset, rows in the file, rows identical to an earlier row)
FILES = {
    "tips.csv": ("tips", 244, 1),
    "finance-charts-apple.csv": ("apple", 506, 0),
    "supermarket_Sales.csv": ("supermarket", 1000, 0),
    "MTA_Daily_Ridership.csv": ("mta", 1706, 0),
    "2016-weather-data-seattle.csv": ("seattle_weather", 24381, 0),
    "gapminder-unclean.csv": ("gapminder", 1704, 0),
}


def ingest(runner, path, dataset, *extra):
    result = runner.invoke(main, ["ingest", str(path), "--dataset", dataset, "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def scalar(database_url, query, *params):
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query, params).fetchone()[0]


@pytest.mark.parametrize("file", sorted(FILES))
def test_each_plotly_file_loads_with_exact_counts(runner, database_url, file):
    dataset, rows, repeated = FILES[file]
    summary = ingest(runner, PLOTLY / file, dataset)
    assert summary["rows_read"] == rows
    assert summary["rows_duplicate"] == repeated
    assert summary["rows_loaded"] + summary["rows_rejected"] + repeated == rows
    stored = scalar(
        database_url,
        "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = %s",
        dataset,
    )
    assert stored == summary["rows_loaded"]


def test_loading_the_same_file_twice_adds_nothing(runner, database_url):
    first = ingest(runner, PLOTLY / "tips.csv", "tips")
    second = ingest(runner, PLOTLY / "tips.csv", "tips")
    assert (first["rows_loaded"], first["rows_duplicate"]) == (243, 1)
    assert (second["rows_loaded"], second["rows_duplicate"]) == (0, 244)
    assert scalar(database_url, "SELECT count(*) FROM events") == 243


def test_inferred_types_are_sensible(runner):
    columns = {c["name"]: c["type"] for c in ingest(runner, PLOTLY / "tips.csv", "tips")["columns"]}
    assert columns == {
        "total_bill": "float",
        "tip": "float",
        "sex": "text",
        "smoker": "boolean",
        "day": "text",
        "time": "text",
        "size": "integer",
    }
    sales = ingest(runner, PLOTLY / "supermarket_Sales.csv", "sales")["columns"]
    types = {c["name"]: c["type"] for c in sales}
    assert types["date"] == "timestamp"
    assert types["quantity"] == "integer"
    assert types["tax_5_pct"] == "float"
    labels = {c["name"]: c["label"] for c in sales}
    assert labels["tax_5_pct"] == "Tax 5%"


def test_date_and_time_columns_are_joined_into_the_event_time(runner, database_url):
    ingest(runner, PLOTLY / "supermarket_Sales.csv", "sales")
    # Invoice 750-67-8428: Date 1/5/2019, Time 13:08.
    ts = scalar(
        database_url,
        "SELECT ts AT TIME ZONE 'UTC' FROM events WHERE payload->>'invoice_id' = '750-67-8428'",
    )
    assert ts.isoformat() == "2019-01-05T13:08:00"


def test_unclean_rows_are_rejected_with_line_and_reason(runner, database_url):
    summary = ingest(runner, PLOTLY / "gapminder-unclean.csv", "gapminder")
    assert summary["rows_rejected"] > 0
    with psycopg.connect(libpq_url(database_url)) as conn:
        rejected = dict(
            conn.execute(
                "SELECT line, reason FROM rejected_rows WHERE run_id = %s", (summary["run_id"],)
            ).fetchall()
        )
    assert rejected[14] == "column 'lifeExp': is empty"
    assert rejected[65] == "column 'gdpPercap': is empty"
    assert len(rejected) == summary["rows_rejected"]


def test_rollups_count_every_loaded_row(runner, database_url):
    summary = ingest(runner, PLOTLY / "finance-charts-apple.csv", "apple")
    for grain in ("minute", "hour"):
        total = scalar(
            database_url,
            "SELECT sum(n) FROM rollups WHERE grain = %s AND field = ''",
            grain,
        )
        assert total == summary["rows_loaded"]
    close = scalar(
        database_url,
        "SELECT sum(total) FROM rollups WHERE grain = 'hour' AND field = 'aapl_close'",
    )
    expected = scalar(database_url, "SELECT sum((payload->>'aapl_close')::float8) FROM events")
    assert close == pytest.approx(expected)


def test_a_spreadsheet_export_with_decimal_commas_loads_its_numbers_as_numbers(
    runner, database_url, tmp_path
):
    # What a spreadsheet in a German or French locale saves: semicolons, a BOM, "1.234,56".
    # The odd row comes after the 1,000 rows that types are inferred from.
    first_day = date(2021, 1, 1)
    lines = ["Datum;Umsatz;Menge;Notiz"]
    for n in range(1, 1101):
        day = (first_day + timedelta(days=n - 1)).strftime("%d.%m.%Y")
        lines.append(f"{day};{n % 900 + 1}.234,5{n % 10};{n * 100};Tag {n}")
    lines.append("06.01.2024;1.5;3;a decimal point where the file writes commas")
    path = tmp_path / "umsatz.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    summary = ingest(runner, path, "umsatz")
    assert summary["format"] == "UTF-8 with BOM, semicolon-separated, decimal comma"
    types = {column["name"]: column["type"] for column in summary["columns"]}
    assert types == {"datum": "timestamp", "umsatz": "float", "menge": "integer", "notiz": "text"}
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1100, 1)
    first = scalar(database_url, "SELECT payload::text FROM events ORDER BY ts LIMIT 1")
    assert json.loads(first) == {
        "datum": "2021-01-01T00:00:00+00:00",
        "umsatz": 2234.51,
        "menge": 100,
        "notiz": "Tag 1",
    }
    total = scalar(database_url, "SELECT sum((payload->>'menge')::int) FROM events")
    assert total == sum(n * 100 for n in range(1, 1101))
    reason = scalar(database_url, "SELECT reason FROM rejected_rows WHERE line = 1102")
    assert reason == (
        """column 'Umsatz': "1.5" is not a number (the file writes decimals with a comma)"""
    )


def test_money_columns_load_as_numbers_and_sum(runner, database_url, tmp_path):
    # An accounts export: currency signs, thousands groups, accounting's (negatives).
    # The odd row comes after the 1,000 rows that types are inferred from.
    path = tmp_path / "ledger.csv"
    rows = ['2024-01-01,tea,"$1,234.50",€2', "2024-01-02,refund,($34.25),(€1)"]
    rows += [f"2024-01-03,coffee #{n},-$0.25,0 €" for n in range(1000)]
    rows += ["2024-01-04,typo,$12.3.4,€1"]
    path.write_text("Date,Item,Amount,Fee\n" + "\n".join(rows) + "\n")
    summary = ingest(runner, path, "ledger")
    types = {column["name"]: column["type"] for column in summary["columns"]}
    assert types == {"date": "timestamp", "item": "text", "amount": "float", "fee": "integer"}
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1002, 1)
    totals = "SELECT sum((payload->>'amount')::numeric), sum((payload->>'fee')::int) FROM events"
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute(totals).fetchone() == (Decimal("950.25"), 1)
    reason = scalar(database_url, "SELECT reason FROM rejected_rows WHERE line = 1004")
    assert reason == """column 'Amount': "$12.3.4" is not a number"""


def test_the_decimal_mark_can_be_chosen_on_the_command_line(runner, database_url, tmp_path):
    path = tmp_path / "weights.csv"
    path.write_text("when;weight\n2024-01-01;1.234\n2024-01-02;2.500\n")
    assert ingest(runner, path, "by_comma")["columns"][1]["type"] == "integer"  # a tie: comma
    summary = ingest(runner, path, "by_point", "--decimal-mark", "point")
    assert (summary["columns"][1]["type"], summary["format"]) == (
        "float",
        "UTF-8, semicolon-separated",
    )
    weights = scalar(
        database_url,
        "SELECT array_agg((payload->>'weight')::float8 ORDER BY e.id) FROM events e "
        "JOIN datasets d ON d.id = e.dataset_id WHERE d.name = %s",
        "by_point",
    )
    assert weights == [1.234, 2.5]
    result = runner.invoke(main, ["ingest", str(path), "--dataset", "x", "--decimal-mark", "dot"])
    assert result.exit_code == 2 and "'dot' is not one of 'point', 'comma'" in result.output


def test_a_word_for_no_value_in_a_required_column_is_named_in_the_reason(
    runner, database_url, tmp_path
):
    lines = ["when,Quantity"] + [f"2024-05-01T10:{m:02d}:00Z,{m}" for m in range(40)]
    lines[5] = "2024-05-01T10:04:00Z,NA"
    lines[9] = "2024-05-01T10:08:00Z,"
    path = tmp_path / "counts.csv"
    path.write_text("\n".join(lines) + "\n")
    summary = ingest(runner, path, "counts")
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (38, 2)
    with psycopg.connect(libpq_url(database_url)) as conn:
        reasons = conn.execute(
            "SELECT line, reason FROM rejected_rows WHERE run_id = %s ORDER BY line",
            (summary["run_id"],),
        ).fetchall()
    assert reasons == [
        (6, "column 'Quantity': 'NA' means no value"),
        (10, "column 'Quantity': is empty"),
    ]


def test_a_header_alone_creates_no_dataset_but_loads_nothing_into_one(
    runner, database_url, tmp_path
):
    empty = tmp_path / "empty.csv"
    empty.write_text("time,sensor,value\n")
    refused = runner.invoke(main, ["ingest", str(empty), "--dataset", "nothing", "--json"])
    assert refused.exit_code != 0
    assert "no rows to create dataset 'nothing' from" in refused.output
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0
    full = tmp_path / "full.csv"
    full.write_text("time,sensor,value\n2024-01-01T00:00:00Z,a,1\n")
    ingest(runner, full, "readings")
    summary = ingest(runner, empty, "readings")  # into an existing dataset: nothing to add
    assert (summary["rows_read"], summary["rows_loaded"]) == (0, 0)


def test_a_key_makes_rows_with_the_same_key_duplicates(runner, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("time,sensor,value\n2024-01-01T00:00:00Z,a,1\n2024-01-01T00:00:00Z,a,2\n")
    summary = ingest(runner, path, "readings", "--key", "time,sensor")
    assert (summary["rows_loaded"], summary["rows_duplicate"]) == (1, 1)


def test_a_broken_header_refuses_the_whole_file(runner, database_url, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = runner.invoke(main, ["ingest", str(path), "--dataset", "nothing"])
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert scalar(database_url, "SELECT count(*) FROM datasets") == 0
    assert scalar(database_url, "SELECT status FROM ingest_runs") == "refused"


def test_a_bad_dataset_name_is_refused(runner):
    result = runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", "Bad Name"])
    assert result.exit_code == 1
    assert "dataset name 'Bad Name' is not valid" in result.output


def test_a_file_with_columns_the_dataset_lacks_is_refused(runner, tmp_path):
    ingest(runner, PLOTLY / "tips.csv", "tips")
    result = runner.invoke(
        main, ["ingest", str(PLOTLY / "finance-charts-apple.csv"), "--dataset", "tips"]
    )
    assert result.exit_code == 1
    assert "does not have" in result.output


@pytest.mark.parametrize(
    ("extra", "appended"), [((), True), (("--key", "day"), False)], ids=["plain", "with a key"]
)
def test_a_load_that_lost_the_race_to_create_appends_unless_it_defined_the_dataset(
    runner, tmp_path, monkeypatch, extra, appended
):
    import etl.pipeline
    from etl.datasets import get_dataset

    path = tmp_path / "tips.csv"
    path.write_text("day,total\nSun,1\nMon,2\n")
    ingest(runner, path, "tips")
    looked = []

    def created_since_we_looked(conn, name):  # as if another load created it meanwhile
        looked.append(name)
        return None if len(looked) == 1 else get_dataset(conn, name)

    monkeypatch.setattr(etl.pipeline, "get_dataset", created_since_we_looked)
    path.write_text("day,total\nTue,3\n")
    result = runner.invoke(main, ["ingest", str(path), "--dataset", "tips", "--json", *extra])
    if appended:
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])
        assert (summary["created"], summary["rows_loaded"]) == (False, 1)
    else:  # its key is not the dataset's: refused rather than silently ignored
        assert result.exit_code == 1
        assert "a dataset called 'tips' already exists" in result.output
