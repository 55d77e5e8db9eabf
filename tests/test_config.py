"""Configuration from the environment: malformed values stop start-up, naming the variable."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError


def config(tmp_path, **env):
    return Config.from_env({"INSIGHTWAVE_DATA_DIR": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "not a url", "is not a database URL"),
        ("DATABASE_URL", "mysql://root@localhost/db", "must be a postgresql:// URL"),
        ("DATABASE_URL", "postgresql://localhost", "names no database"),
        ("INSIGHTWAVE_SECRET_KEY", "short", "at least 32 characters"),
        ("INSIGHTWAVE_LOGIN_MAX_FAILURES", "five", "whole number"),
        ("INSIGHTWAVE_LOCKOUT_MINUTES", "0", "greater than 0"),
        ("INSIGHTWAVE_HTTPS", "maybe", "true or false"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("INSIGHTWAVE_ADMIN_PASSWORD", "short", "at least 10 characters"),
        ("INSIGHTWAVE_HUB_PORT", "70000", "port number"),
        ("INSIGHTWAVE_HUB_PORT", "-1", "port number"),
        ("INSIGHTWAVE_HUB_URL", "http://example.com/live", "ws:// or wss://"),
        ("INSIGHTWAVE_HUB_ORIGINS", "https://ok.example, evil", "is not an origin"),
        ("INSIGHTWAVE_HUB_TICK_MS", "0", "greater than 0"),
        ("INSIGHTWAVE_HUB_MAX_CLIENTS", "many", "whole number"),
        ("INSIGHTWAVE_LIVE_TOKEN_SECONDS", "-5", "greater than 0"),
        ("INSIGHTWAVE_RATE_LIMIT", "lots", "is not a rate"),
        ("INSIGHTWAVE_RATE_LIMIT_IP", "10 per fortnight", "is not a rate"),
        ("INSIGHTWAVE_RATE_LIMITING", "sometimes", "true or false"),
        ("INSIGHTWAVE_VALIDATE_RESPONSES", "strictly", "true or false"),
    ],
)
def test_malformed_variable_is_named_in_the_error(tmp_path, variable, value, message):
    with pytest.raises(ConfigError) as error:
        config(tmp_path, **{variable: value})
    assert error.value.variable == variable
    assert str(error.value).startswith(f"{variable}: ")
    assert message in str(error.value)


def test_data_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ConfigError, match="INSIGHTWAVE_DATA_DIR"):
        Config.from_env({"INSIGHTWAVE_DATA_DIR": str(path)})


def test_database_url_gets_the_psycopg_driver(tmp_path):
    url = config(tmp_path, DATABASE_URL="postgresql://u:p@db.example:5433/iw").database_url
    assert url == "postgresql+psycopg://u:p@db.example:5433/iw"


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = config(tmp_path).secret_key
    second = config(tmp_path).secret_key
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_given_secret_key_wins_over_the_stored_one(tmp_path):
    key = "k" * 40
    assert config(tmp_path, INSIGHTWAVE_SECRET_KEY=key).secret_key == key


def test_defaults_when_variables_are_unset(tmp_path):
    loaded = config(tmp_path)
    assert loaded.database_url is None
    assert (loaded.login_max_failures, loaded.lockout_minutes) == (5, 15)
    assert loaded.https is False


def test_cli_reports_a_config_error_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner(
        env={"INSIGHTWAVE_DATA_DIR": str(tmp_path), "DATABASE_URL": "mysql://x@y/z"}
    ).invoke(main, ["users", "list"])
    assert result.exit_code == 1
    assert "configuration error: DATABASE_URL: must be a postgresql:// URL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [["users", "list"], ["db", "upgrade"], ["ingest", __file__, "--dataset", "x"], ["worker"]],
)
def test_cli_says_in_one_line_that_the_database_cannot_be_reached(tmp_path, command):
    from click.testing import CliRunner

    from app.cli import main

    nothing_listens = "postgresql://u:secret@127.0.0.1:1/db"
    result = CliRunner(
        env={"INSIGHTWAVE_DATA_DIR": str(tmp_path), "DATABASE_URL": nothing_listens}
    ).invoke(main, command)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: cannot reach the database: connection failed:"), last
    assert "Connection refused" in last and "secret" not in result.output


def test_hub_settings_are_read(tmp_path):
    settings = config(
        tmp_path,
        INSIGHTWAVE_HUB_PORT="0",
        INSIGHTWAVE_HUB_URL="wss://example.com/live",
        INSIGHTWAVE_HUB_ORIGINS="https://a.example, https://b.example:8443/",
        INSIGHTWAVE_HUB_TICK_MS="5",
    )
    assert (settings.hub_port, settings.hub_url) == (0, "wss://example.com/live")
    assert settings.hub_origins == ("https://a.example", "https://b.example:8443")
    assert settings.hub_tick_ms == 5
