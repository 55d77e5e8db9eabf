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
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

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


async def _open(spec: ClientSpec, gate: asyncio.Semaphore) -> tuple[ClientConnection, int]:
    async with gate:
        ws = await connect(
            f"{spec.url}?token={mint_token(spec)}",
            compression=None,
            open_timeout=60,
            max_queue=None,  # the reader below keeps up; never let the library pause reading
        )
        await ws.send(subscribe_message(spec.dataset), text=True)
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] == "subscribed":
                return ws, int(message["last_id"] or 0)
            if message["type"] == "error":
                raise RuntimeError(f"subscribe refused: {message}")


async def _read(ws: ClientConnection, received: Received) -> None:
    try:
        async for raw in ws:
            at = time.monotonic()
            message = orjson.loads(raw)
            if message["type"] == "points":
                ids = message["ids"]
                received.in_order &= ids[0] > received.last_id
                received.in_order &= all(a < b for a, b in zip(ids, ids[1:], strict=False))
                received.rows += len(ids)
                received.last_id = ids[-1]
                received.last_ids.append(ids[-1])
                received.times.append(at)
            elif message["type"] == "resync":
                received.resyncs += 1
    except ConnectionClosed:
        pass
    received.closed = True


async def _serve_parent(spec: ClientSpec, pipe: Connection) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    opened = await asyncio.gather(*(_open(spec, gate) for _ in range(spec.clients)))
    views = [Received(last_id=last_id) for _, last_id in opened]
    readers = [
        asyncio.create_task(_read(ws, view)) for (ws, _), view in zip(opened, views, strict=True)
    ]
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
    for ws, _ in opened:
        await ws.close()
    await asyncio.gather(*readers, return_exceptions=True)


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
    host: str, port: int, token: str, dataset: str, fallen_behind: Callable[[], bool]
) -> socket.socket:
    """Open a WebSocket by hand that never reads a byte, and fill the hub's buffers for it.

    It subscribes since the first event again and again (each time the hub queues the whole
    backlog for it) until ``fallen_behind()`` says the hub gave up on it with a resync: from
    then on it is a stalled client on the slow path, not merely an idle socket.
    """
    sock = raw_websocket(host, port, token)
    message = masked_text_frame(orjson.dumps({"type": "subscribe", "dataset": dataset, "since": 0}))
    for _ in range(STALL_ATTEMPTS):
        sock.sendall(message)
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
