"""The load benchmark's baselines (``bench.bare_api``, Flask and ASGI) answer the read mix as
ours does.

Its requests a second are only a fair yardstick if it does the same database work and writes
the same answers: the statements are recorded from our app, and here both apps answer every
kind of request of ``loadtest/api_read.js`` on the same data, compared as JSON.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.extensions import db
from app.tokens import create_token
from app.users import create_user, get_user
from bench import bare_api
from bench.hub_process import BenchApp
from bench.load import DATASET, seed


@pytest.fixture
def apps(make_app, database_url, data_dir, tmp_path):
    """Ours and the bare app on one seeded dataset, and a token that may read it."""
    ours = make_app()
    with ours.app_context():
        create_user("bare@example.com", "analyst", "correct horse battery")
        user = get_user("bare@example.com")
        token = create_token(user, "bare")
        user_id = user.id
        db.session.remove()
    seed(BenchApp(database_url, data_dir, "unused", user_id, token), 3000)
    statements = tmp_path / "statements.json"
    bare_api.save(bare_api.record_statements(make_app(), token, DATASET), statements)
    recorded = bare_api.load(statements)
    bare = bare_api.create_server(database_url, recorded)
    asgi = AsgiClient(bare_api.AsgiServer(database_url, recorded))
    headers = {"Authorization": f"Bearer {token}"}
    yield ours.test_client(), (bare.test_client(), asgi), headers
    bare.extensions["bare_api"].close()
    asgi.close()


class AsgiClient:
    """The ASGI baseline, called in this process through httpx (its pool opened here: httpx
    does not send the lifespan messages uvicorn sends)."""

    class Answer:
        def __init__(self, response: httpx.Response) -> None:
            self.status_code = response.status_code
            self.body = response.content

        def get_json(self) -> object:
            return json.loads(self.body)

    def __init__(self, server: bare_api.AsgiServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(server.pool.open())

    def get(self, path: str, headers: dict[str, str]) -> AsgiClient.Answer:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.server)
            async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
                return await client.get(path, headers=headers)

        return self.Answer(self.loop.run_until_complete(call()))

    def close(self) -> None:
        self.loop.run_until_complete(self.server.pool.close())
        self.loop.close()


def without_times(answer):
    """A series answer's range ends at its request's "now": the two apps' differ."""
    if isinstance(answer, dict):
        return {key: value for key, value in answer.items() if key not in {"from", "to"}}
    return answer


def test_every_request_of_the_read_mix_gets_our_answer(apps):
    ours, baselines, headers = apps
    paths = bare_api.requests_to_record(DATASET, datetime.now(UTC) - timedelta(hours=1))
    page = ours.get(paths["events"], headers=headers).get_json()
    assert len(page["events"]) == 50 and page["next_cursor"]
    paths["events_after"] = f"{paths['events']}&cursor={page['next_cursor']}"
    for bare in baselines:
        for kind, path in paths.items():
            expected, got = ours.get(path, headers=headers), bare.get(path, headers=headers)
            assert (kind, expected.status_code, got.status_code) == (kind, 200, 200)
            assert without_times(got.get_json()) == without_times(expected.get_json()), kind
        after = bare.get(paths["events_after"], headers=headers).get_json()
        assert after["events"][0]["id"] not in {event["id"] for event in page["events"]}
        grouped = bare.get(paths["grouped"], headers=headers).get_json()
        assert {line["group"] for line in grouped["groups"]} == {"north", "south", "east", "west"}


def test_it_refuses_a_bad_token_and_hides_what_it_may_not_see(apps):
    ours, baselines, headers = apps
    stranger = {"Authorization": "Bearer iw_nope"}
    for client in (ours, *baselines):
        assert client.get("/api/v1/datasets", headers=stranger).status_code == 401
        assert client.get("/api/v1/datasets/nothing_here", headers=headers).status_code == 404
