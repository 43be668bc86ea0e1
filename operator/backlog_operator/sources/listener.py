"""LISTEN on the pipeline's ready channels over one dedicated connection per database.

A pooled connection cannot LISTEN (it goes back to the pool), so each SignalHub owns
one Listener; it connects only while some subscriber listens. It LISTENs on the
channels it is asked to (`set_channels`), calls `on_notify(channel, payload)` for each
notification, and reconnects with exponential backoff when the server goes away;
`on_reconnect` lets the hub poll at once, because notifications sent while it was
disconnected are lost. Errors are scrubbed of the DSN.
Called by hub.py only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from backlog_operator.sources import dsn as dsnlib
from backlog_operator.sources import queries
from backlog_operator.sources.pool import PoolSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerSettings:
    """Reconnect backoff, and how often the loop re-checks its channel set."""

    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    recheck_s: float = 0.5


class Listener:
    """One LISTEN connection for one DSN; `run()` until `stop()`."""

    def __init__(
        self,
        dsn: str,
        on_notify: Callable[[str, str], None],
        on_reconnect: Callable[[], None],
        pool_settings: PoolSettings,
        settings: ListenerSettings,
    ) -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._pool_settings = pool_settings
        self._settings = settings
        self._channels: frozenset[str] = frozenset()
        self._stopping = asyncio.Event()
        self.connected = False
        self.listening: frozenset[str] = frozenset()  # channels LISTENed on right now
        self.connects = 0
        self.notifies = 0
        self.last_error: str | None = None

    def set_channels(self, channels: frozenset[str]) -> None:
        """The channels to listen on; applied within `recheck_s`."""
        self._channels = channels

    def stop(self) -> None:
        """Ask `run()` to return (within `recheck_s`)."""
        self._stopping.set()

    async def run(self) -> None:
        """Listen, reconnecting with backoff, until `stop()`."""
        backoff = self._settings.backoff_initial_s
        while not self._stopping.is_set():
            if not self._channels:  # nobody listens: hold no connection
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.recheck_s)
                continue
            try:
                await self._listen_once()
                backoff = self._settings.backoff_initial_s
            except (psycopg.Error, OSError) as exc:
                self.last_error = dsnlib.describe_error(exc, self._dsn)
                logger.warning(
                    "listener for %s lost: %s; retrying in %.1fs",
                    dsnlib.dsn_id(self._dsn),
                    self.last_error,
                    backoff,
                )
            finally:
                self.connected = False
                self.listening = frozenset()
            if self._stopping.is_set():
                break
            # The stop event doubles as an interruptible sleep.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, self._settings.backoff_max_s)

    async def _listen_once(self) -> None:
        kwargs = self._pool_settings.connection_kwargs()
        conn = await psycopg.AsyncConnection.connect(self._dsn, **kwargs)
        async with conn:
            listened: set[str] = set()
            self.connected = True
            self.connects += 1
            self.last_error = None
            if self.connects > 1:
                self._on_reconnect()  # notifications sent while we were away are lost
            while not self._stopping.is_set() and self._channels:
                wanted = set(self._channels)
                for channel in sorted(wanted - listened):
                    await conn.execute(queries.listen(channel))
                for channel in sorted(listened - wanted):
                    await conn.execute(queries.unlisten(channel))
                listened = wanted
                self.listening = frozenset(listened)
                async for notify in conn.notifies(timeout=self._settings.recheck_s):
                    self.notifies += 1
                    self._on_notify(notify.channel, notify.payload)
