"""``python -m bench live`` end to end, small: every figure is there and every row arrived."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ("--clients", "20", "--seconds", "4", "--slices", "2", "--json")


@pytest.mark.slow
def test_live_benchmark_reports_every_figure_and_delivers_every_row():
    # TEST_DATABASE_URL when set, else its own embedded server; never a developer's DATABASE_URL.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "live", *COMMAND],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    result = json.loads(lines[0])

    assert result["benchmark"] == "live"
    assert (result["clients"], result["seconds"], result["slices"]) == (20, 4, 2)
    assert result["delivered_all"] is True
    assert result["commits"] == 40 and result["rows_committed"] == 400
    for figures in (result, result["stalled"]):
        # COMMIT returns to the writer about when the hub hears of it: p50 may be near 0
        assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] < 10_000
        assert figures["messages_per_s"] > 0
    assert result["polling"]["commits_seen"] == 2 * result["commits"]  # both phases
    assert result["polling"]["p50_ms"] > 0
    assert result["ratio_vs_polling"] > 0 and result["stalled_p99_ratio"] > 0
    assert result["stalled_client"]["messages_dropped"] > 0  # it was stalled, not just idle
    bars = {"p50_ms", "p99_ms", "stalled_p99_ratio"}
    assert set(result["bars_met"]) == set(result["bars"]) == bars
    assert result["hub_rss_kib_after"] >= result["hub_rss_kib_before"] > 0
