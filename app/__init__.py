"""Insight-Wave: the application factory."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf

from app.config import Config
from app.extensions import csrf, db, login_manager
from app.json_provider import OrjsonProvider

CSRF_COOKIE = "_csrf_token"  # the cookie dash-renderer copies into its X-CSRFToken header


class _SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask server with the Dash app mounted on it.

    Without ``config.database_url`` the embedded PostgreSQL is started (or joined); its
    handle is kept in ``server.extensions["embedded_postgres"]``.
    """
    config = config or Config.from_env()
    server = Flask(__name__)
    server.json = OrjsonProvider(server)
    database_url = config.database_url
    if database_url is None:
        from app.embedded_db import start_embedded

        embedded = start_embedded(config.data_dir)
        server.extensions["embedded_postgres"] = embedded
        database_url = embedded.url
    server.config.update(
        INSIGHTWAVE=config,
        # A 50 MiB upload arrives base64-encoded in a Dash callback's JSON body (~67 MiB).
        MAX_CONTENT_LENGTH=80 * 1024 * 1024,
        SECRET_KEY=config.secret_key,
        SQLALCHEMY_DATABASE_URI=database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 3}},
        SESSION_COOKIE_NAME="insightwave_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.https,
        PERMANENT_SESSION_LIFETIME=timedelta(days=config.session_days),
        # The token is bound to the session; an hour's limit would break long-open dashboards.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=True,
        TESTING=config.testing,
    )
    server.session_interface = _SessionInterface()
    from app.logs import configure_logging, init_request_logging

    if not config.testing:
        configure_logging(config.log_format)
    init_request_logging(server)  # first: its timing and request id cover every other hook
    db.init_app(server)
    from app.database import check_before_use, reads_without_transaction

    with server.app_context():
        check_before_use(db.engine)
    server.before_request(reads_without_transaction(("/api/v1/",)))  # before the sign-in
    login_manager.init_app(server)
    login_manager.session_protection = None  # sessions are server-side rows, revocable one by one
    csrf.init_app(server)
    from app.limits import init_limits, throttle_login

    limiter = init_limits(server)

    from app import api, auth, health, metrics, set_password
    from app.oidc import init_oidc

    server.register_blueprint(auth.bp)
    init_oidc(server, config.oidc)
    server.register_blueprint(health.bp)
    server.register_blueprint(metrics.bp)
    server.register_blueprint(set_password.bp)
    server.register_blueprint(api.bp)
    # API clients authenticate with bearer tokens, which a browser never sends on its own;
    # the guard still demands the CSRF token when an API call rides on a session cookie.
    csrf.exempt(api.bp)

    from app import guard
    from app.dash_app import build_dash
    from app.security import init_security

    throttle_login(server, limiter)
    dash_app = build_dash(server)
    server.extensions["dash"] = dash_app
    init_security(server)  # before the guard: a CORS preflight needs no sign-in
    guard.install(server, dash_app)
    server.after_request(_set_csrf_cookie)
    return server


def _set_csrf_cookie(response: Response) -> Response:
    """Give Dash pages the CSRF token that dash-renderer sends back with every callback."""
    if request.endpoint in {"/", "/<path:path>"} and response.status_code in {200, 403, 404}:
        response.set_cookie(
            CSRF_COOKIE,
            generate_csrf(),
            samesite="Strict",
            secure=request.is_secure,
            httponly=False,
        )
    return response
