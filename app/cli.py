"""The ``insightwave`` command line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import psycopg
from flask import Flask
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.config import Config, ConfigError
from app.extensions import db
from app.users import UserError


@contextmanager
def app_context() -> Iterator[Flask]:
    """Build the app, migrate its database and hand it over inside an app context."""
    from app import create_app, migrate
    from app.embedded_db import EmbeddedDatabaseError

    try:
        config = Config.from_env()
        server = create_app(config)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        migrate.upgrade(server.config["SQLALCHEMY_DATABASE_URI"])
        with server.app_context():
            try:
                yield server
            finally:
                with contextlib.suppress(SQLAlchemyError):  # the database may be gone by now
                    db.session.remove()
                db.engine.dispose()
    finally:
        embedded = server.extensions.get("embedded_postgres")
        if embedded is not None:
            embedded.release()


class _Commands(click.Group):
    """The command group; a database it cannot reach is one line of error, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (OperationalError, psycopg.OperationalError) as exc:
            cause = str(getattr(exc, "orig", None) or exc).strip()
            reason = cause.splitlines()[0] if cause else type(exc).__name__
            raise click.ClickException(f"cannot reach the database: {reason}") from exc


@click.group(cls=_Commands)
def main() -> None:
    """Insight-Wave: real-time analytics on PostgreSQL."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--demo", is_flag=True, help="Feed a synthetic demo stream so there is data to see.")
@click.option(
    "--certfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (chain): serve HTTPS without a proxy. Needs --keyfile.",
)
@click.option(
    "--keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key of --certfile.",
)
def serve(host: str, port: int, demo: bool, certfile: Path | None, keyfile: Path | None) -> None:
    """Run everything in one process: database (embedded if DATABASE_URL is unset) and web."""
    from app.hub import HubThread, build_hub
    from app.server import run
    from etl.worker import start_background

    if (certfile is None) != (keyfile is None):
        raise click.UsageError("--certfile and --keyfile go together")
    with app_context() as server:
        _seed_admin(server)
        db.session.remove()  # hold no connection, idle in a transaction, while serving
        url = server.config["SQLALCHEMY_DATABASE_URI"]
        if demo:
            _ensure_demo_job(url)
        hub = HubThread(build_hub(server))
        server.extensions["live_hub"] = hub.hub  # for /readyz and /metrics
        try:
            hub_port = server.config["HUB_PORT"] = hub.start()
            click.echo(f"Live hub listening on {server.config['INSIGHTWAVE'].hub_host}:{hub_port}")
        except OSError as exc:
            raise click.ClickException(f"{exc} (set INSIGHTWAVE_HUB_PORT to a free port)") from exc
        background = start_background(url)
        try:
            run(server, host, port, certfile=certfile, keyfile=keyfile)
        finally:
            background.stop()  # lets the runs in progress finish
            hub.stop()


@main.command()
def hub() -> None:
    """Run the live WebSocket hub on its own (INSIGHTWAVE_HUB_HOST and _PORT)."""
    from app.hub import build_hub, run_forever

    with app_context() as server:
        db.session.remove()
        try:
            run_forever(build_hub(server))
        except OSError as exc:
            raise click.ClickException(f"the live hub cannot listen: {exc}") from exc


@main.command()
def doctor() -> None:
    """Check the configuration, database, migrations, hub and data directory; change nothing."""
    from app.doctor import run_checks

    failed = 0
    for check in run_checks():
        click.echo(check.line())
        failed += not check.ok
    if failed:
        raise SystemExit(1)
    click.echo("Everything looks right.")


DEMO_DATASET = "demo_sensors"


def _ensure_demo_job(url: str) -> None:
    """Schedule the synthetic sensor stream (20 rows a second) unless it already is."""
    from etl.connection import connect
    from etl.jobs import create_job, list_jobs
    from etl.pipeline import IngestOptions

    with connect(url) as conn:
        if not any(job.name == "demo stream" for job in list_jobs(conn)):
            options = IngestOptions(dataset=DEMO_DATASET, time_column="time")
            create_job(
                conn,
                "demo stream",
                DEMO_DATASET,
                "demo",
                {"rows": 20},
                "interval",
                "1",
                options,
                None,
            )
    click.echo(f"Demo data: 20 synthetic sensor readings a second into dataset {DEMO_DATASET}.")


def _seed_admin(server: Flask) -> None:
    from app.users import seed_first_admin

    config: Config = server.config["INSIGHTWAVE"]
    seeded = seed_first_admin(config.admin_email, config.admin_password)
    if seeded is None:
        return
    click.echo(f"Created the first admin: {seeded.user.email}")
    if seeded.generated_password is not None:
        click.echo(f"Its password, shown only this once: {seeded.generated_password}")


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
def upgrade() -> None:
    """Migrate the database to the newest schema (a no-op when it is there)."""
    from app.migrate import current_revision

    with app_context() as server:
        revision = current_revision(server.config["SQLALCHEMY_DATABASE_URI"])
        click.echo(f"Database is at revision {revision}.")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.argument("email")
@click.option("--role", required=True, help="admin, analyst or viewer.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a user; without --password-stdin a password is generated and printed once."""
    from app.users import create_user

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with app_context(), _user_errors():
        created = create_user(email, role, password)
        click.echo(f"Created {created.user.email} ({created.user.role}).")
        if created.generated_password is not None:
            click.echo(f"Password, shown only this once: {created.generated_password}")


@users.command("list")
def users_list() -> None:
    """List every user."""
    from app.users import list_users

    with app_context():
        click.echo(f"{'EMAIL':40} {'ROLE':8} {'ACTIVE':6} LAST SIGN-IN")
        for user in list_users():
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-"
            click.echo(f"{user.email:40} {user.role:8} {'yes' if user.active else 'no':6} {last}")


@users.command("set-role")
@click.argument("email")
@click.argument("role")
def users_set_role(email: str, role: str) -> None:
    """Change a user's role."""
    from app.users import set_role

    with app_context(), _user_errors():
        user = set_role(email, role)
        click.echo(f"{user.email} is now {user.role}.")


@users.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate a user and end their sessions."""
    from app.users import set_active

    with app_context(), _user_errors():
        user = set_active(email, active=False)
        click.echo(f"{user.email} is deactivated; their sessions have ended.")


@users.command("activate")
@click.argument("email")
def users_activate(email: str) -> None:
    """Reactivate a user."""
    from app.users import set_active

    with app_context(), _user_errors():
        user = set_active(email, active=True)
        click.echo(f"{user.email} is active again.")


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option(
    "--dataset", "dataset_name", required=True, help="Dataset to load into (created if new)."
)
@click.option("--time-column", help="Column holding each row's time (new datasets).")
@click.option("--key", "key", help="Comma-separated columns that identify a row (new datasets).")
@click.option(
    "--decimal-mark",
    type=click.Choice(["point", "comma"]),
    help="How the file writes decimals: 1,234.5 (point) or 1.234,5 (comma). Default: detected.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
def ingest(
    file: str,
    dataset_name: str,
    time_column: str | None,
    key: str | None,
    decimal_mark: str | None,
    as_json: bool,
) -> None:
    """Load a CSV file into a dataset; loading the same rows twice adds nothing."""
    from app.ingest_cli import run_ingest

    with app_context():
        run_ingest(Path(file), dataset_name, time_column, key, as_json, decimal_mark)


@main.group()
def tokens() -> None:
    """API tokens for programs."""


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label to recognise it by.")
def tokens_create(email: str, name: str) -> None:
    """Create an API token for a user and print it once."""
    from app.tokens import create_token
    from app.users import get_user

    with app_context(), _user_errors():
        click.echo(create_token(get_user(email), name))


@tokens.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """List a user's API tokens (never the secrets)."""
    from app.tokens import list_tokens
    from app.users import get_user

    with app_context(), _user_errors():
        click.echo(f"{'ID':>5} {'NAME':20} {'PREFIX':12} {'STATE':8} LAST USED")
        for token in list_tokens(get_user(email)):
            state = "revoked" if token.revoked_at else "active"
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "-"
            click.echo(f"{token.id:>5} {token.name:20} {token.prefix:12} {state:8} {used}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token at once (as an admin acting from the command line)."""
    from app.tokens import revoke_token

    with app_context():
        if not revoke_token(token_id, actor=None):
            raise click.ClickException(f"no active token {token_id}")
        click.echo(f"Token {token_id} is revoked.")


@main.group()
def datasets() -> None:
    """Datasets."""


@datasets.command("set-retention")
@click.argument("name")
@click.argument("days", type=click.IntRange(min=0))
def datasets_set_retention(name: str, days: int) -> None:
    """Keep NAME's events for DAYS days (0: forever); the worker's leader deletes older ones."""
    from app.audit import record_on
    from app.database import connect
    from etl.retention import set_retention

    with app_context(), connect() as conn, conn.transaction():
        if not set_retention(conn, name, days or None):
            raise click.ClickException(f"there is no dataset called {name!r}")
        record_on(conn, "dataset.retention", None, name, days=days or None)
        click.echo(f"{name}: events kept {'forever' if not days else f'for {days} days'}.")


@datasets.command("delete")
@click.argument("name")
@click.confirmation_option(
    prompt="Delete the dataset, all its events, rollups, grants, jobs and runs?",
    help="Do not ask.",
)
def datasets_delete(name: str) -> None:
    """Delete dataset NAME with all its events, rollups, grants, jobs and runs."""
    from app.audit import record_on
    from app.components.messages import counted
    from app.database import connect
    from etl.datasets import delete_dataset

    with app_context(), connect() as conn, conn.transaction():
        held = delete_dataset(conn, name)
        if held is None:
            raise click.ClickException(f"there is no dataset called {name!r}")
        record_on(conn, "dataset.delete", None, name, events=held)
    click.echo(f"Dataset {name} is deleted, with its {counted(held, 'event')}.")


from app.worker_cli import register_worker_commands  # noqa: E402 (needs main defined)

register_worker_commands(main)
