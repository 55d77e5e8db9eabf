"""Rate limits on the API: per token, per address, 429 with Retry-After, recovery, Redis."""

from __future__ import annotations

import os
import time

import pytest

from app.extensions import db
from app.tokens import create_token
from app.users import get_user


@pytest.fixture
def tokens(make_app, auth):
    """Make API tokens (for analysts) through the session app; any app accepts them."""
    made = []

    def make() -> dict[str, str]:
        email = f"limited{len(made)}@example.com"
        auth.create(email, "analyst")
        app = make_app()
        with app.app_context():
            token = create_token(get_user(email), "limits")
            db.session.remove()
        made.append(token)
        return {"Authorization": f"Bearer {token}"}

    return make


def limited_app(make_app, **env: str):
    return make_app(INSIGHTWAVE_RATE_LIMITING="true", **env)


def statuses(client, headers, count: int, path: str = "/api/v1/me") -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(count)]


def test_a_token_over_its_limit_gets_429_with_retry_after(make_app, tokens):
    client = limited_app(make_app, INSIGHTWAVE_RATE_LIMIT="3 per minute").test_client()
    headers = tokens()
    assert statuses(client, headers, 3) == [200, 200, 200]
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert statuses(client, tokens(), 1) == [200]  # another token has its own allowance


def at_a_window_start(seconds: int) -> None:
    """Wait for the limiter's next window (they start at multiples of ``seconds`` since the
    epoch): requests that straddle a boundary find the previous window's count weighed down,
    so a third request could pass a limit of two."""
    time.sleep(seconds - time.time() % seconds + 0.01)


def test_the_limit_recovers_once_the_window_passes(make_app, tokens):
    client = limited_app(make_app, INSIGHTWAVE_RATE_LIMIT="2 per 2 seconds").test_client()
    headers = tokens()
    at_a_window_start(2)
    assert statuses(client, headers, 3) == [200, 200, 429]
    time.sleep(4)  # the sliding window counts the previous window for a while
    assert statuses(client, headers, 1) == [200]


def test_one_address_is_limited_across_its_tokens(make_app, tokens):
    app = limited_app(make_app, INSIGHTWAVE_RATE_LIMIT_IP="4 per minute")
    client = app.test_client()
    # The tokens first: making one takes seconds here, and the limit's sliding window weighs
    # the previous clock minute's requests down as the next one passes.
    holders = [tokens() for _ in range(5)]
    results = [status for headers in holders for status in statuses(client, headers, 1)]
    assert results == [200, 200, 200, 200, 429]


def test_pages_and_health_checks_are_not_limited(make_app):
    client = limited_app(make_app, INSIGHTWAVE_RATE_LIMIT_IP="2 per minute").test_client()
    assert {client.get("/healthz").status_code for _ in range(5)} == {200}
    assert {client.get("/login").status_code for _ in range(5)} == {200}


def test_processes_share_their_counts_through_redis(make_app, tokens):
    redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    env = {"INSIGHTWAVE_RATE_LIMIT": "3 per minute", "REDIS_URL": redis}
    first, second = (limited_app(make_app, **env).test_client() for _ in range(2))
    headers = tokens()
    assert statuses(first, headers, 2) + statuses(second, headers, 2) == [200, 200, 200, 429]
