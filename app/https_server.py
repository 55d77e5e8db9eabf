"""cheroot's WSGI server for ``serve --certfile``, made to stop within seconds whatever clients do.

cheroot hands every accepted connection to a worker thread at once, and the worker waits up to
``timeout`` (10 s) for its first request line; its ``stop`` then waits for the workers: up to
``shutdown_timeout`` (5 s) for each worker's connection, after which it shuts that one
connection's reading side and waits again, without limit. A connection still queued for a
worker is read only afterwards, for up to 10 s more, before that worker takes its stop request.
So idle connections (a browser keeps several open) held a SIGTERM for 5 s each round and
10 s per queued connection: 30 s and more. cheroot's forced close also goes through
``SSLSocket.shutdown``, which drops the TLS layer, so a worker still answering would go on in
plaintext.

This server knows its open connections. Its stop first shuts the reading side of each one
underneath TLS: a worker waiting for a request, and any queued connection, sees the end at
once, while responses being written finish. ``GRACE_SECONDS`` later it shuts both sides of any
connection still open, so a client that stopped reading cannot hold the stop either.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from cheroot.server import HTTPConnection
from cheroot.wsgi import Server

GRACE_SECONDS = 3.0  # for responses in progress; below cheroot's shutdown_timeout (5 s)


class _TrackedConnection(HTTPConnection):
    """A connection that its server can find again to end it."""

    def __init__(self, server: PromptStopServer, sock: Any, *args: Any) -> None:
        super().__init__(server, sock, *args)
        with server.open_connections_lock:
            server.open_connections.add(self)

    def close(self) -> None:
        with self.server.open_connections_lock:
            self.server.open_connections.discard(self)
        super().close()


class PromptStopServer(Server):
    """cheroot's WSGI server whose ``stop`` returns within about ``GRACE_SECONDS``."""

    ConnectionClass = _TrackedConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[HTTPConnection] = set()
        self.open_connections_lock = threading.Lock()

    def stop(self) -> None:
        """Stop accepting, end idle connections now and any others after the grace."""
        if not self.ready:
            return  # stopped already
        self._shut_connections(socket.SHUT_RD)
        cut = threading.Timer(GRACE_SECONDS, self._shut_connections, (socket.SHUT_RDWR,))
        cut.daemon = True
        cut.start()
        try:
            super().stop()
        finally:
            cut.cancel()

    def _shut_connections(self, how: int) -> None:
        with self.open_connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # closed meanwhile
                # The plain socket's shutdown: SSLSocket.shutdown would drop the TLS layer.
                socket.socket.shutdown(connection.socket, how)
