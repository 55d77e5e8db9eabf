"""The hub keeps to who may see what: lost access ends a subscription, limits hold in bursts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from flask import Flask

from app.access import find_visible_dataset
from app.extensions import db
from app.groups import Access, create_group, set_dataset_access, set_members
from app.hub.access import HubAccess
from app.models import Dataset, User
from app.users import set_role
from tests.test_access import people  # noqa: F401 (a fixture)
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

VIEWER = "viewer2@example.com"


def change(app: Flask, action: Callable[[], Any]) -> None:
    """Make an access change the way the admin pages do, in its own app context."""
    with app.app_context():
        action()
        db.session.remove()


def restricted(*, users: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Access:
    return Access("restricted", list(groups), list(users))


def grant_to_user(app: Flask) -> Callable[[], None]:
    change(app, lambda: set_dataset_access("secret_a", restricted(users=(VIEWER,)), None))
    return lambda: set_dataset_access("secret_a", restricted(), None)


def grant_to_group(app: Flask) -> Callable[[], None]:
    def grant() -> None:
        create_group("team", None)
        set_members("team", [VIEWER], None)
        set_dataset_access("secret_a", restricted(groups=("team",)), None)

    change(app, grant)
    return lambda: set_members("team", [], None)


def visible_to_all(app: Flask) -> Callable[[], None]:
    return lambda: set_dataset_access("secret_a", restricted(), None)


def admin_role(app: Flask) -> Callable[[], None]:
    change(app, lambda: set_dataset_access("secret_a", restricted(), None))
    change(app, lambda: set_role(VIEWER, "admin"))
    return lambda: set_role(VIEWER, "viewer")  # the pusher's admin stays: not the last admin


@pytest.mark.parametrize(
    "access", [grant_to_user, grant_to_group, visible_to_all, admin_role], ids=lambda f: f.__name__
)
def test_a_subscription_ends_when_its_user_loses_access(
    make_hub,  # noqa: F811
    app,
    client,
    auth,
    bearer,  # noqa: F811
    access,
):
    auth.create("boss@example.com", "admin")  # so a demoted admin is never the last one
    auth.create(VIEWER, "viewer")
    push(client, bearer, rows(0, 1), dataset="secret_a")
    push(client, bearer, rows(0, 1), dataset="sensors")
    revoke = access(app)
    hub = make_hub(recheck=0.5)  # re-checks every half second
    assert auth.login(VIEWER).status_code == 302
    with open_live(hub, live_token(client)) as ws:
        assert subscribe(ws, "secret_a")["type"] == "subscribed"
        assert subscribe(ws, "sensors")["type"] == "subscribed"
        push(client, bearer, rows(1, 1), dataset="secret_a")
        assert receive(ws)["dataset"] == "secret_a"  # delivered while access holds

        change(app, revoke)
        assert client.get("/api/v1/datasets/secret_a").status_code == 404
        ended = receive(ws, timeout=5)
        assert ended == {
            "type": "error",
            "code": "not_found",
            "message": "no dataset 'secret_a' you may see",
            "dataset": "secret_a",
        }
        push(client, bearer, rows(2, 3), dataset="secret_a")
        push(client, bearer, rows(1, 1), dataset="sensors")  # a marker that arrives after
        after = receive(ws)
        assert (after["type"], after["dataset"]) == ("points", "sensors"), after
        with pytest.raises(TimeoutError):
            receive(ws, timeout=1.0)  # nothing of secret_a straggles in
        assert [set(held.subscriptions) for held in hub.clients] == [{"sensors"}]


def test_the_recheck_of_many_subscriptions_keeps_the_rule_of_one(app, people):  # noqa: F811
    """Owners, grantees (directly or by group), admins and strangers, as ``authorize`` sees them."""
    with app.app_context():
        users, datasets = db.session.query(User).all(), db.session.query(Dataset).all()
        asked = {(user.id, dataset.id) for user in users for dataset in datasets}
        expected = {
            (user.id, dataset.id)
            for user in users
            for dataset in datasets
            if find_visible_dataset(user, dataset.name) is not None
        }
        db.session.remove()
    gone = (users[0].id, max(dataset.id for dataset in datasets) + 1)  # a deleted dataset
    assert len(expected) < len(asked)
    assert HubAccess(app).still_visible(asked | {gone}) == expected


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
