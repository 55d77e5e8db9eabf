"""The insightwave command line against the test database."""

from __future__ import annotations

import psycopg
from sqlalchemy import select

from app import migrate
from app.cli import main
from app.database import libpq_url
from app.extensions import db
from app.models import AuditEntry, User
from app.passwords import verify_password
from tests.conftest import PLOTLY


def users_in(app):
    with app.app_context():
        rows = {user.email: user for user in db.session.scalars(select(User))}
        db.session.expunge_all()
        db.session.remove()
    return rows


def test_users_create_reads_the_password_from_stdin(app, runner):
    result = runner.invoke(
        main,
        ["users", "create", "Ana@Example.com", "--role", "analyst", "--password-stdin"],
        input="a long enough secret\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created ana@example.com (analyst)." in result.output
    assert "Password" not in result.output
    user = users_in(app)["ana@example.com"]
    assert user.role == "analyst"
    assert verify_password(user.password_hash, "a long enough secret")


def test_users_create_generates_and_prints_a_password_once(app, runner):
    result = runner.invoke(main, ["users", "create", "vic@example.com", "--role", "viewer"])
    assert result.exit_code == 0, result.output
    password = result.output.split("shown only this once: ")[1].strip()
    assert verify_password(users_in(app)["vic@example.com"].password_hash, password)


def test_users_create_refuses_bad_input_with_a_message(runner):
    cases = [
        (["users", "create", "not-an-email", "--role", "viewer"], "is not a valid email address"),
        (["users", "create", "a@example.com", "--role", "boss"], "unknown role 'boss'"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1
        assert message in result.output
    short = runner.invoke(
        main,
        ["users", "create", "a@example.com", "--role", "viewer", "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 1
    assert "password must be at least 10 characters" in short.output


def test_users_create_refuses_a_duplicate_email(runner):
    runner.invoke(main, ["users", "create", "a@example.com", "--role", "viewer"])
    again = runner.invoke(main, ["users", "create", "A@example.com", "--role", "admin"])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_users_list_shows_every_user(runner):
    runner.invoke(main, ["users", "create", "b@example.com", "--role", "viewer"])
    runner.invoke(main, ["users", "create", "a@example.com", "--role", "admin"])
    result = runner.invoke(main, ["users", "list"])
    lines = result.output.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "ACTIVE", "LAST", "SIGN-IN"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["a@example.com", "admin", "yes"],
        ["b@example.com", "viewer", "yes"],
    ]


def test_set_role_changes_the_role_and_is_audited(app, runner):
    runner.invoke(main, ["users", "create", "a@example.com", "--role", "viewer"])
    result = runner.invoke(main, ["users", "set-role", "a@example.com", "analyst"])
    assert result.exit_code == 0
    assert users_in(app)["a@example.com"].role == "analyst"
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (entry.action, entry.details) == (
            "user.set_role",
            {"old": "viewer", "new": "analyst"},
        )
        db.session.remove()


def test_last_active_admin_cannot_be_demoted_or_deactivated(app, runner):
    runner.invoke(main, ["users", "create", "root@example.com", "--role", "admin"])
    demote = runner.invoke(main, ["users", "set-role", "root@example.com", "viewer"])
    deactivate = runner.invoke(main, ["users", "deactivate", "root@example.com"])
    assert demote.exit_code == deactivate.exit_code == 1
    assert "last active admin" in demote.output
    assert "last active admin" in deactivate.output
    user = users_in(app)["root@example.com"]
    assert (user.role, user.active) == ("admin", True)


def test_an_admin_can_be_demoted_while_another_remains(app, runner):
    runner.invoke(main, ["users", "create", "one@example.com", "--role", "admin"])
    runner.invoke(main, ["users", "create", "two@example.com", "--role", "admin"])
    assert runner.invoke(main, ["users", "set-role", "one@example.com", "viewer"]).exit_code == 0
    assert runner.invoke(main, ["users", "deactivate", "two@example.com"]).exit_code == 1


def test_deactivate_ends_open_sessions_at_once(app, client, auth, runner):
    auth.login_as("viewer")
    assert client.get("/api/v1/me").status_code == 200
    result = runner.invoke(main, ["users", "deactivate", "viewer@example.com"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/me").status_code == 401
    assert runner.invoke(main, ["users", "activate", "viewer@example.com"]).exit_code == 0
    assert auth.login("viewer@example.com").status_code == 302


def test_unknown_user_is_reported(runner):
    result = runner.invoke(main, ["users", "set-role", "ghost@example.com", "viewer"])
    assert result.exit_code == 1
    assert "no user with email 'ghost@example.com'" in result.output


def test_db_upgrade_twice_is_a_no_op(runner):
    first = runner.invoke(main, ["db", "upgrade"])
    second = runner.invoke(main, ["db", "upgrade"])
    assert first.exit_code == second.exit_code == 0
    assert f"Database is at revision {migrate.head_revision()}." in second.output


def test_tokens_are_created_listed_and_revoked(client, runner):
    runner.invoke(main, ["users", "create", "bot@example.com", "--role", "analyst"])
    created = runner.invoke(main, ["tokens", "create", "bot@example.com", "--name", "loader"])
    token = created.output.strip()
    assert token.startswith("iw_")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).get_json()["role"] == "analyst"
    listing = runner.invoke(main, ["tokens", "list", "bot@example.com"]).output
    assert "loader" in listing and token not in listing
    token_id = listing.splitlines()[1].split()[0]
    assert runner.invoke(main, ["tokens", "revoke", token_id]).exit_code == 0
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert runner.invoke(main, ["tokens", "revoke", token_id]).exit_code == 1


def test_dataset_retention_is_set_from_the_cli(runner, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("time,v\n2024-01-01T00:00:00Z,1\n")
    runner.invoke(main, ["ingest", str(path), "--dataset", "kept"])
    assert runner.invoke(main, ["datasets", "set-retention", "kept", "30"]).exit_code == 0
    missing = runner.invoke(main, ["datasets", "set-retention", "nope", "30"])
    assert missing.exit_code == 1
    assert "no dataset called 'nope'" in missing.output


def test_a_dataset_is_deleted_with_all_it_holds_and_nothing_else(runner, database_url):
    for name in ("tips", "kept"):
        loaded = runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", name])
        assert loaded.exit_code == 0, loaded.output
    asked = runner.invoke(main, ["datasets", "delete", "tips"], input="n\n")
    assert asked.exit_code == 1 and "Aborted" in asked.output
    deleted = runner.invoke(main, ["datasets", "delete", "tips", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert "Dataset tips is deleted, with its 243 events." in deleted.output
    with psycopg.connect(libpq_url(database_url)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM datasets")]
        kept = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        runs = conn.execute("SELECT dataset_name FROM ingest_runs").fetchall()
        audit = conn.execute(
            "SELECT target, details FROM audit_log WHERE action = 'dataset.delete'"
        ).fetchall()
    assert names == ["kept"] and kept == 243 and runs == [("kept",)]
    assert audit == [("tips", {"events": 243})]
    gone = runner.invoke(main, ["datasets", "delete", "tips", "--yes"])
    assert gone.exit_code == 1 and "there is no dataset called 'tips'" in gone.output
    again = runner.invoke(main, ["ingest", str(PLOTLY / "tips.csv"), "--dataset", "tips"])
    assert again.exit_code == 0 and "loaded 243" in again.output  # the name is free again
