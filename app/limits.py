"""Rate limits on the API, per API token (or signed-in user) and per IP address, and on
failed sign-ins per IP address (the per-account lockout is in ``app.users``).

Flask-Limiter keeps the counters: in memory by default, in Redis when ``REDIS_URL`` is set so
that several web processes share them. A refused call gets the API's JSON error and a
``Retry-After`` header.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_limiter import Limit, Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user


def client_key() -> str:
    """Key a request by its API token, else by its signed-in user, else by its address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "ip:" + get_remote_address()


def _per_client() -> str:
    return str(current_app.config["INSIGHTWAVE"].rate_limit)


def _per_ip() -> str:
    return str(current_app.config["INSIGHTWAVE"].rate_limit_ip)


def _not_api() -> bool:
    return not request.path.startswith("/api/")


def _refused(limit: RequestLimit) -> Response:
    retry_after = max(1, math.ceil(limit.reset_at - time.time()))
    response = jsonify(
        {
            "error": {
                "code": "rate_limited",
                "message": f"too many requests ({limit.limit}); retry in {retry_after} s",
            }
        }
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


def init_limits(server: Flask) -> Limiter:
    """Give ``server`` its own limiter, with the configured storage and switch.

    One limiter per app, not a module-level extension: Flask-Limiter keeps its storage and
    its on/off switch on the instance, so apps built side by side (tests) would share them.
    """
    config = server.config["INSIGHTWAVE"]
    server.config.update(
        RATELIMIT_ENABLED=config.rate_limiting,
        RATELIMIT_STORAGE_URI=config.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX="insightwave",
    )
    return Limiter(
        key_func=client_key,
        app=server,
        default_limits=[
            Limit(_per_client, key_function=client_key, exempt_when=_not_api),
            Limit(_per_ip, key_function=get_remote_address, exempt_when=_not_api),
        ],
        headers_enabled=True,
        strategy="sliding-window-counter",
        on_breach=_refused,
    )


def _failed_sign_ins_per_ip() -> str:
    return str(current_app.config["INSIGHTWAVE"].login_rate_limit_ip)


def _sign_in_failed(response: Response) -> bool:
    return response.status_code == 401


def _sign_ins_refused(limit: RequestLimit) -> Response:
    from app.auth import LoginForm

    minutes = max(1, math.ceil((limit.reset_at - time.time()) / 60))
    message = f"Too many failed sign-ins from your network. Try again in {minutes} min."
    response = current_app.make_response(
        (render_template("login.html", form=LoginForm(), error=message), 429)
    )
    response.headers["Retry-After"] = str(minutes * 60)
    return response


def throttle_login(server: Flask, limiter: Limiter) -> None:
    """Count failed sign-ins per client address; past the limit, refuse sign-ins from it.

    Only failures count (a 401 from the form), so a busy office behind one address is not
    locked out by its own successful sign-ins.
    """
    # The decorated view holds the limiter only weakly, and a switched-off limiter is not
    # kept by the app: hold it here so the view outlives create_app.
    server.extensions["login_limiter"] = limiter
    login = server.view_functions["auth.login"]
    server.view_functions["auth.login"] = limiter.limit(  # type: ignore[assignment]
        _failed_sign_ins_per_ip,
        key_func=get_remote_address,
        methods=["POST"],
        deduct_when=_sign_in_failed,
        on_breach=_sign_ins_refused,
        scope="login-ip",
    )(login)
