"""One connected client: a bounded send queue and the task that drains it.

A client that cannot keep up never slows the others or grows the hub's memory: when its
queue is full, its pending messages are dropped and it gets one ``resync`` per dataset
instead; until those are written, further points for it are dropped too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from app.hub import protocol
from app.hub.tokens import LiveClaims

if TYPE_CHECKING:
    from app.hub.hub import Feed


class Client:
    """A WebSocket connection, what it subscribed to, and what waits to be sent to it."""

    def __init__(
        self, ws: ServerConnection, claims: LiveClaims, queue_size: int, stats: Counter[str]
    ) -> None:
        self.ws = ws
        self.claims = claims
        self.subscriptions: dict[str, Feed] = {}
        self.stats = stats
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self._resyncs_pending = 0

    def offer(self, message: bytes) -> None:
        """Queue ``message``; a full queue turns into one resync per subscribed dataset."""
        if self._resyncs_pending:
            self.stats["messages_dropped"] += 1
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._fall_behind()

    def offer_control(self, message: bytes) -> None:
        """Queue a reply the client asked for (subscribed, error), dropping points if need be."""
        if self._queue.full():
            self._fall_behind()
        self._queue.put_nowait(message)

    def _fall_behind(self) -> None:
        dropped = self._queue.qsize()
        while not self._queue.empty():
            self._queue.get_nowait()
        self.stats["messages_dropped"] += dropped + 1
        self.stats["resyncs"] += 1
        for name, feed in self.subscriptions.items():
            self._queue.put_nowait(protocol.resync(name, feed.cursor, "slow_client"))
            self._resyncs_pending += 1

    async def write(self) -> None:
        """Send queued messages until the connection closes."""
        try:
            while True:
                message = await self._queue.get()
                await self.ws.send(message, text=True)
                self.stats["messages_sent"] += 1
                if self._resyncs_pending and message.startswith(b'{"type":"resync"'):
                    self._resyncs_pending -= 1
        except ConnectionClosed:
            return

    def unsubscribe_all(self) -> None:
        for feed in self.subscriptions.values():
            feed.subscribers.discard(self)
        self.subscriptions.clear()
