"""Security headers, CORS for the API, proxy awareness and error responses that tell nothing.

The Content-Security-Policy of an HTML page allows scripts only from this site and, inline,
only Dash's own (its renderer and clientside callbacks) by their hashes: no ``unsafe-eval``,
no ``unsafe-inline`` for scripts. (Plotly's WebGL traces, ``Scattergl`` and the like, compile
their shaders with ``Function`` and so would need ``unsafe-eval``: the app draws SVG traces only,
and tests/test_security.py fails on any CSP violation a page causes in Chromium.)
Styles do allow ``unsafe-inline``: Mantine and plotly.js write ``<style>`` elements (checked
in Chromium: every page reports ``style-src-elem`` violations without it), and injected CSS
cannot run code. Every other response (JSON, files) gets a policy that
allows nothing, since it loads nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

import psycopg
from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask_cors import CORS
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Config
from app.extensions import db

HSTS = "max-age=31536000"  # a year, and no includeSubDomains: other hosts of the domain may be http
API_PREFIX = "/api/"
NOTHING_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_POLICY = {
    "default-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    # Plotly's "download plot as PNG" loads its SVG as an image from a data: or blob: URL.
    "img-src": "'self' data: blob:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
CORS_EXPOSED = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


class _DashTalisman(Talisman):  # type: ignore[misc]
    """Talisman with a policy made per response, and HSTS only on a connection that is HTTPS.

    Talisman also sends HSTS when a client merely claims ``X-Forwarded-Proto: https``; here
    only ``request.is_secure`` counts, which ProxyFix sets from proxies that are trusted.
    """

    def _force_https(self) -> None:
        """Nothing: redirecting to HTTPS is the proxy's job (``force_https=False`` below).

        Talisman's own hook works out the view's options and the request's scheme on every
        request only to find that out; so does ``_make_nonce`` for a policy without nonces.
        """

    def _make_nonce(self) -> None:
        """Nothing: page scripts are allowed by their hashes, not by a nonce."""

    def _get_local_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super()._get_local_options()
        options["content_security_policy"] = _policy_for(g.get("response_mimetype", ""))
        return options

    def _set_hsts_headers(self, headers: Any) -> None:
        if request.is_secure:
            headers["Strict-Transport-Security"] = HSTS

    def _set_response_headers(self, response: Response) -> Response:
        g.response_mimetype = response.mimetype
        if response.mimetype == "text/html":
            result: Response = super()._set_response_headers(response)
            return result
        # Every other response gets the same headers (no view sets options of its own), so
        # they are worked out once: Talisman builds them anew each time, a twentieth of the
        # cheapest API request's Python.
        if self._fixed_headers is None:
            self._fixed_headers = self._headers_of_a_non_page()
        for name, value in self._fixed_headers:
            response.headers[name] = value
        self._set_hsts_headers(response.headers)
        return response

    _fixed_headers: list[tuple[str, str]] | None = None

    def _headers_of_a_non_page(self) -> list[tuple[str, str]]:
        """What Talisman adds to a response that is not an HTML page, HSTS (per request) apart."""
        blank = Response()
        own = set(blank.headers.keys())
        super()._set_response_headers(blank)  # the policy: that of this request's mimetype
        added = [(name, value) for name, value in blank.headers.items() if name not in own]
        return [(name, value) for name, value in added if name != "Strict-Transport-Security"]


def _policy_for(mimetype: str) -> str:
    if mimetype != "text/html":
        return NOTHING_POLICY
    dash_app = current_app.extensions["dash"]
    directives = dict(PAGE_POLICY)
    # The hashes of Dash's renderer and of the inline clientside callbacks, computed as the
    # page is served: page modules may add callbacks until Dash sets itself up.
    directives["script-src"] = " ".join(["'self'", *dash_app.csp_hashes()])
    directives["connect-src"] = f"'self' {hub_origin()}"
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def hub_origin() -> str:
    """Return the origin browsers reach the live hub at, as a CSP source.

    Unless ``INSIGHTWAVE_HUB_URL`` names it, the hub is on this page's host at a port of its
    own, which may change while a page is open (a hub restarted on another free port): any
    port of this host is allowed, never another host.
    """
    config: Config = current_app.config["INSIGHTWAVE"]
    if config.hub_url:
        parts = urlsplit(config.hub_url)
        return f"{parts.scheme}://{parts.netloc}"
    page = urlsplit(request.host_url)
    host = page.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'wss' if page.scheme == 'https' else 'ws'}://{host}:*"


def init_security(server: Flask) -> None:
    """Install ProxyFix, the security headers, CORS for the API and the error responses.

    Call before the guard is installed: a CORS preflight is answered before any sign-in check.
    """
    config: Config = server.config["INSIGHTWAVE"]
    if config.proxy_count:
        n = config.proxy_count
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n
        )
    _DashTalisman(
        server,
        force_https=False,  # redirecting to HTTPS is the proxy's job; HSTS keeps browsers there
        session_cookie_secure=False,  # create_app marks it Secure on HTTPS requests itself
        session_cookie_http_only=True,
        strict_transport_security=True,
        frame_options="DENY",
        referrer_policy="same-origin",  # explore links carry dataset names and filters
        content_security_policy=NOTHING_POLICY,  # replaced per response by _DashTalisman
    )
    CORS(
        server,
        resources={API_PREFIX + "v1/*": {"origins": list(config.cors_origins)}},
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        supports_credentials=False,  # cross-origin callers use bearer tokens, never our cookies
        max_age=600,
    )
    server.before_request(_answer_preflight)
    _install_error_handlers(server)


def _answer_preflight() -> Response | None:
    """Answer a CORS preflight to the API: 204 for an allowed origin (flask-cors adds the
    headers), 403 for any other."""
    if not (
        request.method == "OPTIONS"
        and request.path.startswith(API_PREFIX)
        and "Access-Control-Request-Method" in request.headers
    ):
        return None
    origin = (request.headers.get("Origin") or "").rstrip("/")
    if origin not in current_app.config["INSIGHTWAVE"].cors_origins:
        return error_json(403, "cors_refused", "this origin may not call the API")
    return Response(status=204)


DATABASE_RETRY_SECONDS = 5  # Retry-After when the database is unreachable


def error_json(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _wants_html() -> bool:
    if request.path.startswith((API_PREFIX, "/_dash-")):
        return False
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "text/html"


def _install_error_handlers(server: Flask) -> None:
    @server.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError) -> Any:
        return error_json(
            400, "csrf_failed", "the CSRF token is missing or invalid; reload the page"
        )

    @server.errorhandler(404)
    @server.errorhandler(405)
    def not_routed(exc: HTTPException) -> Any:
        """Under the API, a path or method it does not have is answered in JSON."""
        if not request.path.startswith(API_PREFIX):
            return exc
        if isinstance(exc, MethodNotAllowed):
            allowed = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
            response = error_json(
                405, "method_not_allowed", f"{request.path} takes {', '.join(allowed)}"
            )
            response.headers["Allow"] = ", ".join(exc.valid_methods or ())
            return response
        return error_json(404, "not_found", f"there is no API route {request.path}")

    @server.errorhandler(413)
    def too_large(exc: HTTPException) -> Any:
        return error_json(413, "too_large", "the request body is too large")

    @server.errorhandler(500)
    def internal(exc: Exception) -> Any:
        # Flask has logged the exception with its traceback; the client learns nothing of it.
        message = "Something went wrong on the server; it has been logged."
        if _wants_html():
            return render_template("error.html", status=500, message=message), 500
        return error_json(500, "internal", "something went wrong on the server; it has been logged")

    @server.errorhandler(OperationalError)
    @server.errorhandler(psycopg.OperationalError)
    def database_unavailable(exc: Exception) -> Any:
        # The database is down or unreachable, or the connection to it was lost (SQLAlchemy
        # saw a disconnect and replaces its connections): nothing was stored, and a retry will
        # do. Errors of a statement (a cancelled query, say) are not that: they stay a 500.
        cause = getattr(exc, "orig", exc)
        lost = bool(getattr(exc, "connection_invalidated", False))
        if type(cause) is not psycopg.OperationalError and not lost:
            raise exc
        server.logger.warning("database unavailable: %s", exc)
        message = "The database is not reachable right now; try again in a few seconds."
        if _wants_html():
            response = Response(
                render_template("error.html", status=503, message=message), status=503
            )
        else:
            response = error_json(503, "unavailable", message[0].lower() + message[1:-1])
        response.headers["Retry-After"] = str(DATABASE_RETRY_SECONDS)
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        return response
