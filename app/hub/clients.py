"""One connected client: a bounded send queue and the task that drains it.

A client that cannot keep up never slows the others or grows the hub's memory: when its
queue is full, its pending messages are dropped and it gets one ``resync`` per dataset
instead; until those are written, further points for it are dropped too.

A message for many clients is framed once (a server's frames are unmasked, so the bytes are
the same for everyone) and written straight to each socket whose queue is empty and whose
write buffer is below websockets' limit: no task switch and no per-client framing, which is
most of the cost of a fan-out to 1,000 clients. Anything else goes through the queue.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

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
        self._sending = False  # the writer task holds a message it has not finished sending

    def offer(self, message: bytes, frame: bytes | None = None) -> None:
        """Send or queue ``message``; a full queue turns into one resync per dataset.

        ``frame`` is the message already framed (``text_frame``), to write at once when
        nothing is waiting before it.
        """
        if self._resyncs_pending:
            self.stats["messages_dropped"] += 1
            return
        if frame is not None and self._writable():
            self.ws.transport.write(frame)
            self.stats["messages_sent"] += 1
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

    def _writable(self) -> bool:
        """Whether a frame may skip the queue: nothing before it, an open, unblocked socket."""
        ws = self.ws
        return (
            not self._sending
            and self._queue.empty()
            and ws.protocol.state is State.OPEN
            and not ws.protocol.extensions  # compression off: the frame is the same for all
            and not ws.transport.is_closing()
            and ws.transport.get_write_buffer_size() < ws.write_limit_high
        )

    async def write(self) -> None:
        """Send queued messages until the connection closes."""
        try:
            while True:
                message = await self._queue.get()
                self._sending = True
                await self.ws.send(message, text=True)
                self._sending = False
                self.stats["messages_sent"] += 1
                if self._resyncs_pending and message.startswith(b'{"type":"resync"'):
                    self._resyncs_pending -= 1
        except ConnectionClosed:
            return

    def unsubscribe_all(self) -> None:
        for feed in self.subscriptions.values():
            feed.subscribers.discard(self)
        self.subscriptions.clear()


def text_frame(message: bytes) -> bytes:
    """The bytes of ``message`` as one unmasked, uncompressed text frame."""
    return Frame(Opcode.TEXT, message).serialize(mask=False)


def broadcast(clients: Iterable[Client], message: bytes) -> None:
    """Offer one message to many clients, framed once."""
    frame = text_frame(message)
    for client in list(clients):
        client.offer(message, frame)
