"""Configuration, built once from environment variables and checked before anything starts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MIN_SECRET_KEY_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class OidcSettings:
    """Single sign-on with an OpenID Connect provider (see app/oidc.py)."""

    issuer: str
    client_id: str
    client_secret: str
    role_claim: str = "groups"
    roles: tuple[tuple[str, str], ...] = ()  # (claim value, role), e.g. ("bi-admins", "admin")
    default_role: str | None = None  # for users no claim value maps; None refuses them
    label: str = "single sign-on"


@dataclass(frozen=True)
class Config:
    """Everything the app reads from its environment."""

    data_dir: Path
    secret_key: str
    database_url: str | None = None
    read_database_url: str | None = None  # a replica for the query API's reads (optional)
    admin_email: str | None = None
    admin_password: str | None = None
    redis_url: str | None = None
    login_max_failures: int = 5
    lockout_minutes: int = 15
    session_days: int = 14  # absolute: a session ends this long after sign-in, used or not
    session_idle_minutes: int = 480  # idle: a session unused this long ends
    login_rate_limit_ip: str = "20 per 15 minutes"  # failed sign-ins from one address
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call /api/v1 (none by default)
    proxy_count: int = 0  # reverse proxies in front that set X-Forwarded-* (0: trust none)
    https: bool = False
    testing: bool = False
    hub_host: str = "127.0.0.1"
    hub_port: int = 8051  # 0: any free port
    hub_url: str | None = None  # what browsers connect to (default: this host, hub_port)
    hub_origins: tuple[str, ...] = ()  # browser origins allowed at the hub (default: the page's)
    hub_tick_ms: int = 20
    hub_heartbeat_seconds: int = 15
    hub_max_clients: int = 5000
    hub_max_subscriptions: int = 20
    live_token_seconds: int = 60
    rate_limit: str = "600 per minute"  # API calls per token (or signed-in user)
    rate_limit_ip: str = "1200 per minute"  # API calls per client address
    rate_limiting: bool = True
    validate_responses: bool = False  # check API answers against their models (always in tests)
    oidc: OidcSettings | None = None
    log_format: str = "auto"  # json, text, or auto: text on a terminal, JSON otherwise
    metrics_token: str | None = None  # a bearer token that may read /metrics from anywhere
    worker_metrics_port: int | None = None  # insightwave worker serves /metrics here (0: any)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Read the configuration from ``environ`` (default: the process environment).

        :raises ConfigError: naming the first malformed variable.
        """
        env = os.environ if environ is None else environ
        data_dir = _data_dir(env.get("INSIGHTWAVE_DATA_DIR"))
        values: dict[str, object] = {
            "data_dir": data_dir,
            "secret_key": _secret_key(env.get("INSIGHTWAVE_SECRET_KEY"), data_dir),
            "database_url": _database_url("DATABASE_URL", env.get("DATABASE_URL")),
            "read_database_url": _database_url("READ_DATABASE_URL", env.get("READ_DATABASE_URL")),
            "admin_email": _optional(env.get("INSIGHTWAVE_ADMIN_EMAIL")),
            "admin_password": _admin_password(env.get("INSIGHTWAVE_ADMIN_PASSWORD")),
            "redis_url": _redis_url(env.get("REDIS_URL")),
            "login_max_failures": _positive_int(
                "INSIGHTWAVE_LOGIN_MAX_FAILURES", env.get("INSIGHTWAVE_LOGIN_MAX_FAILURES"), 5
            ),
            "lockout_minutes": _positive_int(
                "INSIGHTWAVE_LOCKOUT_MINUTES", env.get("INSIGHTWAVE_LOCKOUT_MINUTES"), 15
            ),
            "session_days": _positive_int(
                "INSIGHTWAVE_SESSION_DAYS", env.get("INSIGHTWAVE_SESSION_DAYS"), 14
            ),
            "session_idle_minutes": _positive_int(
                "INSIGHTWAVE_SESSION_IDLE_MINUTES", env.get("INSIGHTWAVE_SESSION_IDLE_MINUTES"), 480
            ),
            "cors_origins": _origins(
                "INSIGHTWAVE_CORS_ORIGINS", env.get("INSIGHTWAVE_CORS_ORIGINS")
            ),
            "proxy_count": _count("INSIGHTWAVE_PROXY_COUNT", env.get("INSIGHTWAVE_PROXY_COUNT")),
            "https": _boolean("INSIGHTWAVE_HTTPS", env.get("INSIGHTWAVE_HTTPS")),
            "hub_host": _optional(env.get("INSIGHTWAVE_HUB_HOST")) or "127.0.0.1",
            "hub_port": _port("INSIGHTWAVE_HUB_PORT", env.get("INSIGHTWAVE_HUB_PORT"), 8051),
            "hub_url": _hub_url(env.get("INSIGHTWAVE_HUB_URL")),
            "hub_origins": _origins("INSIGHTWAVE_HUB_ORIGINS", env.get("INSIGHTWAVE_HUB_ORIGINS")),
        }
        values["rate_limit"] = _rate("INSIGHTWAVE_RATE_LIMIT", env, "600 per minute")
        values["rate_limit_ip"] = _rate("INSIGHTWAVE_RATE_LIMIT_IP", env, "1200 per minute")
        values["login_rate_limit_ip"] = _rate(
            "INSIGHTWAVE_LOGIN_RATE_LIMIT_IP", env, "20 per 15 minutes"
        )
        values["rate_limiting"] = _boolean(
            "INSIGHTWAVE_RATE_LIMITING", env.get("INSIGHTWAVE_RATE_LIMITING"), default=True
        )
        values["validate_responses"] = _boolean(
            "INSIGHTWAVE_VALIDATE_RESPONSES", env.get("INSIGHTWAVE_VALIDATE_RESPONSES")
        )
        values["oidc"] = _oidc(env)
        values["log_format"] = _log_format(env.get("INSIGHTWAVE_LOG_FORMAT"))
        values["metrics_token"] = _metrics_token(env.get("INSIGHTWAVE_METRICS_TOKEN"))
        values["worker_metrics_port"] = _optional_port(
            "INSIGHTWAVE_WORKER_METRICS_PORT", env.get("INSIGHTWAVE_WORKER_METRICS_PORT")
        )
        for field_name, variable, default in _HUB_NUMBERS:
            values[field_name] = _positive_int(variable, env.get(variable), default)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


_HUB_NUMBERS = (
    ("hub_tick_ms", "INSIGHTWAVE_HUB_TICK_MS", 20),
    ("hub_heartbeat_seconds", "INSIGHTWAVE_HUB_HEARTBEAT_SECONDS", 15),
    ("hub_max_clients", "INSIGHTWAVE_HUB_MAX_CLIENTS", 5000),
    ("hub_max_subscriptions", "INSIGHTWAVE_HUB_MAX_SUBSCRIPTIONS", 20),
    ("live_token_seconds", "INSIGHTWAVE_LIVE_TOKEN_SECONDS", 60),
)


def _optional(raw: str | None) -> str | None:
    return raw.strip() or None if raw is not None else None


def _data_dir(raw: str | None) -> Path:
    path = (
        Path(raw).expanduser()
        if raw and raw.strip()
        else Path(platformdirs.user_data_dir("insightwave"))
    )
    if path.exists() and not path.is_dir():
        raise ConfigError("INSIGHTWAVE_DATA_DIR", f"{path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("INSIGHTWAVE_DATA_DIR", f"cannot create {path}: {exc.strerror}") from exc
    return path.resolve()


def _secret_key(raw: str | None, data_dir: Path) -> str:
    if raw is not None and raw != "":
        if len(raw) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "INSIGHTWAVE_SECRET_KEY",
                f"must be at least {MIN_SECRET_KEY_LENGTH} characters (got {len(raw)}); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
            )
        return raw
    return _stored_secret_key(data_dir)


def _stored_secret_key(data_dir: Path) -> str:
    """Return the key kept in the data directory, creating it once so sessions survive restarts."""
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        # link() fails if another process won the race; both then read the winner's key.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError("INSIGHTWAVE_SECRET_KEY", f"the stored key in {path} is too short")
    return key


def _database_url(variable: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        url = make_url(raw.strip())
    except ArgumentError as exc:
        raise ConfigError(variable, "is not a database URL (postgresql://user@host/db)") from exc
    if url.get_backend_name() != "postgresql":
        raise ConfigError(variable, f"must be a postgresql:// URL, not {url.drivername}://")
    if not url.database:
        raise ConfigError(variable, "names no database (postgresql://user@host/DATABASE)")
    return _with_psycopg(url).render_as_string(hide_password=False)


def _with_psycopg(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


def _redis_url(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
    return raw


def _admin_password(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    from app.passwords import PasswordPolicyError, check_password_policy

    try:
        check_password_policy(raw)
    except PasswordPolicyError as exc:
        raise ConfigError("INSIGHTWAVE_ADMIN_PASSWORD", str(exc)) from exc
    return raw


def _positive_int(variable: str, raw: str | None, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(variable, f"must be a whole number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(variable, f"must be greater than 0, got {value}")
    return value


def _count(variable: str, raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return 0
    if not raw.strip().isdigit():
        raise ConfigError(variable, f"must be a whole number from 0 up, got {raw!r}")
    return int(raw)


def _boolean(variable: str, raw: str | None, default: bool = False) -> bool:
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(variable, f"must be true or false, got {raw!r}")


def _port(variable: str, raw: str | None, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    if not raw.strip().isdigit() or int(raw) > 65535:
        raise ConfigError(variable, f"must be a port number from 0 to 65535, got {raw!r}")
    return int(raw)


def _optional_port(variable: str, raw: str | None) -> int | None:
    return None if raw is None or not raw.strip() else _port(variable, raw, 0)


def _hub_url(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"ws", "wss"} or not parts.netloc:
        raise ConfigError("INSIGHTWAVE_HUB_URL", "must be a ws:// or wss:// URL with a host")
    return raw.strip()


def _origins(variable: str, raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ()
    origins = []
    for item in raw.split(","):
        origin = item.strip().rstrip("/")
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path:
            raise ConfigError(variable, f"{item.strip()!r} is not an origin (https://host[:port])")
        origins.append(origin)
    return tuple(origins)


def _rate(variable: str, env: Mapping[str, str], default: str) -> str:
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return default
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError as exc:
        raise ConfigError(variable, f"is not a rate such as '600 per minute', got {raw!r}") from exc
    return raw.strip()


LOG_FORMATS = ("auto", "json", "text")
MIN_METRICS_TOKEN_LENGTH = 16


def _log_format(raw: str | None) -> str:
    value = (raw or "").strip().lower() or "auto"
    if value not in LOG_FORMATS:
        raise ConfigError("INSIGHTWAVE_LOG_FORMAT", f"must be json, text or auto, got {raw!r}")
    return value


def _metrics_token(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw.strip()) < MIN_METRICS_TOKEN_LENGTH:
        raise ConfigError(
            "INSIGHTWAVE_METRICS_TOKEN", f"must be at least {MIN_METRICS_TOKEN_LENGTH} characters"
        )
    return raw.strip()


def _oidc(env: Mapping[str, str]) -> OidcSettings | None:
    issuer = _optional(env.get("INSIGHTWAVE_OIDC_ISSUER"))
    if issuer is None:
        return None
    parts = urlsplit(issuer)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError("INSIGHTWAVE_OIDC_ISSUER", "must be the provider's http(s) URL")
    client_id = _optional(env.get("INSIGHTWAVE_OIDC_CLIENT_ID"))
    client_secret = _optional(env.get("INSIGHTWAVE_OIDC_CLIENT_SECRET"))
    if client_id is None or client_secret is None:
        variable = (
            "INSIGHTWAVE_OIDC_CLIENT_ID" if client_id is None else "INSIGHTWAVE_OIDC_CLIENT_SECRET"
        )
        raise ConfigError(variable, "is needed when INSIGHTWAVE_OIDC_ISSUER is set")
    roles = []
    for item in (env.get("INSIGHTWAVE_OIDC_ROLES") or "").split(","):
        if not item.strip():
            continue
        value, sep, role = item.rpartition("=")
        if not sep or not value.strip() or role.strip() not in _ROLE_NAMES:
            raise ConfigError(
                "INSIGHTWAVE_OIDC_ROLES",
                f"{item.strip()!r} is not claim-value=role (role: viewer, analyst or admin)",
            )
        roles.append((value.strip(), role.strip()))
    default_role = (_optional(env.get("INSIGHTWAVE_OIDC_DEFAULT_ROLE")) or "none").lower()
    if default_role not in {*_ROLE_NAMES, "none"}:
        raise ConfigError("INSIGHTWAVE_OIDC_DEFAULT_ROLE", "must be viewer, analyst, admin or none")
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        role_claim=_optional(env.get("INSIGHTWAVE_OIDC_ROLE_CLAIM")) or "groups",
        roles=tuple(roles),
        default_role=None if default_role == "none" else default_role,
        label=_optional(env.get("INSIGHTWAVE_OIDC_LABEL")) or "single sign-on",
    )


_ROLE_NAMES = ("viewer", "analyst", "admin")
