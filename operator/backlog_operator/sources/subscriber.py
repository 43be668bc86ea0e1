"""What a scaler gives the signal hub (Subscription) and gets back (Reading, Subscriber).

Called by the scaler handlers (kopf) through `hub.SignalHubs.subscribe`; hub.py
delivers readings. Only the latest reading is kept: a slow consumer sees the freshest
one, never a queue of stale ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backlog_operator import pipeline
from backlog_operator.policy.types import Signals
from backlog_operator.sources.flow import StageReading

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")  # the CRD's pattern, checked again here


@dataclass(frozen=True)
class Subscription:
    """Which stages of which table a scaler watches, and how often it wants a reading."""

    stages: tuple[str, ...]
    schema: str = pipeline.DEFAULT_SCHEMA
    table: str = pipeline.DEFAULT_TABLE
    upstream_stages: tuple[str, ...] = ()
    poll_interval_s: float = 5.0
    listen: bool = True

    def __post_init__(self) -> None:
        for name in (self.schema, self.table):
            if not _IDENTIFIER.match(name) or len(name) > 63:
                raise ValueError(f"not a plain SQL identifier: {name!r}")
        unknown = set(self.stages + self.upstream_stages) - set(pipeline.STAGES)
        if unknown or not self.stages:
            raise ValueError(f"unknown or missing stages: {sorted(unknown)}")
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")


@dataclass(frozen=True)
class Reading:
    """One delivery: the scaler's Signals, its stages one by one, and why it came.

    `at` is the event loop's clock when the query started; `cause` is one of
    subscribe, poll, notify, reconnect. `error` is set (scrubbed) when signals.ok is False.
    """

    seq: int
    signals: Signals
    stages: tuple[StageReading, ...]
    error: str | None
    at: float
    cause: str

    @property
    def ok(self) -> bool:
        return self.signals.ok

    @classmethod
    def failed(cls, seq: int, at: float, cause: str, error: str) -> Reading:
        """A failed reading: the policy holds (or falls back), it never scales to zero."""
        return cls(seq, Signals.failed(), (), error, at, cause)


class Subscriber:
    """A scaler's handle: `await next()` for each new reading, `await close()` at the end."""

    def __init__(self, spec: Subscription, on_close: Callable[[Subscriber], Awaitable[None]]):
        self.spec = spec
        self._on_close = on_close
        self._latest: Reading | None = None
        self._seen = 0
        self._event = asyncio.Event()
        self.deliveries = 0
        self.closed = False

    @property
    def latest(self) -> Reading | None:
        """The newest reading delivered so far (None before the first)."""
        return self._latest

    def deliver(self, reading: Reading) -> None:
        """Called by the hub."""
        self._latest = reading
        self.deliveries += 1
        self._event.set()

    async def next(self, timeout: float | None = None) -> Reading:
        """The next reading newer than the last one returned; TimeoutError after `timeout`."""
        while self._latest is None or self._latest.seq <= self._seen:
            self._event.clear()
            await asyncio.wait_for(self._event.wait(), timeout)
        self._seen = self._latest.seq
        return self._latest

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Reading:
        if self.closed:
            raise StopAsyncIteration
        return await self.next()

    async def close(self) -> None:
        """Leave the hub; the last subscriber of a database closes its pool."""
        if not self.closed:
            self.closed = True
            await self._on_close(self)
