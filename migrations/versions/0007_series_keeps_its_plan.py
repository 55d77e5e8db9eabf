"""``insightwave_series`` keeps one plan per connection instead of planning every call.

As a SQL function it was inlined into the caller's query, which psycopg prepares; for those
parameters PostgreSQL chose a custom plan on every call, and planning the inlined query (a
dozen nodes: the grain, the rollups and the two raw edges) cost about twice running it:
0.95 ms a call against 0.33 ms with the plan kept, for a day's hourly chart of
``python -m bench load``'s dataset (BENCHMARKS.md, "Load"). As PL/pgSQL with
``plan_cache_mode = force_generic_plan`` set on the function alone, its one query is planned
once per connection. A generic plan suits every call: the rollup rows are read by the
primary key's range and each raw edge spans less than one grain bucket (a minute or an
hour) of the (dataset_id, ts) index. Other statements keep PostgreSQL's choice: a custom
plan can be twice as fast for a month of raw events.

The body is 0006's query; its answer is unchanged (``tests/test_series.py``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import importlib.util
from pathlib import Path

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

SQL_HEADER = "LANGUAGE sql STABLE PARALLEL SAFE AS $$"
PLPGSQL_HEADER = """LANGUAGE plpgsql STABLE PARALLEL SAFE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY"""
SQL_END = "FROM parts GROUP BY bucket\n$$"
PLPGSQL_END = "FROM parts GROUP BY bucket;\nEND\n$$"


def _series_0006() -> str:
    """0006's CREATE OR REPLACE FUNCTION statement (revision files are not a package)."""
    path = Path(__file__).with_name("0006_series_reads_only_its_range.py")
    spec = importlib.util.spec_from_file_location("series_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    series: str = module.series()
    assert SQL_HEADER in series and SQL_END in series, "0006's function is not the expected one"
    return series


def upgrade() -> None:
    series = _series_0006().replace(SQL_HEADER, PLPGSQL_HEADER).replace(SQL_END, PLPGSQL_END)
    op.execute(series)


def downgrade() -> None:
    op.execute(_series_0006())
