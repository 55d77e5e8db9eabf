"""The hub keeps its limits however fast a client sends."""

from __future__ import annotations

import orjson

from tests.test_hub import (  # noqa: F401 (bearer, make_hub: fixtures)
    bearer,
    live_token,
    make_hub,
    open_live,
    push,
    receive,
    rows,
    subscribe,
)


def test_a_burst_of_subscribes_never_passes_the_limit(make_hub, client, auth, bearer):  # noqa: F811
    names = [f"d{index}" for index in range(8)]
    for name in names:
        push(client, bearer, rows(0, 1), dataset=name)
    # A slow tick leaves the subscribes waiting in the hub's queue, as under load.
    hub = make_hub(max_subscriptions=3, tick=0.3)
    auth.login_as("viewer")
    with open_live(hub, live_token(client)) as ws:
        for name in names:  # all at once, without waiting for answers
            ws.send(orjson.dumps({"type": "subscribe", "dataset": name, "since": None}).decode())
        answers = [receive(ws) for _ in names]
        again = subscribe(ws, "d7")  # once the burst is taken, still full
        (connection,) = hub.clients
        held = set(connection.subscriptions)
    subscribed = [a["dataset"] for a in answers if a["type"] == "subscribed"]
    refused = [a["dataset"] for a in answers if a.get("code") == "too_many_subscriptions"]
    assert subscribed == names[:3] and refused == names[3:]
    assert held == set(names[:3])
    assert again["code"] == "too_many_subscriptions"
