"""Rate limits on the API, per API token (or signed-in user) and per IP address.

Flask-Limiter keeps the counters: in memory by default, in Redis when ``REDIS_URL`` is set so
that several web processes share them. A refused call gets the API's JSON error and a
``Retry-After`` header.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, current_app, jsonify, request
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
