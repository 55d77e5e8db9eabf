"""The benchmark's WebSocket clients: many real ``websockets`` clients in one child process.

The parent starts a few of these processes (``multiprocessing`` spawn) and talks to each over
a pipe: the child connects its clients and subscribes them, says ``ready``, then on each
``collect`` waits until every client has seen the given event id and hands back, per client,
the ``(last_id, receipt time)`` of every points message since the previous collect. Receipt
times are ``time.monotonic()``: CLOCK_MONOTONIC, one clock for every process on a Linux host.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import multiprocessing
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from app.hub.tokens import issue

STALL_ATTEMPTS = 400
CONNECT_AT_ONCE = 50  # handshakes in flight per process: each costs the hub a database check


@dataclass(frozen=True)
class ClientSpec:
    """What one client process needs: where the hub is, who to be, what to watch."""

    url: str  # ws://host:port/live
    dataset: str
    clients: int
    secret_key: str  # the hub's: tokens are minted here, as GET /api/v1/live/token would
    user_id: int
    api_token: str


@dataclass
class Received:
    """One client's view of the stream: messages since the last collect, rows ever."""

    last_ids: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    rows: int = 0
    last_id: int = 0
    in_order: bool = True  # every id greater than the one before: no gap-fill, no repeat
    resyncs: int = 0
    closed: bool = False


def mint_token(spec: ClientSpec) -> str:
    return issue(spec.secret_key, spec.user_id, api_token=spec.api_token)


def subscribe_message(dataset: str) -> bytes:
    return orjson.dumps({"type": "subscribe", "dataset": dataset, "since": None})


class LiveClient(asyncio.Protocol):
    """One WebSocket client: websockets' own client protocol (sans I/O) on an asyncio socket.

    No task, queue or future per connection: a message is timed and counted in the callback
    that receives its bytes, so 500 clients in one process cost the machine little more than
    the parsing, and what is measured is the hub, not the benchmark's own event loop.
    """

    def __init__(self, url: str, dataset: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.dataset = dataset
        self.view = Received()
        self.subscribed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self._opened(event)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._message(orjson.loads(event.data), at)
        self._flush()  # pongs, and the close handshake

    def _opened(self, response: Response) -> None:
        if self.protocol.handshake_exc is not None:
            self._fail(RuntimeError(f"the hub refused a client: {response.status_code}"))
            return
        self.protocol.send_text(subscribe_message(self.dataset))

    def _message(self, message: dict[str, Any], at: float) -> None:
        view = self.view
        if message["type"] == "points":
            ids = message["ids"]
            view.in_order &= ids[0] > view.last_id
            view.in_order &= all(a < b for a, b in zip(ids, ids[1:], strict=False))
            view.rows += len(ids)
            view.last_id = ids[-1]
            view.last_ids.append(ids[-1])
            view.times.append(at)
        elif message["type"] == "subscribed" and not self.subscribed.done():
            view.last_id = int(message["last_id"] or 0)
            self.subscribed.set_result(view.last_id)
        elif message["type"] == "resync":
            view.resyncs += 1
        elif message["type"] == "error":
            self._fail(RuntimeError(f"the hub sent an error: {message}"))

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif not self.transport.is_closing():
                self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.view.closed = True
        self._fail(ConnectionError(f"the hub closed a client: {exc}"))

    def close(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close()
            self._flush()
        elif self.transport is not None:
            self.transport.close()


async def _open(spec: ClientSpec, gate: asyncio.Semaphore) -> LiveClient:
    url = f"{spec.url}?token={mint_token(spec)}"
    uri = parse_uri(url)
    async with gate:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: LiveClient(url, spec.dataset), uri.host, uri.port
        )
        await asyncio.wait_for(asyncio.shield(client.subscribed), 60)
    return client


async def _serve_parent(spec: ClientSpec, pipe: Connection) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    clients = await asyncio.gather(*(_open(spec, gate) for _ in range(spec.clients)))
    views = [client.view for client in clients]
    # The measuring side must not pause itself: move every object made so far out of the
    # collector's way, so a full collection during a phase walks only that phase's objects.
    gc.collect()
    gc.freeze()
    pipe.send(("ready", min(view.last_id for view in views)))
    while True:
        command, *args = await asyncio.to_thread(pipe.recv)
        if command == "stop":
            break
        final_id, timeout = args
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            view.last_id < final_id and not view.closed for view in views
        ):
            await asyncio.sleep(0.01)
        pipe.send(("collected", [_take(view) for view in views]))
    for client in clients:
        client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(view.closed for view in views):
        await asyncio.sleep(0.05)


def _take(view: Received) -> dict[str, Any]:
    taken = {
        "last_ids": view.last_ids,
        "times": view.times,
        "rows": view.rows,
        "in_order": view.in_order,
        "resyncs": view.resyncs,
        "closed": view.closed,
    }
    view.last_ids, view.times = [], []
    return taken


def client_process(spec: ClientSpec, pipe: Connection) -> None:
    """Entry point of one client process (spawned): run the clients until told to stop."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, spec.clients + 256)), hard))
    try:
        asyncio.run(_serve_parent(spec, pipe))
    except Exception as exc:  # reported to the parent, which stops the run with it
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def raw_websocket(host: str, port: int, token: str, origin: str | None = None) -> socket.socket:
    """Open a WebSocket by hand (the handshake only) with a small receive buffer.

    For a client that will never read: the buffer is set before connecting, so the window
    the hub sees is small too.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /live?token={token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Origin: {origin}\r\n" if origin else "")
        + "\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    if not response.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise RuntimeError(f"the hub refused the WebSocket: {response[:200]!r}")
    return sock


def masked_text_frame(payload: bytes) -> bytes:
    """One short text frame as a client sends it (masked)."""
    if len(payload) > 125:
        raise ValueError("a short frame only")
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def stalled_client(
    host: str,
    port: int,
    token: str,
    dataset: str,
    since: int,
    fallen_behind: Callable[[], bool],
) -> socket.socket:
    """Open a WebSocket by hand that never reads a byte, and fill the hub's buffers for it.

    It subscribes since ``since`` again and again (each time the hub queues the backlog
    for it: keep it under the hub's max_points, or a short resync comes instead) until
    ``fallen_behind()`` says the hub gave up on it with a resync: from then on it is a
    stalled client on the slow path, not merely an idle socket.
    """
    sock = raw_websocket(host, port, token)
    subscribe = {"type": "subscribe", "dataset": dataset, "since": since}
    message = masked_text_frame(orjson.dumps(subscribe))
    for _ in range(STALL_ATTEMPTS):
        sock.sendall(message)  # one at a time: a backlog of them would fall in the phase
        time.sleep(0.05)
        if fallen_behind():
            return sock
    sock.close()
    raise RuntimeError("the hub never gave up on the stalled client; its buffers did not fill")


class ClientFleet:
    """The parent's side: start the client processes, wait for them, collect their receipts."""

    def __init__(self, spec: ClientSpec, processes: int, ready_timeout: float = 180.0) -> None:
        self.spec = spec
        self.processes = processes
        self.ready_timeout = ready_timeout
        self._pipes: list[Connection] = []
        self._children: list[BaseProcess] = []

    def __enter__(self) -> ClientFleet:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding sockets
        share, extra = divmod(self.spec.clients, self.processes)
        for index in range(self.processes):
            parent, child = context.Pipe()
            spec = replace(self.spec, clients=share + (1 if index < extra else 0))
            process = context.Process(
                target=client_process, args=(spec, child), name=f"bench-clients-{index}"
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._children.append(process)
        try:
            self._replies("ready", self.ready_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def collect(self, final_id: int, timeout: float) -> list[dict[str, Any]]:
        """Every client's messages since the last collect, once all have seen ``final_id``."""
        for pipe in self._pipes:
            pipe.send(("collect", final_id, timeout))
        views: list[dict[str, Any]] = []
        for reply in self._replies("collected", timeout + 30):
            views += reply
        return views

    def _replies(self, expected: str, timeout: float) -> list[Any]:
        replies = []
        for pipe in self._pipes:
            if not pipe.poll(timeout):
                raise RuntimeError(f"a client process did not answer ({expected}) in {timeout}s")
            kind, value = pipe.recv()
            if kind != expected:
                raise RuntimeError(f"a client process failed: {value}")
            replies.append(value)
        return replies

    def __exit__(self, *exc: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self._children:
            process.join(timeout=15)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()
