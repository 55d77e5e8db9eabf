"""``python -m bench ingest`` end to end, small: the figures are all there and the counts exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> dict:
    """Run ``python -m bench ARGS --json``; return its one JSON object, checking it is one."""
    # The benchmark uses TEST_DATABASE_URL when set, else starts its own embedded server;
    # a developer's DATABASE_URL must not send it elsewhere.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    return json.loads(lines[0])


@pytest.mark.slow
def test_ingest_benchmark_reports_every_figure_with_exact_counts():
    result = run_bench("ingest", "--rows", "2000")

    methods = {"ours", "baseline_copy", "baseline_to_sql"}
    assert set(result["rows_per_s"]) == methods
    assert set(result["seconds"]) == methods
    assert all(result["rows_per_s"][method] > 0 for method in methods)
    assert result["ratio_vs_copy"] > 0
    assert result["ratio_vs_to_sql"] > 0
    assert (result["rows"], result["to_sql_rows"], result["rows_loaded"]) == (2000, 2000, 2000)
    assert result["exact_counts"] is True
    append = result["append"]
    assert (append["rows"], append["exact_counts"]) == (2000, True)
    assert append["rows_per_s"] > 0 and append["ratio_vs_copy"] > 0
    assert result["postgresql_version"]
    assert result["python_version"]
    assert result["cpu_count"] >= 1


@pytest.mark.slow
def test_floor_benchmark_stores_every_row_in_each_layout_and_gives_its_ceilings():
    result = run_bench("floor", "--rows", "2000")
    assert result["exact_counts"] is True
    assert set(result["layouts"]) == {"jsonb", "text", "typed"}
    copy_seconds = result["copy"]["seconds"]
    for figures in result["layouts"].values():
        assert figures["rows_per_s"] > 0
        assert figures["ceiling_vs_copy"] == pytest.approx(copy_seconds / figures["seconds"], 1e-2)
        assert figures["ceiling_vs_to_sql"] > 0
    assert result["to_sql"]["rows"] == 2000
    assert result["cpu_count"] >= 1 and result["python_version"]
