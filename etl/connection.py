"""psycopg connections from the SQLAlchemy-style URLs the app is configured with."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy.engine import make_url


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (postgresql+psycopg://...) into one libpq accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# TCP keepalives let a leader, worker or hub notice a silently dead server within seconds;
# the connection check lets the server end a long load whose worker has died, which frees
# that run's advisory lock at once instead of when the statement finishes.
_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "options": "-c client_connection_check_interval=1000",
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def connect(url: str, application_name: str = "insightwave-etl") -> psycopg.Connection[Any]:
    """Open an autocommit connection to a SQLAlchemy-style database URL."""
    return psycopg.connect(libpq_url(url), application_name=application_name, **_OPTIONS)


async def connect_async(url: str, application_name: str) -> psycopg.AsyncConnection[Any]:
    """Open an asyncio autocommit connection to a SQLAlchemy-style database URL."""
    return await psycopg.AsyncConnection.connect(
        libpq_url(url), application_name=application_name, **_OPTIONS
    )
