"""Where ingest data comes from: a file, an HTTP URL, or the synthetic demo stream."""

from __future__ import annotations

import io
import ipaddress
import math
import random
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

MAX_URL_BYTES = 512 * 1024 * 1024
URL_TIMEOUT_SECONDS = 30
DEMO_SENSORS = ("north", "south", "east", "west")


class SourceError(RuntimeError):
    """The source could not be read now; a later attempt may succeed."""


class _Limited(io.RawIOBase):
    """A read-only stream that refuses to go past ``limit`` bytes."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner, self._left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._left -= len(data)
        if self._left < 0:
            raise SourceError(f"the download is larger than {MAX_URL_BYTES // 2**20} MiB")
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_source(kind: str, source: dict[str, Any]) -> Iterator[BinaryIO]:
    """Open the bytes of a source described by ``kind`` and ``source``.

    :raises SourceError: when it cannot be reached (worth retrying).
    """
    if kind in {"file", "upload"}:
        path = Path(str(source["path"]))
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror}") from exc
        with handle:
            yield handle
    elif kind == "url":
        with _open_url(str(source["url"])) as response:
            yield io.BufferedReader(_Limited(response, MAX_URL_BYTES))
    elif kind == "demo":
        yield io.BytesIO(demo_csv(int(source.get("rows", 20))))
    else:
        raise ValueError(f"unknown source kind {kind!r}")


def check_url(url: str) -> str:
    """Return ``url`` if it is an http(s) URL, else raise ValueError."""
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


def check_public_url(url: str) -> str:
    """Return ``url`` if it is http(s) and its host resolves only to public addresses.

    Jobs made in the browser use this, so a signed-in user cannot make the server fetch
    from itself or its private network; operators may still pull such URLs from the CLI.
    """
    host = urllib.parse.urlsplit(check_url(url)).hostname
    if not host:
        raise ValueError(f"{url!r} names no host")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    for address in addresses:
        if not ipaddress.ip_address(str(address).split("%")[0]).is_global:
            raise ValueError(f"{host!r} is a local or private address; only public URLs here")
    return url


@contextmanager
def _open_url(url: str) -> Iterator[BinaryIO]:
    request = urllib.request.Request(  # noqa: S310 (scheme checked by check_url)
        check_url(url), headers={"User-Agent": "insightwave-ingest"}
    )
    try:
        response = urllib.request.urlopen(request, timeout=URL_TIMEOUT_SECONDS)  # noqa: S310
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SourceError(f"cannot fetch {url}: {exc}") from exc
    with response:
        yield response


def demo_csv(rows: int, now: datetime | None = None) -> bytes:
    """Return ``rows`` synthetic sensor readings ending at ``now``, as CSV."""
    end = now or datetime.now(UTC)
    lines = ["time,sensor,temperature,humidity"]
    for index in range(rows):
        moment = end - timedelta(milliseconds=(rows - index) * 50)
        sensor = DEMO_SENSORS[index % len(DEMO_SENSORS)]
        wave = math.sin(moment.timestamp() / 60 + index % len(DEMO_SENSORS))
        temperature = 18 + 6 * wave + random.gauss(0, 0.4)  # noqa: S311 (demo data)
        humidity = 55 - 15 * wave + random.gauss(0, 1.5)  # noqa: S311
        lines.append(f"{moment.isoformat()},{sensor},{temperature:.2f},{humidity:.1f}")
    return ("\n".join(lines) + "\n").encode()
