"""Rollups of a load computed from its prepared columns, as the loading SQL computes them.

Per minute: the event count (field ''), and per numeric field the count of values, their
sum, minimum and maximum; per hour the same summed from the minutes. A field without values
in a bucket still has its row (n 0, the rest null). Sums may differ from the server's in the
last bits: floating-point addition depends on order, and the server's order is its hash
table's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

ROLLUP_COLUMNS = ("grain", "bucket", "field", "n", "total", "minimum", "maximum")


def value_column(field: str) -> str:
    """Name the frame column holding a numeric field's values as floats."""
    return f"value:{field}"


def minute_partials(frame: pl.DataFrame, fields: Sequence[str], now: datetime) -> pl.DataFrame:
    """Aggregate loaded rows (ts, value:FIELD...) per minute; rows without ts count at ``now``."""
    values = [value_column(field) for field in fields]
    return (
        frame.select(pl.col("ts").fill_null(now).dt.truncate("1m").alias("bucket"), *values)
        .group_by("bucket")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            *(
                expr
                for name in values
                for expr in (
                    pl.col(name).count().cast(pl.Int64).alias(f"{name}:n"),
                    _sum_or_null(pl.col(name)).alias(f"{name}:total"),
                    pl.col(name).min().alias(f"{name}:minimum"),
                    pl.col(name).max().alias(f"{name}:maximum"),
                )
            ),
        )
    )


def rollup_rows(partials: Sequence[pl.DataFrame], fields: Sequence[str]) -> pl.DataFrame:
    """Combine per-minute partial aggregates into rollup rows (``ROLLUP_COLUMNS``)."""
    if not partials:
        return pl.DataFrame(schema=dict.fromkeys(ROLLUP_COLUMNS))
    minute = _combine(pl.concat(partials), pl.col("bucket"), fields)
    hour = _combine(minute, pl.col("bucket").dt.truncate("1h"), fields)
    grains = (("minute", minute), ("hour", hour))
    return pl.concat([_unpivot(grain, buckets, fields) for grain, buckets in grains])


def _combine(buckets: pl.DataFrame, bucket: pl.Expr, fields: Sequence[str]) -> pl.DataFrame:
    values = [value_column(field) for field in fields]
    return (
        buckets.with_columns(bucket.alias("bucket"))
        .group_by("bucket")
        .agg(
            pl.col("n").sum(),
            *(
                expr
                for name in values
                for expr in (
                    pl.col(f"{name}:n").sum(),
                    _sum_or_null(pl.col(f"{name}:total")),
                    pl.col(f"{name}:minimum").min(),
                    pl.col(f"{name}:maximum").max(),
                )
            ),
        )
    )


def _sum_or_null(column: pl.Expr) -> pl.Expr:
    # SQL's sum() of no values is null, polars' is 0.
    return pl.when(column.count() > 0).then(column.sum())


def _unpivot(grain: str, buckets: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    nothing = pl.lit(None, dtype=pl.Float64)
    parts = [
        buckets.select(
            pl.lit(grain).alias("grain"),
            "bucket",
            pl.lit("").alias("field"),
            "n",
            nothing.alias("total"),
            nothing.alias("minimum"),
            nothing.alias("maximum"),
        )
    ]
    for field in fields:
        name = value_column(field)
        parts.append(
            buckets.select(
                pl.lit(grain).alias("grain"),
                "bucket",
                pl.lit(field).alias("field"),
                pl.col(f"{name}:n").alias("n"),
                pl.col(f"{name}:total").alias("total"),
                pl.col(f"{name}:minimum").alias("minimum"),
                pl.col(f"{name}:maximum").alias("maximum"),
            )
        )
    return pl.concat(parts)
