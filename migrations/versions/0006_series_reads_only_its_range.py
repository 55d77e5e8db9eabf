"""``insightwave_series`` reads only the rollup rows of its range.

0004's function joined ``rollups`` to its one-row ``span`` CTE, so the grain and the bucket
range reached the rollups only through the join: when the planner ran the join as a nested
loop over ``span`` they were index conditions, but with other statistics it scanned the
rollups first, searching the primary key (dataset_id, grain, bucket, field) on the dataset
alone and reading every rollup row of the dataset, both grains, its whole history (1,466 rows
for a one-day dataset's 24 hourly buckets in ``python -m bench load``'s database; the more
history, the slower every chart). Read from ``span`` through scalar subqueries, the three
values are index conditions (InitPlan parameters) in any plan. The answer is the same;
``tests/test_series.py`` checks both.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import importlib.util
from pathlib import Path

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

JOINED = """        FROM rollups AS r, span
        WHERE r.dataset_id = p_dataset AND r.grain = span.name AND r.field = p_field
          AND r.bucket >= span.whole_from AND r.bucket < span.whole_to"""
BOUNDED = """        FROM rollups AS r
        WHERE r.dataset_id = p_dataset AND r.field = p_field
          AND r.grain = (SELECT name FROM span)
          AND r.bucket >= (SELECT whole_from FROM span)
          AND r.bucket < (SELECT whole_to FROM span)"""


def _series_0004() -> str:
    """0004's CREATE FUNCTION statement (revision files are not an importable package)."""
    path = Path(__file__).with_name("0004_series_function.py")
    spec = importlib.util.spec_from_file_location("series_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    series: str = module.SERIES
    assert JOINED in series, "0004's function is not the one this revision rewrites"
    return series.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def series() -> str:
    """This revision's CREATE OR REPLACE FUNCTION statement (0007 starts from it)."""
    return _series_0004().replace(JOINED, BOUNDED)


def upgrade() -> None:
    op.execute(series())


def downgrade() -> None:
    op.execute(_series_0004())
