"""``python -m bench query`` end to end, small: every preset asked both ways, answers equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_query_benchmark_asks_every_preset_both_ways_with_equal_answers():
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "query", "--rows", "20000", "--repeat", "2", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["exact"] is True
    assert result["rows"] == 20000
    presets = {(query["preset"], query["field"]) for query in result["queries"]}
    assert presets == {
        (preset, field)
        for preset in ("15m", "1h", "24h", "7d", "30d")
        for field in ("(count)", "value")
    }
    assert all(query["buckets"] > 0 for query in result["queries"])
    assert result["ours_p50_ms"] > 0 and result["raw_p50_ms"] > 0
    assert result["ratio_vs_raw"] > 0
    assert set(result["bars_met"]) == {"ratio_vs_raw", "ours_p95_ms"}
