"""The live hub: PostgreSQL NOTIFY in, WebSocket messages out (``insightwave hub``, or in serve)."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading

from flask import Flask

from app.config import Config
from app.hub.access import HubAccess
from app.hub.hub import HubSettings, LiveHub


def settings_from(config: Config) -> HubSettings:
    return HubSettings(
        host=config.hub_host,
        port=config.hub_port,
        tick=config.hub_tick_ms / 1000,
        heartbeat=float(config.hub_heartbeat_seconds),
        max_clients=config.hub_max_clients,
        max_subscriptions=config.hub_max_subscriptions,
        queue_size=max(64, config.hub_max_subscriptions + 1),
        token_max_age=config.live_token_seconds,
        origins=config.hub_origins,
        metrics_token=config.metrics_token,
        proxy_count=config.proxy_count,
    )


def build_hub(server: Flask) -> LiveHub:
    """Make the hub of an app: its settings, database, secret key and access rules."""
    config: Config = server.config["INSIGHTWAVE"]
    return LiveHub(
        settings_from(config),
        server.config["SQLALCHEMY_DATABASE_URI"],
        server.config["SECRET_KEY"],
        HubAccess(server),
    )


class HubThread:
    """Run a hub on its own event loop in a background thread (``insightwave serve``)."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="insightwave-hub", daemon=True)

    def start(self, timeout: float = 10.0) -> int:
        """Start listening and return the bound port.

        :raises OSError: when the hub cannot listen (the port is taken, say).
        """
        self._thread.start()
        if not self._ready.wait(timeout) or self.hub.bound_port is None:
            raise OSError(f"the live hub did not start: {self._error or 'timed out'}")
        return self.hub.bound_port

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(
                self.hub.run(self._stop, ready=lambda _port: self._ready.set())
            )
        except BaseException as exc:  # reported to start(), which raises it in the caller
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()


def run_forever(hub: LiveHub) -> None:
    """Serve ``hub`` in this process until SIGTERM or Ctrl-C."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await hub.run(stop, ready=lambda port: print(f"Live hub listening on port {port}"))

    # The app built so far (Flask, Dash, plotly: ~150,000 objects) lives as long as the
    # process; frozen, a full collection no longer walks it, a pause each time of ~60 ms on
    # this machine that every client's next message would wait behind.
    gc.collect()
    gc.freeze()
    asyncio.run(main())
