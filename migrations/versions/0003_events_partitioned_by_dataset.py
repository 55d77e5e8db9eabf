"""Partition events by dataset (LIST on dataset_id), one partition per dataset.

A dataset's first load can then fill a table of its own and build its indexes by sorting
once, instead of inserting row by row into indexes shared by every dataset. Every unique key
still starts with dataset_id (the partition key, and the distribution key under Citus).
PostgreSQL 15 and 16 have no identity columns on partitioned tables, so ids come from a
sequence owned by ``events.id`` that continues where the identity column stopped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

EVENTS = """
        CREATE TABLE events (
            dataset_id bigint NOT NULL,
            {id},
            ts timestamptz NOT NULL,
            dedupe_key bytea NOT NULL,
            payload jsonb NOT NULL,
            run_id bigint,
            ingested_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_events PRIMARY KEY (dataset_id, id),
            CONSTRAINT uq_events_dataset_id_dedupe_key UNIQUE (dataset_id, dedupe_key),
            CONSTRAINT fk_events_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE
        )"""

# Constant SQL (S608 sees string building, not user input).
PARTITIONED = EVENTS.format(id="id bigint NOT NULL DEFAULT nextval('events_id_seq')")  # noqa: S608
PARTITIONED += " PARTITION BY LIST (dataset_id)"
UNPARTITIONED = EVENTS.format(id="id bigint GENERATED ALWAYS AS IDENTITY")  # noqa: S608

# The same steps as etl.partitions, frozen here as they were when this revision was written.
ADD_PARTITION = """
CREATE OR REPLACE FUNCTION pg_temp.add_events_partition(dataset bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'events_' || dataset;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS, '
                   'CONSTRAINT %I CHECK (dataset_id = %s))', name, 'ck_' || name || '_dataset_id',
                   dataset);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (dataset_id, id)',
                   name, 'pk_' || name);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (dataset_id, dedupe_key)',
                   name, 'uq_' || name || '_dataset_id_dedupe_key');
    EXECUTE format('CREATE INDEX %I ON %I (dataset_id, ts)', 'ix_' || name || '_dataset_id_ts',
                   name);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES IN (%s)', name, dataset);
END $$;
"""


def set_aside(suffix: str) -> str:
    """Rename events, its constraints, index and sequence out of the way of a new events."""
    # Constant SQL (S608 sees string building, not user input).
    return f"""
        ALTER TABLE events RENAME TO events_{suffix};
        ALTER TABLE events_{suffix} RENAME CONSTRAINT pk_events TO pk_events_{suffix};
        ALTER TABLE events_{suffix}
            RENAME CONSTRAINT uq_events_dataset_id_dedupe_key
            TO uq_events_{suffix}_dataset_id_dedupe_key;
        ALTER TABLE events_{suffix}
            RENAME CONSTRAINT fk_events_dataset_id_datasets
            TO fk_events_{suffix}_dataset_id_datasets;
        ALTER INDEX ix_events_dataset_id_ts RENAME TO ix_events_{suffix}_dataset_id_ts;
        ALTER SEQUENCE events_id_seq RENAME TO events_{suffix}_id_seq;
        """  # noqa: S608


def upgrade() -> None:
    op.execute(set_aside("unpartitioned"))
    op.execute("CREATE SEQUENCE events_id_seq AS bigint")
    op.execute(PARTITIONED)
    op.execute(
        """
        ALTER SEQUENCE events_id_seq OWNED BY events.id;
        CREATE INDEX ix_events_dataset_id_ts ON events (dataset_id, ts);
        SELECT setval('events_id_seq', last_value, is_called) FROM events_unpartitioned_id_seq;
        """
    )
    op.execute(ADD_PARTITION)
    op.execute(
        """
        SELECT pg_temp.add_events_partition(dataset_id)
        FROM (SELECT DISTINCT dataset_id FROM events_unpartitioned) AS loaded;
        INSERT INTO events (dataset_id, id, ts, dedupe_key, payload, run_id, ingested_at)
        SELECT dataset_id, id, ts, dedupe_key, payload, run_id, ingested_at
        FROM events_unpartitioned ORDER BY dataset_id, id;
        DROP TABLE events_unpartitioned;
        DROP FUNCTION pg_temp.add_events_partition(bigint);
        """
    )


def downgrade() -> None:
    op.execute(set_aside("partitioned"))
    op.execute(UNPARTITIONED)
    op.execute(
        """
        CREATE INDEX ix_events_dataset_id_ts ON events (dataset_id, ts);
        INSERT INTO events (dataset_id, id, ts, dedupe_key, payload, run_id, ingested_at)
        OVERRIDING SYSTEM VALUE
        SELECT dataset_id, id, ts, dedupe_key, payload, run_id, ingested_at
        FROM events_partitioned ORDER BY dataset_id, id;
        SELECT setval(pg_get_serial_sequence('events', 'id'), last_value, is_called)
        FROM events_partitioned_id_seq;
        DROP TABLE events_partitioned;
        """
    )
