"""LiveHub: LISTEN on PostgreSQL, coalesce per dataset per tick, push new points to clients.

One LISTEN connection per process. Notifications only mark a dataset as changed; once per
tick the hub reads each changed dataset's new events once (``id > cursor``) and hands the
same encoded message to every subscriber. Ingest commits into one dataset are serialised by
a transaction lock (``etl.load``), so within a dataset ids appear in commit order and a
cursor never skips a row. After the LISTEN connection comes back, every dataset is read
from its cursor, so no update is missed. Every re-check interval, each connection's session
and, in one query for all of them, every subscription's visibility are checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from app.hub import protocol
from app.hub.access import Grant, HubAccess
from app.hub.clients import Client, broadcast
from app.hub.tokens import LiveClaims, LiveTokenError, verify
from app.metrics import HUB_NOTIFY_LAG, hub_families, may_scrape, standalone_exposition
from etl.connection import connect_async
from etl.load import NOTIFY_CHANNEL

log = logging.getLogger("insightwave.hub")

Row = tuple[int, datetime, dict[str, Any]]
NEW_POINTS = (
    "SELECT id, ts, payload FROM events WHERE dataset_id = %s AND id > %s AND id <= %s "
    "ORDER BY id LIMIT %s"
)
LAST_ID = "SELECT coalesce(max(id), 0) FROM events WHERE dataset_id = %s"
KEEPALIVE_TIMEOUT = 1011  # the close code websockets uses when pings go unanswered


@dataclass(frozen=True)
class HubSettings:
    host: str = "127.0.0.1"
    port: int = 8051
    path: str = "/live"
    tick: float = 0.02  # seconds: notifications within one tick become one read and message
    heartbeat: float = 15.0  # seconds between heartbeats (and protocol pings)
    max_clients: int = 5000
    max_subscriptions: int = 20
    queue_size: int = 64  # messages waiting for one client before it counts as slow
    max_points: int = 2000  # points in one message; more in one tick means resync
    token_max_age: int = 60  # seconds
    recheck: float = 30.0  # seconds between checks that sessions and subscriptions still hold
    origins: tuple[str, ...] = ()  # browser origins allowed (empty: the token's own origin)
    metrics_token: str | None = None  # a bearer token that may read /metrics from anywhere
    proxy_count: int = 0  # proxies in front (then loopback alone may not read /metrics)

    def __post_init__(self) -> None:
        if self.queue_size <= self.max_subscriptions:
            raise ValueError("the client queue must hold more messages than subscriptions")


@dataclass(eq=False)
class Feed:
    """One dataset's subscribers and the last event id sent to them."""

    dataset_id: int
    name: str
    cursor: int
    subscribers: set[Client] = field(default_factory=set)
    dirty: bool = False
    noticed: float | None = None  # when the oldest notification not yet fanned out arrived


@dataclass(frozen=True)
class Subscription:
    client: Client
    grant: Grant
    since: int | None


class LiveHub:
    """The WebSocket fan-out of one process."""

    def __init__(
        self, settings: HubSettings, database_url: str, secret_key: str, access: HubAccess
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.secret_key = secret_key
        self.access = access
        self.stats: Counter[str] = Counter()
        self.clients: set[Client] = set()
        self.feeds: dict[int, Feed] = {}
        self.bound_port: int | None = None
        self._pending: list[Subscription] = []
        self._claims: dict[Any, LiveClaims] = {}
        self._nonces: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._reader: psycopg.AsyncConnection[Any] | None = None

    async def run(self, stop: asyncio.Event, ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``ready`` gets the bound port once listening."""
        async with self._serve() as server:
            self.bound_port = next(iter(server.sockets)).getsockname()[1]
            tasks = [
                asyncio.create_task(self._listen(), name="hub-listen"),
                asyncio.create_task(self._tick(), name="hub-tick"),
                asyncio.create_task(self._heartbeat(), name="hub-heartbeat"),
                asyncio.create_task(self._recheck_visibility(), name="hub-recheck"),
            ]
            if ready is not None:
                ready(self.bound_port)
            log.info("live hub listening on %s:%s", self.settings.host, self.bound_port)
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if self._reader is not None:
                    await self._reader.close()

    def _serve(self) -> Any:  # websockets' serve: an async context manager giving the Server
        interval = self.settings.heartbeat
        return serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._admit,
            compression=None,  # one message goes to many clients: compressing each costs CPU
            ping_interval=interval,
            ping_timeout=interval,
            close_timeout=min(interval, 5.0),  # a dead peer will not answer the close either
            max_size=protocol.MAX_CLIENT_MESSAGE_BYTES,
            max_queue=4,
        )

    def snapshot(self) -> dict[str, Any]:
        """Counters and gauges for ``/healthz`` on the hub (and the benchmark)."""
        return {
            "status": "ok" if self.stats["listening"] else "degraded",
            "clients": len(self.clients),
            "datasets": len(self.feeds),
            **{key: value for key, value in self.stats.items() if key != "listening"},
        }

    # -- connections ---------------------------------------------------------------------

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer /healthz and /metrics; refuse a wrong path, full hub, bad token or origin."""
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return _json(connection, HTTPStatus.OK, self.snapshot())
        if url.path == "/metrics":
            return self._metrics(connection, request)
        if url.path != self.settings.path:
            return _json(connection, HTTPStatus.NOT_FOUND, _problem("not_found", "no such path"))
        if len(self.clients) >= self.settings.max_clients:
            self.stats["refused_full"] += 1
            message = "the hub has reached its client limit; try again later"
            return _json(connection, HTTPStatus.SERVICE_UNAVAILABLE, _problem("full", message))
        token = parse_qs(url.query).get("token", [None])[0]
        try:
            claims = verify(self.secret_key, token, self.settings.token_max_age)
        except LiveTokenError as exc:
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "bad_token", str(exc))
        if not self._first_use(claims):
            message = "the live token was used already; ask for a new one"
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "bad_token", message)
        if not self._origin_allowed(request.headers, claims):
            message = "this origin may not connect to the hub"
            return self._refuse(connection, HTTPStatus.FORBIDDEN, "bad_origin", message)
        if await asyncio.to_thread(self.access.viewer, claims) is None:
            message = "the session behind this token has ended; sign in again"
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "session_ended", message)
        self._claims[connection.id] = claims
        return None

    def _metrics(self, connection: ServerConnection, request: Request) -> Response:
        """Prometheus text of this hub and process, by the rule of the web's /metrics."""
        address = connection.remote_address[0] if connection.remote_address else None
        settings = self.settings
        if not may_scrape(settings.metrics_token, settings.proxy_count, address, request.headers):
            problem = _problem("forbidden", "metrics are not public")
            return _json(connection, HTTPStatus.FORBIDDEN, problem)
        body = standalone_exposition(hub_families(self)).decode()
        response = _reply(connection, HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _refuse(
        self, connection: ServerConnection, status: HTTPStatus, code: str, message: str
    ) -> Response:
        self.stats[f"refused_{code}"] += 1
        return _json(connection, status, _problem(code, message))

    def _first_use(self, claims: LiveClaims) -> bool:
        now = time.monotonic()
        if len(self._nonces) > 10_000:  # forget nonces of tokens that have expired anyway
            self._nonces = {n: t for n, t in self._nonces.items() if t > now}
        if claims.nonce in self._nonces:
            return False
        self._nonces[claims.nonce] = now + self.settings.token_max_age
        return True

    def _origin_allowed(self, headers: Headers, claims: LiveClaims) -> bool:
        origin = headers.get("Origin")
        if self.settings.origins:
            return origin in self.settings.origins or (origin is None and claims.origin is None)
        return origin == claims.origin

    async def _handle(self, ws: ServerConnection) -> None:
        client = Client(ws, self._claims.pop(ws.id), self.settings.queue_size, self.stats)
        self.clients.add(client)
        self.stats["connections"] += 1
        helpers = [asyncio.create_task(client.write()), asyncio.create_task(self._recheck(client))]
        try:
            async for raw in ws:
                await self._on_message(client, raw)
        except ConnectionClosed:
            pass
        finally:
            sent = ws.protocol.close_sent
            if sent is not None and sent.code == KEEPALIVE_TIMEOUT:  # pings went unanswered
                self.stats["dead_closed"] += 1
            client.unsubscribe_all()
            self.clients.discard(client)
            for task in helpers:
                task.cancel()

    async def _recheck(self, client: Client) -> None:
        """Close the connection once the session or token behind it no longer holds."""
        # The first check comes at a random point of the interval: clients that connected
        # together (all of them, after a hub restart) would otherwise be checked together
        # forever, a burst of database queries in threads that stalls every fan-out.
        await asyncio.sleep(random.uniform(0, self.settings.recheck))  # noqa: S311 (not secret)
        while True:
            try:
                viewer = await asyncio.to_thread(self.access.viewer, client.claims)
            except SQLAlchemyError as exc:  # the database is away: checked again next interval
                log.debug("hub cannot re-check a session (%s)", exc)
            else:
                if viewer is None:
                    await self._end_session(client)
                    return
            await asyncio.sleep(self.settings.recheck)

    async def _recheck_visibility(self) -> None:
        """Every interval, end the subscriptions to datasets their users may no longer see."""
        while True:
            await asyncio.sleep(self.settings.recheck)
            asked = self._subscribed_pairs()
            if not asked:
                continue
            try:
                visible = await asyncio.to_thread(self.access.still_visible, asked)
            except SQLAlchemyError as exc:  # checked again at the next interval
                log.warning("hub cannot re-check subscriptions (%s)", exc)
                continue
            self._end_subscriptions(asked - visible)

    def _subscribed_pairs(self) -> set[tuple[int, int]]:
        """Return (user id, dataset id) of every subscription, those waiting for a tick too."""
        pairs = {
            (client.claims.user_id, feed.dataset_id)
            for client in self.clients
            for feed in client.subscriptions.values()
        }
        return pairs | {(r.client.claims.user_id, r.grant.dataset_id) for r in self._pending}

    def _end_subscriptions(self, lost: set[tuple[int, int]]) -> None:
        """Drop the subscriptions of ``lost`` (user id, dataset id) and tell their clients."""
        if not lost:
            return
        ended: set[tuple[Client, str]] = set()
        kept: list[Subscription] = []
        for request in self._pending:
            if (request.client.claims.user_id, request.grant.dataset_id) in lost:
                ended.add((request.client, request.grant.dataset))
            else:
                kept.append(request)
        self._pending = kept
        for client in self.clients:
            for name, feed in list(client.subscriptions.items()):
                if (client.claims.user_id, feed.dataset_id) in lost:
                    feed.subscribers.discard(client)
                    del client.subscriptions[name]
                    ended.add((client, name))
        for client, name in ended:
            client.offer_control(_not_found(name))
        self.stats["subscriptions_ended"] += len(ended)

    async def _end_session(self, client: Client) -> None:
        client.unsubscribe_all()
        message = "your session has ended; sign in again"
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(protocol.error("session_ended", message), text=True)
            await client.ws.close(4401, "session ended")

    async def _on_message(self, client: Client, raw: str | bytes) -> None:
        try:
            message = protocol.parse_client_message(raw)
        except protocol.ProtocolError as exc:
            client.offer_control(protocol.error("bad_message", str(exc)))
            return
        name: str = message["dataset"]
        if message["type"] == "unsubscribe":
            # Also drop a subscribe still waiting for the next tick: messages apply in order.
            self._pending = [
                waiting
                for waiting in self._pending
                if waiting.client is not client or waiting.grant.dataset != name
            ]
            feed = client.subscriptions.pop(name, None)
            if feed is not None:
                feed.subscribers.discard(client)
            return
        limit = self.settings.max_subscriptions
        held = self._held(client)
        if name not in held and len(held) >= limit:
            text = f"a connection may hold at most {limit} subscriptions"
            client.offer_control(protocol.error("too_many_subscriptions", text, name))
            return
        grant = await asyncio.to_thread(self.access.authorize, client.claims, "subscribe", name)
        if isinstance(grant, str):
            if grant == "session_ended":
                await self._end_session(client)
                return
            if grant == "not_found":
                client.offer_control(_not_found(name))
            else:
                client.offer_control(protocol.error(grant, "not allowed", name))
            return
        self._pending.append(Subscription(client, grant, message.get("since")))
        self._wake.set()

    def _held(self, client: Client) -> set[str]:
        """Return the datasets ``client`` subscribes to, counting those waiting for a tick."""
        waiting = (request.grant.dataset for request in self._pending if request.client is client)
        return set(client.subscriptions).union(waiting)

    # -- notifications and ticks --------------------------------------------------------

    async def _listen(self) -> None:
        """Keep one LISTEN connection; after each (re)connect, read every dataset again."""
        backoff = 0.2
        while True:
            try:
                conn = await connect_async(self.database_url, "insightwave-hub-listen")
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.stats["listening"] = 1
                    backoff = 0.2
                    self._mark_all_dirty()
                    async for note in conn.notifies():
                        self._on_notify(note.payload)
            except psycopg.OperationalError as exc:
                log.warning("hub lost its LISTEN connection (%s); retrying in %.1fs", exc, backoff)
            self.stats["listening"] = 0
            self.stats["listen_reconnects"] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _on_notify(self, payload: str) -> None:
        self.stats["notifications"] += 1
        try:
            name = orjson.loads(payload)["dataset"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        for feed in self.feeds.values():
            if feed.name == name:
                feed.dirty = True
                feed.noticed = feed.noticed or time.monotonic()
                self._wake.set()

    def _mark_all_dirty(self) -> None:
        for feed in self.feeds.values():
            feed.dirty = True
        self._wake.set()

    async def _tick(self) -> None:
        """Once per tick at most: take new subscriptions, then read each changed dataset once."""
        backoff = 0.2
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                conn = await self._connection()
                await self._take_subscriptions(conn)
                for feed in [feed for feed in self.feeds.values() if feed.dirty]:
                    await self._advance(conn, feed)
                backoff = 0.2
            except psycopg.OperationalError as exc:
                log.warning("hub cannot read events (%s); retrying in %.1fs", exc, backoff)
                await self._drop_reader()
                self._wake.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            await asyncio.sleep(self.settings.tick)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._reader is None or self._reader.closed:
            self._reader = await connect_async(self.database_url, "insightwave-hub")
        return self._reader

    async def _drop_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(psycopg.Error):
                await self._reader.close()
        self._reader = None

    async def _take_subscriptions(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while self._pending:
            # Taken off the queue only once done: a failed read leaves it for the retry.
            await self._subscribe(conn, self._pending[0])

    async def _subscribe(self, conn: psycopg.AsyncConnection[Any], request: Subscription) -> None:
        client, grant = request.client, request.grant
        feed = self.feeds.get(grant.dataset_id)
        if feed is None:
            row = await (await conn.execute(LAST_ID, (grant.dataset_id,))).fetchone()
            feed = Feed(grant.dataset_id, grant.dataset, int(row[0]) if row else 0)
            self.feeds[grant.dataset_id] = feed
        rows: list[Row] = []
        if request.since is not None and request.since < feed.cursor:
            rows = await self._read(conn, feed, request.since, feed.cursor)
        if request not in self._pending:
            return  # unsubscribed while the rows were read
        self._pending.remove(request)
        if client not in self.clients:
            return  # gone meanwhile
        previous = client.subscriptions.get(grant.dataset)
        if previous is not None:
            previous.subscribers.discard(client)
        if len(rows) > self.settings.max_points:
            client.offer_control(protocol.resync(feed.name, feed.cursor, "too_many_points"))
        elif rows:
            client.offer_control(protocol.points(feed.name, rows, after=request.since))
        feed.subscribers.add(client)
        client.subscriptions[feed.name] = feed
        client.offer_control(protocol.subscribed(feed.name, feed.cursor))

    async def _advance(self, conn: psycopg.AsyncConnection[Any], feed: Feed) -> None:
        if not feed.subscribers:
            del self.feeds[feed.dataset_id]
            return
        rows = await self._read(conn, feed, feed.cursor, None)
        feed.dirty = False
        if not rows:
            feed.noticed = None  # nothing new: those notifications were for rows sent already
            return
        if len(rows) > self.settings.max_points:
            row = await (await conn.execute(LAST_ID, (feed.dataset_id,))).fetchone()
            feed.cursor = int(row[0]) if row else feed.cursor
            message = protocol.resync(feed.name, feed.cursor, "too_many_points")
        else:
            message = protocol.points(feed.name, rows, after=feed.cursor)
            feed.cursor = rows[-1][0]
        self.stats["batches"] += 1
        broadcast(feed.subscribers, message)
        if feed.noticed is not None:
            HUB_NOTIFY_LAG.observe(time.monotonic() - feed.noticed)
            feed.noticed = None

    async def _read(
        self, conn: psycopg.AsyncConnection[Any], feed: Feed, after: int, upto: int | None
    ) -> list[Row]:
        """Read at most ``max_points + 1`` events after ``after`` (the extra one: too many)."""
        limit = self.settings.max_points + 1
        upto = upto if upto is not None else 2**63 - 1
        cursor = await conn.execute(NEW_POINTS, (feed.dataset_id, after, upto, limit))
        return [(int(id_), ts, payload) for id_, ts, payload in await cursor.fetchall()]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            broadcast(self.clients, protocol.heartbeat(self.settings.heartbeat))


def _not_found(dataset: str) -> bytes:
    """The error for a dataset the user may not see: as in the API, it looks absent."""
    return protocol.error("not_found", f"no dataset {dataset!r} you may see", dataset)


def _problem(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    return _reply(connection, status, orjson.dumps(body).decode() + "\n", "application/json")


def _reply(
    connection: ServerConnection, status: HTTPStatus, body: str, content_type: str
) -> Response:
    """A plain HTTP answer instead of the WebSocket upgrade."""
    response = connection.respond(status, body)
    del response.headers["Content-Type"]  # respond() says text/plain; charset=utf-8
    response.headers["Content-Type"] = content_type
    return response
