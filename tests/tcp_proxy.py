"""A TCP proxy for chaos tests: forwards to PostgreSQL until told to cut the network."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path


class TcpProxy:
    """Forward 127.0.0.1:``port`` to a PostgreSQL socket, on an event loop in a thread.

    ``cut()`` closes every open connection and resets new ones until ``restore()``: to the
    clients it looks like the network to the database went away.
    """

    def __init__(self, target: Path | tuple[str, int]) -> None:
        self.target = target  # a Unix socket path, or (host, port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._cut = False

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shut_down(self) -> None:
        await self._cut_all()
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the aborted transports close their sockets

    def cut(self) -> None:
        """Close all connections and refuse new ones."""
        self._call(self._cut_all())

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut = False

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _cut_all(self) -> None:
        self._cut = True
        for writer in list(self._open):
            _abort(writer)
        self._open.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            _abort(writer)
            return
        try:
            if isinstance(self.target, Path):
                upstream_reader, upstream = await asyncio.open_unix_connection(self.target)
            else:
                upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        self._open.update((writer, upstream))
        await asyncio.gather(
            self._pipe(reader, upstream),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )
        for end in (writer, upstream):
            self._open.discard(end)
            _abort(end)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._cut:
                break
            writer.write(data)
            await writer.drain()
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
