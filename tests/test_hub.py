"""The live hub, as a real WebSocket server on the test database, with real clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from jsonschema import Draft202012Validator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from app.database import libpq_url
from app.hub import HubThread
from app.hub.access import HubAccess
from app.hub.hub import HubSettings, LiveHub
from app.hub.protocol import CLIENT_TYPES, HUB_TYPES, schema, validator
from app.hub.tokens import SALT
from bench.live_clients import masked_text_frame, raw_websocket
from tests.conftest import wait_for

ORIGIN = "http://localhost"  # the origin of pages served by Flask's test client


@pytest.fixture
def make_hub(app) -> Iterator[Any]:
    """Start hubs on free ports with quick ticks, heartbeats and session checks."""
    threads: list[HubThread] = []

    def make(**settings: Any) -> LiveHub:
        defaults = {"port": 0, "tick": 0.01, "heartbeat": 1.0, "recheck": 0.5, "max_clients": 20}
        live = LiveHub(
            HubSettings(**{**defaults, **settings}),
            app.config["SQLALCHEMY_DATABASE_URI"],
            app.config["SECRET_KEY"],
            HubAccess(app),
        )
        threads.append(HubThread(live))
        threads[-1].start()
        return live

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def hub(make_hub) -> LiveHub:
    return make_hub()  # type: ignore[no-any-return]


@pytest.fixture
def bearer(auth) -> dict[str, str]:
    """An analyst's API token, to push rows with."""
    return {"Authorization": f"Bearer {auth.api_token('pusher@example.com', 'analyst')}"}


def push(client, bearer, rows, dataset="sensors") -> dict[str, Any]:
    """Push ``rows`` as a program would: with the API token and no session cookie."""
    response = client.application.test_client().post(
        f"/api/v1/datasets/{dataset}/events",
        data=orjson.dumps(rows),
        headers=bearer,
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"time": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "n": i, "value": i * 0.5}
        for i in range(start, start + count)
    ]


def live_token(client) -> str:
    response = client.get("/api/v1/live/token")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


def open_live(hub: LiveHub, token: str | None, origin: str | None = ORIGIN) -> ClientConnection:
    query = f"?token={token}" if token is not None else ""
    url = f"ws://127.0.0.1:{hub.bound_port}/live{query}"
    # max_queue=None: the test reads later, but its client keeps answering pings meanwhile
    return connect(url, origin=origin, open_timeout=5, max_queue=None)  # type: ignore[arg-type]


def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """Return the next message that is not a heartbeat, checked against its schema."""
    deadline = time.monotonic() + timeout
    while True:
        message = orjson.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        validator(message["type"]).validate(message)
        if message["type"] != "heartbeat":
            return message


def subscribe(ws: ClientConnection, dataset: str, since: int | None = None) -> dict[str, Any]:
    ws.send(orjson.dumps({"type": "subscribe", "dataset": dataset, "since": since}).decode())
    return receive(ws)


def collect_points(ws: ClientConnection, expected: int, timeout: float = 10.0) -> list[int]:
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ids) < expected:
        message = receive(ws, timeout=max(0.01, deadline - time.monotonic()))
        assert message["type"] == "points", message
        ids.extend(message["ids"])
    return ids


@pytest.mark.parametrize("message_type", CLIENT_TYPES + HUB_TYPES)
def test_every_message_type_has_a_valid_schema(message_type):
    Draft202012Validator.check_schema(schema(message_type))
    assert schema(message_type)["properties"]["type"] == {"const": message_type}


@pytest.mark.slow
def test_insightwave_hub_runs_alone_and_stops_on_sigterm(cli_env):
    port = _free_port()
    env = {**os.environ, **cli_env, "INSIGHTWAVE_HUB_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    command = [str(Path(sys.executable).parent / "insightwave"), "hub"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert f"Live hub listening on port {port}" in process.stdout.readline()

            def health() -> Any:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=5
                ) as answer:
                    return orjson.loads(answer.read())

            assert health()["clients"] == 0
            wait_for(lambda: health()["status"] == "ok", what="the hub's LISTEN connection")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0


def test_live_token_needs_a_signed_in_user(client):
    response = client.get("/api/v1/live/token")
    assert response.status_code == 401


def test_live_token_names_the_hub_url(client, auth):
    auth.login_as("viewer")
    body = client.get("/api/v1/live/token").get_json()
    assert body["url"] == "ws://localhost:8051/live"
    assert body["expires_in"] == 60 and body["token"]


def test_subscriber_receives_exactly_the_committed_rows(hub, client, auth, bearer):
    push(client, bearer, rows(0, 2))  # the dataset exists before anyone subscribes
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        ack = subscribe(ws, "sensors")
        assert ack["type"] == "subscribed" and ack["last_id"] == 2
        push(client, bearer, rows(2, 3))
        message = receive(ws)
    assert message["type"] == "points"
    assert message["ids"] == [3, 4, 5] and message["last_id"] == 5
    assert message["after"] == 2  # the id the subscriber was told it starts from
    assert message["values"]["n"] == [2, 3, 4]
    assert message["values"]["value"] == [1.0, 1.5, 2.0]
    assert message["ts"][0] == "2024-05-01T10:00:02.000+00:00"


def test_a_burst_of_commits_becomes_a_few_messages(make_hub, client, auth, bearer):
    hub = make_hub(tick=0.5)  # commits within half a second coalesce into one read
    push(client, bearer, rows(0, 1))
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        subscribe(ws, "sensors")
        before = hub.stats["batches"]
        commits = 30
        for i in range(commits):
            push(client, bearer, rows(1 + i, 1))
        ids = collect_points(ws, commits)
    assert ids == list(range(2, 2 + commits))  # every row once, in order
    assert hub.stats["notifications"] >= commits
    assert hub.stats["batches"] - before <= commits // 3


def test_resubscribing_since_the_last_id_catches_up_without_gaps(hub, client, auth, bearer):
    push(client, bearer, rows(0, 3))
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        last_id = subscribe(ws, "sensors")["last_id"]
    push(client, bearer, rows(3, 4))  # committed while the client was away
    with open_live(hub, live_token(client)) as ws:
        catch_up = subscribe(ws, "sensors", since=last_id)
        ack = receive(ws)
    assert catch_up["type"] == "points" and catch_up["ids"] == [4, 5, 6, 7]
    assert ack == {"type": "subscribed", "dataset": "sensors", "last_id": 7}


def test_an_unsubscribe_right_after_subscribe_wins(hub, client, auth, bearer):
    push(client, bearer, rows(0, 1))
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        ws.send('{"type": "subscribe", "dataset": "sensors", "since": null}')
        ws.send('{"type": "unsubscribe", "dataset": "sensors"}')
        wait_for(lambda: not hub._pending, what="the hub to take both messages")
        push(client, bearer, rows(1, 2))
        assert sum(len(feed.subscribers) for feed in hub.feeds.values()) == 0
        caught_up = subscribe(ws, "sensors", since=1)  # as a resumed page does
        assert caught_up["type"] == "points" and caught_up["ids"] == [2, 3]


def test_a_missing_forged_expired_or_reused_token_is_refused(hub, client, auth, app):
    auth.login_as("viewer")
    good = live_token(client)
    secret = app.config["SECRET_KEY"]
    claims = URLSafeTimedSerializer(secret, salt=SALT).loads(good)
    expired = _token_signed_ago(secret, {**claims, "n": "another nonce"}, 3600)
    for token in (None, "", good[:-4] + "AAAA", expired):
        with pytest.raises(InvalidStatus) as refused:
            open_live(hub, token)
        assert refused.value.response.status_code == 401
    with open_live(hub, good):
        pass
    with pytest.raises(InvalidStatus) as reused:
        open_live(hub, good)
    assert reused.value.response.status_code == 401
    assert b"used already" in reused.value.response.body


def test_a_token_is_refused_after_its_session_logs_out(hub, client, auth):
    auth.login_as("viewer")
    token = live_token(client)
    auth.logout()
    with pytest.raises(InvalidStatus) as refused:
        open_live(hub, token)
    assert refused.value.response.status_code == 401
    assert b"session_ended" in refused.value.response.body


def test_an_open_connection_is_closed_when_its_session_logs_out(hub, client, auth):
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        auth.logout()
        message = receive(ws, timeout=5)
        assert message["type"] == "error" and message["code"] == "session_ended"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_a_foreign_origin_is_refused(hub, client, auth):
    auth.login_as("viewer")
    for origin in ("http://evil.example", None):
        with pytest.raises(InvalidStatus) as refused:
            open_live(hub, live_token(client), origin=origin)
        assert refused.value.response.status_code == 403


def test_a_program_with_an_api_token_connects_without_an_origin(hub, client, bearer):
    body = client.get("/api/v1/live/token", headers=bearer).get_json()
    with open_live(hub, body["token"], origin=None) as ws:
        push(client, bearer, rows(0, 1))
        assert subscribe(ws, "sensors")["type"] == "subscribed"


def test_subscribe_is_checked_for_visibility_and_shape(hub, client, auth, bearer, database_url):
    push(client, bearer, rows(0, 1), dataset="secret")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE datasets SET visibility = 'restricted' WHERE name = 'secret'")
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        refused = subscribe(ws, "secret")
        assert (refused["type"], refused["code"]) == ("error", "not_found")
        assert subscribe(ws, "nonexistent")["code"] == "not_found"
        ws.send('{"type": "subscribe"}')
        assert receive(ws)["code"] == "bad_message"
        ws.send('{"type": "drop_tables", "dataset": "x"}')
        assert receive(ws)["code"] == "bad_message"
        ws.send("not json")
        assert receive(ws)["code"] == "bad_message"


def test_subscriptions_per_connection_are_limited(make_hub, client, auth, bearer):
    for index in range(3):
        push(client, bearer, rows(0, 1), dataset=f"d{index}")
    hub = make_hub(max_subscriptions=2)
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        assert subscribe(ws, "d0")["type"] == "subscribed"
        assert subscribe(ws, "d1")["type"] == "subscribed"
        assert subscribe(ws, "d2")["code"] == "too_many_subscriptions"


def test_an_oversized_client_message_closes_the_connection(hub, client, auth):
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        ws.send("x" * 5000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_the_hub_refuses_clients_beyond_its_limit(make_hub, client, auth):
    hub = make_hub(max_clients=1)
    auth.login_as("viewer")
    with open_live(hub, live_token(client)):
        wait_for(lambda: len(hub.clients) == 1, what="the first client")
        with pytest.raises(InvalidStatus) as refused:
            open_live(hub, live_token(client))
    assert refused.value.response.status_code == 503


def test_heartbeats_arrive_and_dead_connections_are_closed_and_counted(hub, client, auth):
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        message = orjson.loads(ws.recv(timeout=5))
        validator("heartbeat").validate(message)
        assert message["interval"] == 1.0
    dead = _raw_client(hub, live_token(client))  # completes the handshake, never answers pings
    try:
        wait_for(lambda: hub.stats["dead_closed"] == 1, timeout=10, what="the dead client to go")
    finally:
        dead.close()


def test_a_stalled_client_gets_one_resync_and_does_not_slow_the_others(
    make_hub, client, auth, bearer
):
    # A short queue, and heartbeats slow enough that the stalled client is not closed as dead.
    hub = make_hub(queue_size=4, max_subscriptions=2, heartbeat=60.0)
    push(client, bearer, rows(0, 1))
    auth.login_as("viewer")
    stalled = _raw_client(hub, live_token(client))
    stalled.sendall(masked_text_frame(b'{"type": "subscribe", "dataset": "sensors"}'))
    wait_for(lambda: sum(len(f.subscribers) for f in hub.feeds.values()) == 1, what="subscribe")
    try:
        with open_live(hub, live_token(client)) as ws:
            subscribe(ws, "sensors")
            batch = 1500  # ~100 kB a message: the stalled socket's buffers fill quickly
            pushes = 60  # 6 MB, more than the kernel buffers of the stalled socket hold
            for i in range(pushes):
                push(client, bearer, rows(1 + i * batch, batch))
            ids = collect_points(ws, pushes * batch, timeout=30)
            assert len(ids) == len(set(ids)) == pushes * batch
        assert hub.stats["resyncs"] == 1  # then nothing more until the client reads again
        assert hub.stats["messages_dropped"] > 0
    finally:
        stalled.close()


def test_rows_committed_while_the_hub_lost_its_connections_still_arrive(
    hub, client, auth, bearer, database_url
):
    push(client, bearer, rows(0, 1))
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        subscribe(ws, "sensors")
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'insightwave-hub%'"
            )
        push(client, bearer, rows(1, 5))  # likely before the hub is back
        ids = collect_points(ws, 5)
    assert ids == [2, 3, 4, 5, 6]
    assert hub.stats["listen_reconnects"] >= 1


# -- helpers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _token_signed_ago(secret_key: str, claims: dict[str, Any], seconds: int) -> str:
    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    return str(URLSafeTimedSerializer(secret_key, salt=SALT, signer=Backdated).dumps(claims))


def _raw_client(hub: LiveHub, token: str) -> socket.socket:
    """Open a WebSocket by hand that will never read again (a stalled or dead client)."""
    return raw_websocket("127.0.0.1", hub.bound_port or 0, token, origin=ORIGIN)
