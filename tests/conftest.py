"""Fixtures: a real PostgreSQL, the app, a test client, a CLI runner and a sign-in helper.

The database is the embedded PostgreSQL in a temporary directory, or the server named by
``TEST_DATABASE_URL``; either way each test session migrates a database of its own.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app, migrate
from app.config import Config
from app.database import libpq_url
from app.extensions import db
from app.models import Role
from app.users import create_user

PASSWORD = "correct horse battery"
# Real CSV files (Plotly's datasets, MIT; csv-spectrum, BSD-2-Clause), copied from
# ../shared/datasets so that a clone anywhere has them; licences beside them.
DATASETS = Path(__file__).resolve().parent / "data"
PLOTLY = DATASETS / "plotly"
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (embedded unless TEST_DATABASE_URL)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+psycopg").render_as_string(False)
        return
    from app.embedded_db import start_embedded

    # Not under pytest's tmp_path: pytest makes its root 0700 at each start, and PostgreSQL
    # (run as its own system user when we are root) must be able to enter every parent.
    directory = Path(tempfile.mkdtemp(prefix="iw-test-pg-"))
    embedded = start_embedded(directory)
    yield embedded.url
    embedded.release()
    shutil.rmtree(directory, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def fresh_database(server_url: str) -> Iterator[Any]:
    """Factory of empty databases, dropped at the end of the session."""
    names: list[str] = []

    def make() -> str:
        name = f"iw_test_{secrets.token_hex(6)}"
        names.append(name)
        return create_database(server_url, name)

    yield make
    for name in names:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def database_url(fresh_database: Any) -> str:
    url: str = fresh_database()
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def make_app(database_url: str, data_dir: Path) -> Iterator[Any]:
    """Factory of apps on the test database; extra environment variables may be given."""
    apps: list[Flask] = []

    def make(**env: str) -> Flask:
        # Rate limits are off unless a test turns them on: the suite calls the API from one
        # address far faster than any client should (tests/test_limits.py tests them).
        environ = {
            "INSIGHTWAVE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "INSIGHTWAVE_RATE_LIMITING": "false",
            **env,
        }
        app = create_app(Config.from_env(environ, testing=True))
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def app(make_app: Any) -> Flask:
    return make_app()  # type: ignore[no-any-return]


def empty_tables(url: str) -> None:
    """Empty every table of the database at ``url`` but Alembic's, restarting identities."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        tables = connection.execute(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchone()[0]
        connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> None:
    """Start each test that uses the database with every table empty."""
    if "database_url" in request.fixturenames:
        empty_tables(request.getfixturevalue("database_url"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dash_app(app: Flask, client: FlaskClient) -> Any:
    client.get("/login")  # Dash registers its page router on the first request
    return app.extensions["dash"]


@pytest.fixture
def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "INSIGHTWAVE_DATA_DIR": str(data_dir)}


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner(env=cli_env)


def wait_for(condition: Any, timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it is truthy and return its value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class AuthActions:
    """Create users and sign in through the real /login form."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self._app = app
        self._client = client

    def create(self, email: str, role: Role | str, password: str = PASSWORD) -> None:
        with self._app.app_context():
            create_user(email, role, password)
            db.session.remove()

    def api_token(self, email: str, role: Role | str) -> str:
        """Create a user with ``role`` and an API token of theirs; return the token."""
        from app.tokens import create_token
        from app.users import get_user

        self.create(email, role)
        with self._app.app_context():
            token = create_token(get_user(email), "tests")
            db.session.remove()
        return token

    def csrf_token(self, path: str = "/login") -> str:
        page = self._client.get(path).get_data(as_text=True)
        match = CSRF_INPUT.search(page)
        assert match, f"no CSRF field on {path}"
        return match.group(1)

    def login(self, email: str, password: str = PASSWORD, next_url: str = "") -> Any:
        return self._client.post(
            "/login",
            data={
                "email": email,
                "password": password,
                "csrf_token": self.csrf_token(),
                "next": next_url,
            },
        )

    def login_as(self, role: Role | str) -> str:
        """Create a user with ``role``, sign in as them and return their email."""
        email = f"{Role(role).value}@example.com"
        self.create(email, role)
        response = self.login(email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return email

    def logout(self) -> Any:
        return self._client.post("/logout", data={"csrf_token": self.csrf_token("/logout")})


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> AuthActions:
    return AuthActions(app, client)


BROWSER_WAIT = 20  # seconds a browser test waits for the page


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    """Serve the session app over HTTP in a background thread (for browser tests)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Debian Chromium with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    service = Service(executable_path="/usr/bin/chromedriver")
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_script_timeout(BROWSER_WAIT)
    yield chrome
    chrome.quit()
