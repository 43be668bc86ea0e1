"""The state one ScaleTest daemon keeps in memory, and its background tasks.

Everything here can be lost: the phase lives in the status, the timeline and the
producers' progress in PostgreSQL, so a restarted operator rebuilds a
`RunContext` and carries on. It holds the DB connection, the parsed spec, the
schedules, and the producer and chaos tasks (started and stopped idempotently).
`Runtime` is shared by every daemon of the process. Used by scaletest/daemon.py
and scaletest/effects.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from kubernetes import client

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.kube import client as kube_client
from backlog_operator.scaletest import chaos, producers, profiles
from backlog_operator.scaletest.phases import Part, Phase
from backlog_operator.scaletest.results import Results
from backlog_operator.scaletest.runs import Run

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    """Shared by every ScaleTest daemon of one operator process."""

    api: client.ApiClient
    kube_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    # run_id -> context of the daemon driving it (the delete handler stops it through this)
    active: dict[str, RunContext] = field(default_factory=dict)

    @classmethod
    def create(cls, api: client.ApiClient | None = None) -> Runtime:
        return cls(api=api or kube_client.load_api_client())

    async def kube(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking kube call in a thread, a few at a time."""
        async with self.kube_slots:
            return await asyncio.to_thread(fn, *args)

    async def close(self) -> None:
        for ctx in list(self.active.values()):
            await ctx.stop_background()
        await asyncio.to_thread(self.api.close)


@dataclass
class RunContext:
    """One daemon's working memory (mutable; rebuilt from status + DB after a restart)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: ScaleTestSpec
    raw_spec: Mapping[str, Any]
    run_id: str
    phase: Phase
    status: dict[str, Any]
    dsn: str = ""
    conn: psycopg.AsyncConnection[Any] | None = None
    trace: tuple[float, ...] | None = None
    results: Results | None = None
    pods_deleted: int = 0
    last_progress: dict[str, Any] | None = None
    # Set by the delete handler: nothing may start again (the daemon may still tick once).
    closing: bool = False
    _producers: asyncio.Task[int] | None = None
    _producers_part: Part | None = None
    _producers_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _chaos: asyncio.Task[None] | None = None

    @property
    def db(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed:
            raise psycopg.OperationalError("not connected")
        return self.conn

    # -- schedules ------------------------------------------------------------------------

    def baseline_schedule(self) -> profiles.Schedule:
        baseline = self.spec.baseline
        assert baseline is not None
        return profiles.constant(
            baseline.rate_per_second, baseline.duration_seconds, self.spec.load.max_jobs
        )

    def load_schedule(self, run: Run) -> profiles.Schedule:
        """The load's schedule; the first total stored in the run row wins after a restart."""
        per_second = profiles.rates(
            self.spec.load, baseline_throughput=run.baseline_throughput, trace=self.trace
        )
        cap = max(0, self.spec.load.max_jobs - (run.baseline_requested or 0))
        if run.load_requested is not None:
            cap = min(cap, run.load_requested)
        return profiles.Schedule(per_second, cap)

    def schedule(self, run: Run, part: Part) -> profiles.Schedule:
        return self.baseline_schedule() if part is Part.BASELINE else self.load_schedule(run)

    # -- background tasks -----------------------------------------------------------------

    def producers_running(self, part: Part) -> bool:
        return (
            self._producers is not None
            and not self._producers.done()
            and self._producers_part is part
        )

    def start_producers(self, part: Part, schedule: profiles.Schedule) -> None:
        if self.closing or self.producers_running(part):
            return
        self._producers_stop = asyncio.Event()
        plan = producers.ProducerPlan(
            dsn=self.dsn,
            run_id=self.run_id,
            part=part,
            schedule=schedule,
            producers=self.spec.load.producers,
            schema=self.spec.schema,
            payload=producers.job_payload(self.run_id, part, self.spec.workload),
        )
        self._producers = asyncio.create_task(
            producers.run(plan, self._producers_stop), name=f"producers-{self.run_id}"
        )
        self._producers.add_done_callback(self._log_producers)
        self._producers_part = part

    def _log_producers(self, task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The next tick restarts them; progress is persisted, so nothing is lost.
            log.warning("run %s: producers stopped: %r", self.run_id, task.exception())

    async def stop_producers(self) -> None:
        task, self._producers = self._producers, None
        if task is None:
            return
        self._producers_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception as error:  # already logged by the done callback
            log.debug("producers ended with %r", error)

    def start_chaos(self, api: client.ApiClient) -> None:
        spec = self.spec.chaos
        if self.closing or spec is None or (self._chaos is not None and not self._chaos.done()):
            return

        def deleted(names: list[str]) -> None:
            self.pods_deleted += len(names)

        self._chaos = asyncio.create_task(
            chaos.run(
                api,
                self.namespace,
                spec.selector,
                every_seconds=float(spec.delete_pods_every_seconds),
                pods_per_round=spec.pods_per_round,
                seed=self.run_id,
                on_deleted=deleted,
            ),
            name=f"chaos-{self.run_id}",
        )

    async def stop_chaos(self) -> None:
        task, self._chaos = self._chaos, None
        if task is None:
            return
        task.cancel()
        # Cancelled on purpose; its errors were logged by the task itself.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def shut(self) -> None:
        """For deletion: stop the background tasks for good."""
        self.closing = True
        await self.stop_background()

    async def stop_background(self) -> None:
        await self.stop_chaos()
        await self.stop_producers()

    async def close(self) -> None:
        await self.stop_background()
        if self.conn is not None and not self.conn.closed:
            await self.conn.close()
        self.conn = None
