"""Alembic migrations from an empty database."""

from __future__ import annotations

import psycopg
from alembic import command

from app import migrate
from app.database import libpq_url


def catalogue(url, query):
    with psycopg.connect(libpq_url(url)) as connection:
        return sorted(row[0] for row in connection.execute(query))


def test_upgrade_from_empty_creates_the_schema(fresh_database):
    url = fresh_database()
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    tables = catalogue(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == sorted(
        [
            "alembic_version",
            "audit_log",
            "user_sessions",
            "users",
            "groups",
            "group_members",
            "datasets",
            "dataset_grants",
            "events",
            "rollups",
            "ingest_jobs",
            "ingest_runs",
            "rejected_rows",
            "ingested_files",
            "idempotency_keys",
            "api_tokens",
            "apscheduler_jobs",
            "dashboards",
        ]
    )
    functions = catalogue(
        url,
        "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
        "WHERE nspname = 'public' AND proname LIKE 'insightwave%'",
    )
    assert functions == ["insightwave_series", "insightwave_series_raw"]
    columns = catalogue(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
    )
    assert columns == sorted(
        [
            "id",
            "email",
            "password_hash",
            "role",
            "active",
            "failed_logins",
            "locked_until",
            "created_at",
            "last_login_at",
        ]
    )


def test_upgrade_twice_is_a_no_op(fresh_database):
    url = fresh_database()
    migrate.upgrade(url)
    before = catalogue(
        url, "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    )
    migrate.upgrade(url)
    after = catalogue(
        url, "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    )
    assert before == after


def test_every_constraint_has_a_conventional_name(fresh_database):
    url = fresh_database()
    migrate.upgrade(url)
    names = catalogue(
        url,
        "SELECT conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "WHERE t.relname <> 'alembic_version' AND c.connamespace = 'public'::regnamespace "
        "AND c.contype <> 'n'",  # PostgreSQL 18 lists NOT NULL as constraints too
    )
    assert names
    assert all(name.startswith(("pk_", "fk_", "uq_", "ck_")) for name in names), names


def test_database_refuses_a_role_outside_the_three(fresh_database):
    url = fresh_database()
    migrate.upgrade(url)
    with psycopg.connect(libpq_url(url)) as connection:
        try:
            connection.execute(
                "INSERT INTO users (email, role) VALUES ('x@example.com', 'superuser')"
            )
        except psycopg.errors.CheckViolation as exc:
            assert "ck_users_role_known" in str(exc)
        else:
            raise AssertionError("the role check did not fire")


def test_partitioning_events_keeps_their_rows_ids_and_keys(fresh_database):
    url = fresh_database()
    command.upgrade(migrate.alembic_config(url), "0002")
    with psycopg.connect(libpq_url(url)) as connection:
        dataset = connection.execute(
            "INSERT INTO datasets (name, label, columns) VALUES ('old', 'old', '[]') RETURNING id"
        ).fetchone()[0]
        connection.execute(
            "INSERT INTO events (dataset_id, ts, dedupe_key, payload) "
            "SELECT %s, now(), decode(md5(n::text), 'hex'), jsonb_build_object('n', n) "
            "FROM generate_series(1, 5) AS n",
            (dataset,),
        )
    migrate.upgrade(url)
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute("SELECT id, payload->>'n' FROM events ORDER BY id").fetchall()
        assert rows == [(n, str(n)) for n in range(1, 6)]
        partition = connection.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass"
        ).fetchall()
        assert partition == [(f"events_{dataset}",)]
        new_id = connection.execute(
            "INSERT INTO events (dataset_id, ts, dedupe_key, payload) "
            "VALUES (%s, now(), 'x', '{}') RETURNING id",
            (dataset,),
        ).fetchone()[0]
        assert new_id == 6
        try:
            with connection.transaction():
                connection.execute(
                    "INSERT INTO events (dataset_id, ts, dedupe_key, payload) "
                    "VALUES (%s, now(), 'x', '{}')",
                    (dataset,),
                )
        except psycopg.errors.UniqueViolation as exc:
            assert "uq_events_" in str(exc)
        else:
            raise AssertionError("the dedupe key is not unique in the partition")
    command.downgrade(migrate.alembic_config(url), "0002")
    with psycopg.connect(libpq_url(url)) as connection:
        assert connection.execute("SELECT count(*), max(id) FROM events").fetchone() == (6, 6)
