"""SignalHub: one grouped query per database per tick, fanned out to every subscribed scaler.

`SignalHubs` (one per operator process, created at startup) keeps one `SignalHub` per
distinct DSN. A scaler calls `await hubs.subscribe(dsn, Subscription(...))` and then
`await subscriber.next()` for each new `Reading`; `await subscriber.close()` when the
scaler goes away or its spec changes (then subscribe again).

A hub ticks every min(pollIntervalSeconds) of its subscribers, immediately when a
subscriber joins, and ~debounce_s after a relevant NOTIFY on the schema's ready channel.
Each tick runs ONE stage_signals statement per (schema, table) for the union of the
subscribers' stages and delivers to all of them (a reading may thus come earlier than a
scaler's own interval, never later). A failed, timed-out or NULL reading is delivered
as `Signals(ok=False)` with the error text, scrubbed of the DSN; never as zeros.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from backlog_operator import pipeline
from backlog_operator.sources import dsn as dsnlib
from backlog_operator.sources import flow, queries
from backlog_operator.sources.listener import Listener, ListenerSettings
from backlog_operator.sources.pool import PoolRegistry, PoolSettings
from backlog_operator.sources.subscriber import Reading, Subscriber, Subscription

logger = logging.getLogger(__name__)

# (db id, seconds, error or None): the metrics module turns this into a histogram.
QueryObserver = Callable[[str, float, str | None], None]


@dataclass(frozen=True)
class HubSettings:
    """Tunables of every hub; the operator's startup handler may override them."""

    window_s: float = 60.0  # rates and service times look this far back
    debounce_s: float = 0.1  # NOTIFYs within this delay share one query
    query_timeout_s: float = 5.0  # client-side bound on a tick; statement_timeout is the server's
    pool: PoolSettings = field(default_factory=PoolSettings)
    listener: ListenerSettings = field(default_factory=ListenerSettings)


@dataclass(frozen=True)
class HubStats:
    """Counters of one hub (one database), for metrics and tests. `db` is a hash, not the DSN."""

    db: str
    subscribers: int
    ticks: int
    queries: int
    query_errors: int
    query_seconds_total: float
    last_query_seconds: float | None
    notifies: int
    notify_wakeups: int  # notifies about a stage some subscriber watches
    notify_ticks: int
    listener_connected: bool
    listening: frozenset[str]
    listener_connects: int
    last_error: str | None


class SignalHub:
    """Readings for every subscriber on one DSN; started and stopped by SignalHubs."""

    def __init__(
        self,
        dsn: str,
        pool: AsyncConnectionPool,
        settings: HubSettings,
        observer: QueryObserver | None = None,
    ) -> None:
        self._dsn = dsn
        self.db = dsnlib.dsn_id(dsn)
        self._pool = pool
        self._settings = settings
        self._observer = observer
        self._subscribers: list[Subscriber] = []
        self._memory: dict[tuple[str, str], flow.FlowMemory] = {}
        self._wake = asyncio.Event()
        self._pending: str | None = None  # cause of the next immediate tick
        self._seq = 0
        self._listener = Listener(
            dsn, self._on_notify, self._on_reconnect, settings.pool, settings.listener
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._counts = dict.fromkeys(
            ("ticks", "queries", "errors", "notifies", "notify_wakeups", "notify_ticks"), 0
        )
        self._query_seconds = 0.0
        self._last_query_seconds: float | None = None
        self._last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the tick loop and the listener (it idles until a subscriber listens)."""
        self._tasks = [
            asyncio.create_task(self._run(), name=f"signal-hub-{self.db}"),
            asyncio.create_task(self._listener.run(), name=f"signal-listener-{self.db}"),
        ]

    async def stop(self) -> None:
        """Stop both tasks; subscribers get no further readings."""
        self._listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def add(self, subscriber: Subscriber) -> None:
        """Register `subscriber`; it gets a first reading at once."""
        self._subscribers.append(subscriber)
        self._update_channels()
        self._request("subscribe")

    def remove(self, subscriber: Subscriber) -> int:
        """Unregister `subscriber`; returns how many subscribers remain."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
        self._update_channels()
        return len(self._subscribers)

    def stats(self) -> HubStats:
        """A snapshot of the counters."""
        c = self._counts
        return HubStats(
            db=self.db,
            subscribers=len(self._subscribers),
            ticks=c["ticks"],
            queries=c["queries"],
            query_errors=c["errors"],
            query_seconds_total=self._query_seconds,
            last_query_seconds=self._last_query_seconds,
            notifies=c["notifies"],
            notify_wakeups=c["notify_wakeups"],
            notify_ticks=c["notify_ticks"],
            listener_connected=self._listener.connected,
            listening=self._listener.listening,
            listener_connects=self._listener.connects,
            last_error=self._last_error or self._listener.last_error,
        )

    # --- wake-ups ----------------------------------------------------------------------

    def _request(self, cause: str) -> None:
        if self._pending is None or cause == "subscribe":
            self._pending = cause
        self._wake.set()

    def _update_channels(self) -> None:
        schemas = {s.spec.schema for s in self._subscribers if s.spec.listen}
        self._listener.set_channels(frozenset(pipeline.ready_channel(s) for s in schemas))

    def _on_notify(self, channel: str, payload: str) -> None:
        self._counts["notifies"] += 1
        for sub in self._subscribers:
            spec = sub.spec
            mine = spec.listen and pipeline.ready_channel(spec.schema) == channel
            # An empty payload (another producer's trigger) wakes every listener on the schema.
            relevant = not payload or payload in spec.stages + spec.upstream_stages
            if mine and relevant:
                self._counts["notify_wakeups"] += 1
                self._request("notify")
                return

    def _on_reconnect(self) -> None:
        self._request("reconnect")

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_tick = float("-inf")
        while True:
            if not self._subscribers and self._pending is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            interval = min((s.spec.poll_interval_s for s in self._subscribers), default=1.0)
            wait = last_tick + interval - loop.time()
            if self._pending is None and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                self._wake.clear()
                continue  # re-evaluate: a subscriber may have joined, a NOTIFY arrived
            cause = self._pending or "poll"
            if cause == "notify":
                await asyncio.sleep(self._settings.debounce_s)  # let the burst land
                self._counts["notify_ticks"] += 1
            self._pending = None
            self._wake.clear()
            last_tick = loop.time()
            try:
                await self._tick(cause)
            except Exception:  # a bug here must not silence every scaler on the database
                logger.exception("signal hub %s: tick failed", self.db)

    async def _tick(self, cause: str) -> None:
        self._counts["ticks"] += 1
        groups: dict[tuple[str, str], list[Subscriber]] = {}
        for sub in list(self._subscribers):
            groups.setdefault((sub.spec.schema, sub.spec.table), []).append(sub)
        for (schema, table), subs in groups.items():
            wanted = {s for sub in subs for s in sub.spec.stages + sub.spec.upstream_stages}
            stages = flow.query_stages(wanted)
            at = asyncio.get_running_loop().time()
            rows, error = await self._query(schema, table, stages)
            self._seq += 1
            if rows is None:
                for sub in subs:
                    sub.deliver(Reading.failed(self._seq, at, cause, error or "no reading"))
                continue
            memory = self._memory.get((schema, table), flow.FlowMemory())
            readings, self._memory[(schema, table)] = flow.stage_readings(
                rows, at, self._settings.window_s, memory
            )
            for sub in subs:
                spec = sub.spec
                signals = flow.signals_for(readings, spec.stages, spec.upstream_stages)
                per_stage = tuple(readings[s] for s in spec.stages)
                sub.deliver(Reading(self._seq, signals, per_stage, None, at, cause))

    async def _query(
        self, schema: str, table: str, stages: tuple[str, ...]
    ) -> tuple[dict[str, queries.StageRow] | None, str | None]:
        """Rows keyed by stage, or (None, scrubbed error)."""
        statement = queries.stage_signals(schema, table)
        params = {"stages": list(stages), "window_s": self._settings.window_s}
        started = time.perf_counter()
        error: str | None = None
        rows: dict[str, queries.StageRow] | None = None
        self._counts["queries"] += 1
        try:
            async with asyncio.timeout(self._settings.query_timeout_s):
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(statement, params)
                    rows = queries.parse_rows(await cursor.fetchall(), stages)
        except Exception as exc:  # every failure is a failed reading, never zeros
            error = dsnlib.describe_error(exc, self._dsn)
            self._counts["errors"] += 1
            logger.warning("signal hub %s: query failed: %s", self.db, error)
        seconds = time.perf_counter() - started
        self._query_seconds += seconds
        self._last_query_seconds = seconds
        self._last_error = error
        if self._observer is not None:
            self._observer(self.db, seconds, error)
        return rows, error


class SignalHubs:
    """One SignalHub per DSN, created on first subscription and closed with the last."""

    def __init__(
        self, settings: HubSettings | None = None, observer: QueryObserver | None = None
    ) -> None:
        self.settings = settings or HubSettings()
        self.pools = PoolRegistry(self.settings.pool)
        self._observer = observer
        self._hubs: dict[str, SignalHub] = {}
        self._lock = asyncio.Lock()

    async def subscribe(self, dsn: str, spec: Subscription) -> Subscriber:
        """A new subscriber on `dsn`'s hub; its first reading comes at once."""
        async with self._lock:
            hub = self._hubs.get(dsn)
            if hub is None:
                pool = await self.pools.acquire(dsn)
                hub = self._hubs[dsn] = SignalHub(dsn, pool, self.settings, self._observer)
                hub.start()
            subscriber = Subscriber(spec, self._closer(dsn))
            hub.add(subscriber)
            return subscriber

    def _closer(self, dsn: str) -> Callable[[Subscriber], Awaitable[None]]:
        async def close(subscriber: Subscriber) -> None:
            async with self._lock:
                hub = self._hubs.get(dsn)
                if hub is None or hub.remove(subscriber) > 0:
                    return
                del self._hubs[dsn]
            await hub.stop()
            await self.pools.release(dsn)

        return close

    def stats(self) -> list[HubStats]:
        """Counters of every live hub."""
        return [hub.stats() for hub in self._hubs.values()]

    async def close(self) -> None:
        """Stop every hub and close every pool (operator shutdown)."""
        async with self._lock:
            hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            await hub.stop()
        await self.pools.close()
