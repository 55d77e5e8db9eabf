"""Bucketed aggregates from rollups: ``insightwave_series`` and its plain twin over events.

``insightwave_series(dataset, field, bucket, from, to)`` answers count, sum, min and max per
bucket of a time range. The whole minutes (or hours, when the bucket is a whole number of
hours) inside the range come from ``rollups``; the partial minutes at its two ends come
from ``events``, so the answer is exactly what a GROUP BY over the events would give, at the
cost of reading a few thousand rollup rows instead of millions of events. Field ``''``
counts events; any other field aggregates its numeric values. Buckets are aligned to
2000-01-01 UTC (``date_bin``) and must be a whole number of minutes.

``insightwave_series_raw`` is the same answer from ``events`` alone: the reference the
tests and ``python -m bench query`` compare against.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

RESULT = """RETURNS TABLE (
    bucket timestamptz, n bigint, total double precision,
    minimum double precision, maximum double precision)"""

# The numeric value of a field in an event's payload (null when absent or not a number).
VALUE = """CASE WHEN p_field = '' THEN 0::double precision
        WHEN jsonb_typeof(e.payload -> p_field) = 'number'
        THEN (e.payload ->> p_field)::double precision END"""

RAW = f"""
CREATE FUNCTION insightwave_series_raw(
    p_dataset bigint, p_field text, p_bucket interval, p_from timestamptz, p_to timestamptz)
{RESULT}
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT date_bin(p_bucket, e.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           count(v.value), sum(v.value) FILTER (WHERE p_field <> ''),
           min(v.value) FILTER (WHERE p_field <> ''), max(v.value) FILTER (WHERE p_field <> '')
    FROM events AS e CROSS JOIN LATERAL (SELECT {VALUE} AS value) AS v
    WHERE e.dataset_id = p_dataset AND e.ts >= p_from AND e.ts < p_to
    GROUP BY 1
$$"""  # noqa: S608 (constant SQL)

SERIES = f"""
CREATE FUNCTION insightwave_series(
    p_dataset bigint, p_field text, p_bucket interval, p_from timestamptz, p_to timestamptz)
{RESULT}
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH grain AS (
        SELECT g.name, g.width,
               -- the whole grain buckets inside [p_from, p_to)
               CASE WHEN date_trunc(g.name, p_from, 'UTC') = p_from THEN p_from
                    ELSE date_trunc(g.name, p_from, 'UTC') + g.width END AS whole_from,
               date_trunc(g.name, p_to, 'UTC') AS whole_to
        FROM (SELECT CASE WHEN extract(epoch FROM p_bucket)::bigint % 3600 = 0
                          THEN 'hour' ELSE 'minute' END AS name) AS chosen
        CROSS JOIN LATERAL (SELECT chosen.name,
                                   CASE chosen.name WHEN 'hour' THEN INTERVAL '1 hour'
                                                    ELSE INTERVAL '1 minute' END) AS g (name, width)
    ), span AS (
        -- a range inside one grain bucket has no whole bucket: it is all edge
        SELECT name, least(whole_from, p_to) AS whole_from,
               greatest(least(whole_to, p_to), least(whole_from, p_to)) AS whole_to
        FROM grain
    ), parts AS (
        SELECT date_bin(p_bucket, r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
               r.n, r.total, r.minimum, r.maximum
        FROM rollups AS r, span
        WHERE r.dataset_id = p_dataset AND r.grain = span.name AND r.field = p_field
          AND r.bucket >= span.whole_from AND r.bucket < span.whole_to
        UNION ALL
        SELECT edge.* FROM span
        CROSS JOIN LATERAL insightwave_series_raw(p_dataset, p_field, p_bucket,
                                                  p_from, span.whole_from) AS edge
        UNION ALL
        SELECT edge.* FROM span
        CROSS JOIN LATERAL insightwave_series_raw(p_dataset, p_field, p_bucket,
                                                  span.whole_to, p_to) AS edge
    )
    SELECT bucket, sum(n)::bigint, sum(total), min(minimum), max(maximum)
    FROM parts GROUP BY bucket
$$"""  # noqa: S608 (constant SQL)


def upgrade() -> None:
    op.execute(RAW)
    op.execute(SERIES)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION insightwave_series(bigint, text, interval, timestamptz, timestamptz)"
    )
    op.execute(
        "DROP FUNCTION insightwave_series_raw(bigint, text, interval, timestamptz, timestamptz)"
    )
