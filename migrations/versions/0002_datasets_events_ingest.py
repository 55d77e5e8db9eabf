"""Datasets and their access, events, rollups, ingest runs and jobs, API tokens.

Every unique key on per-dataset data starts with dataset_id, so the tables can be
distributed by it (Citus) without changing a key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE groups (
            id bigint GENERATED ALWAYS AS IDENTITY,
            name varchar(100) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_groups PRIMARY KEY (id),
            CONSTRAINT uq_groups_name UNIQUE (name)
        );
        CREATE TABLE group_members (
            group_id bigint NOT NULL,
            user_id bigint NOT NULL,
            CONSTRAINT pk_group_members PRIMARY KEY (group_id, user_id),
            CONSTRAINT fk_group_members_group_id_groups FOREIGN KEY (group_id)
                REFERENCES groups (id) ON DELETE CASCADE,
            CONSTRAINT fk_group_members_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        );
        CREATE TABLE datasets (
            id bigint GENERATED ALWAYS AS IDENTITY,
            name varchar(63) NOT NULL,
            label text NOT NULL,
            columns jsonb NOT NULL,
            time_column varchar(63),
            time_of_day_column varchar(63),
            key_columns text[] NOT NULL DEFAULT '{}',
            options jsonb NOT NULL DEFAULT '{}',
            owner_id bigint,
            visibility varchar(16) NOT NULL DEFAULT 'all',
            retention_days integer,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_datasets PRIMARY KEY (id),
            CONSTRAINT uq_datasets_name UNIQUE (name),
            CONSTRAINT ck_datasets_name_identifier CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
            CONSTRAINT ck_datasets_visibility_known CHECK (visibility IN ('all', 'restricted')),
            CONSTRAINT ck_datasets_retention_positive CHECK (retention_days > 0),
            CONSTRAINT fk_datasets_owner_id_users FOREIGN KEY (owner_id)
                REFERENCES users (id) ON DELETE SET NULL
        );
        CREATE TABLE dataset_grants (
            dataset_id bigint NOT NULL,
            id bigint GENERATED ALWAYS AS IDENTITY,
            user_id bigint,
            group_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_dataset_grants PRIMARY KEY (dataset_id, id),
            CONSTRAINT uq_dataset_grants_dataset_id_user_id UNIQUE (dataset_id, user_id),
            CONSTRAINT uq_dataset_grants_dataset_id_group_id UNIQUE (dataset_id, group_id),
            CONSTRAINT ck_dataset_grants_one_grantee CHECK (num_nonnulls(user_id, group_id) = 1),
            CONSTRAINT fk_dataset_grants_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE,
            CONSTRAINT fk_dataset_grants_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT fk_dataset_grants_group_id_groups FOREIGN KEY (group_id)
                REFERENCES groups (id) ON DELETE CASCADE
        );
        CREATE TABLE events (
            dataset_id bigint NOT NULL,
            id bigint GENERATED ALWAYS AS IDENTITY,
            ts timestamptz NOT NULL,
            dedupe_key bytea NOT NULL,
            payload jsonb NOT NULL,
            run_id bigint,
            ingested_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_events PRIMARY KEY (dataset_id, id),
            CONSTRAINT uq_events_dataset_id_dedupe_key UNIQUE (dataset_id, dedupe_key),
            CONSTRAINT fk_events_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_events_dataset_id_ts ON events (dataset_id, ts);
        CREATE TABLE rollups (
            dataset_id bigint NOT NULL,
            grain varchar(8) NOT NULL,
            bucket timestamptz NOT NULL,
            field varchar(63) NOT NULL,
            n bigint NOT NULL,
            total double precision,
            minimum double precision,
            maximum double precision,
            CONSTRAINT pk_rollups PRIMARY KEY (dataset_id, grain, bucket, field),
            CONSTRAINT ck_rollups_grain_known CHECK (grain IN ('minute', 'hour')),
            CONSTRAINT fk_rollups_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE
        );
        CREATE TABLE ingest_jobs (
            id bigint GENERATED ALWAYS AS IDENTITY,
            name varchar(100) NOT NULL,
            dataset_id bigint NOT NULL,
            source_kind varchar(16) NOT NULL,
            source jsonb NOT NULL,
            options jsonb NOT NULL DEFAULT '{}',
            trigger_kind varchar(16) NOT NULL,
            trigger_spec varchar(100) NOT NULL,
            paused boolean NOT NULL DEFAULT false,
            owner_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_ingest_jobs PRIMARY KEY (id),
            CONSTRAINT uq_ingest_jobs_dataset_id_name UNIQUE (dataset_id, name),
            CONSTRAINT ck_ingest_jobs_source_kind_known
                CHECK (source_kind IN ('file', 'folder', 'url', 'demo')),
            CONSTRAINT ck_ingest_jobs_trigger_kind_known
                CHECK (trigger_kind IN ('interval', 'cron')),
            CONSTRAINT fk_ingest_jobs_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE,
            CONSTRAINT fk_ingest_jobs_owner_id_users FOREIGN KEY (owner_id)
                REFERENCES users (id) ON DELETE SET NULL
        );
        CREATE TABLE ingest_runs (
            id bigint GENERATED ALWAYS AS IDENTITY,
            dataset_name varchar(63) NOT NULL,
            dataset_id bigint,
            job_id bigint,
            source_kind varchar(16) NOT NULL,
            source jsonb NOT NULL,
            options jsonb NOT NULL DEFAULT '{}',
            status varchar(16) NOT NULL DEFAULT 'queued',
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL DEFAULT 5,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            rows_read bigint NOT NULL DEFAULT 0,
            rows_loaded bigint NOT NULL DEFAULT 0,
            rows_rejected bigint NOT NULL DEFAULT 0,
            rows_duplicate bigint NOT NULL DEFAULT 0,
            error text,
            created_by bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            CONSTRAINT pk_ingest_runs PRIMARY KEY (id),
            CONSTRAINT ck_ingest_runs_status_known
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
            CONSTRAINT fk_ingest_runs_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE,
            CONSTRAINT fk_ingest_runs_job_id_ingest_jobs FOREIGN KEY (job_id)
                REFERENCES ingest_jobs (id) ON DELETE SET NULL,
            CONSTRAINT fk_ingest_runs_created_by_users FOREIGN KEY (created_by)
                REFERENCES users (id) ON DELETE SET NULL
        );
        CREATE INDEX ix_ingest_runs_status_next_attempt_at
            ON ingest_runs (status, next_attempt_at)
            WHERE status IN ('queued', 'running', 'failed');
        CREATE INDEX ix_ingest_runs_dataset_id ON ingest_runs (dataset_id);
        CREATE TABLE rejected_rows (
            run_id bigint NOT NULL,
            line bigint NOT NULL,
            raw text NOT NULL,
            reason text NOT NULL,
            CONSTRAINT pk_rejected_rows PRIMARY KEY (run_id, line),
            CONSTRAINT fk_rejected_rows_run_id_ingest_runs FOREIGN KEY (run_id)
                REFERENCES ingest_runs (id) ON DELETE CASCADE
        );
        CREATE TABLE ingested_files (
            job_id bigint NOT NULL,
            sha256 char(64) NOT NULL,
            file_name text NOT NULL,
            run_id bigint,
            seen_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_ingested_files PRIMARY KEY (job_id, sha256),
            CONSTRAINT fk_ingested_files_job_id_ingest_jobs FOREIGN KEY (job_id)
                REFERENCES ingest_jobs (id) ON DELETE CASCADE
        );
        CREATE TABLE idempotency_keys (
            dataset_id bigint NOT NULL,
            key varchar(200) NOT NULL,
            user_id bigint,
            response jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_idempotency_keys PRIMARY KEY (dataset_id, key),
            CONSTRAINT fk_idempotency_keys_dataset_id_datasets FOREIGN KEY (dataset_id)
                REFERENCES datasets (id) ON DELETE CASCADE
        );
        CREATE TABLE api_tokens (
            id bigint GENERATED ALWAYS AS IDENTITY,
            user_id bigint NOT NULL,
            name varchar(100) NOT NULL,
            token_hash char(64) NOT NULL,
            prefix varchar(16) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            last_used_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT pk_api_tokens PRIMARY KEY (id),
            CONSTRAINT uq_api_tokens_token_hash UNIQUE (token_hash),
            CONSTRAINT fk_api_tokens_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id);
        -- APScheduler 3's SQLAlchemyJobStore table, made here so nothing calls create_all.
        CREATE TABLE apscheduler_jobs (
            id varchar(191) NOT NULL,
            next_run_time double precision,
            job_state bytea NOT NULL,
            CONSTRAINT pk_apscheduler_jobs PRIMARY KEY (id)
        );
        CREATE INDEX ix_apscheduler_jobs_next_run_time ON apscheduler_jobs (next_run_time);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE apscheduler_jobs, api_tokens, idempotency_keys, ingested_files,
            rejected_rows, ingest_runs, ingest_jobs, rollups, events, dataset_grants,
            datasets, group_members, groups;
        """
    )
