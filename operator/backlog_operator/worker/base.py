"""BaseWorker: claim -> handle -> advance, in batches, under leases, with a graceful drain.

The reference worker every experiment runs and the class users subclass: define
`async def handle_<stage>(self, job)` (or a plain `def`, run in a thread) for
real work; stages without one get the simulated handler (worker/simulate.py).
Started by worker/cli.py; the integration tests also run it in-process.

One process runs one asyncio loop with up to `concurrency` handler tasks, so
simulated sleeps overlap (docs/decisions/0004). Four connections, each used by
one task only: claims, completions (and the final release), lease upkeep
(heartbeat + reaper), LISTEN wake-ups. The shutdown contract: stop() stops
claiming; in-flight handlers get `grace_seconds`; finished work is flushed;
what is left is released to `queued` at once; run() returns.
"""

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from backlog_operator import pipeline
from backlog_operator.worker import backoff, simulate
from backlog_operator.worker.metrics import WorkerMetrics
from backlog_operator.worker.settings import WorkerSettings, claim_order
from backlog_operator.worker.store import AsyncConn, Claim, Completion, JobStore

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 10
TICK_SECONDS = 5.0
STALL_SECONDS = 30.0
MAX_FLUSH = 1000


@dataclass(frozen=True)
class Job:
    """What a stage handler sees. `attempt` counts from 1 within the current stage."""

    job_id: UUID
    document_id: UUID
    stage: str
    attempt: int
    payload: Mapping[str, Any]


Handler = Callable[[Job], Awaitable[None] | None]


class BaseWorker:
    """Runs the stages in `settings.stages` until stop() is called."""

    def __init__(
        self, dsn: str, settings: WorkerSettings, metrics: WorkerMetrics | None = None
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        self.name = settings.name
        self.metrics = metrics or WorkerMetrics()
        self.store = JobStore(settings.schema, self.name)
        self.rng = random.Random(settings.seed)
        self.ready = False
        self.started = False  # became ready at least once
        self.failed = False
        self._tick = time.monotonic()  # the upkeep loop's last turn: proof the loop is alive
        self._stages = claim_order(settings.stages)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # something may be ready: claim now
        self._capacity = asyncio.Event()  # a handler finished or a flush freed claims
        self._held: dict[str, Claim] = {}  # job id -> claim not yet flushed or released
        self._running: dict[str, asyncio.Task[None]] = {}
        self._work: dict[tuple[str, str], simulate.StageWork] = {}  # (payload, stage) cache
        self._counters: dict[tuple[str, str], Any] = {}  # metric children, looked up once
        self._histograms: dict[str, Any] = {}
        # The built-in simulation may be planned up front (and skipped when it is a no-op)
        # unless a subclass replaced how handlers are chosen or how simulation works.
        cls = type(self)
        self._builtin_simulation = (
            cls.simulate is BaseWorker.simulate and cls.handler_for is BaseWorker.handler_for
        )
        self._done: asyncio.Queue[Completion | None] = asyncio.Queue()

    # -- handlers -------------------------------------------------------------------------

    def handler_for(self, stage: str) -> Handler:
        """`handle_<stage>` when the subclass defines it, else the simulated handler."""
        handler: Handler | None = getattr(self, f"handle_{stage}", None)
        return handler if handler is not None else self.simulate

    async def simulate(self, job: Job) -> None:
        """Sleep for a service time drawn from the payload's workload; fail at its rate."""
        seconds, fails = simulate.plan(
            job.payload, job.stage, scale=self.settings.service_time_scale, rng=self.rng
        )
        await self._simulated(job.stage, seconds, fails)

    async def _simulated(self, stage: str, seconds: float, fails: bool) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)
        if fails:
            raise simulate.SimulatedFailure(f"simulated failure at stage {stage}")

    def _plan(self, claim: Claim) -> tuple[float, bool]:
        key = (claim.payload_text, claim.stage)
        work = self._work.get(key)
        if work is None:
            if len(self._work) > 4096:
                self._work.clear()
            work = self._work[key] = simulate.stage_work(claim.payload, claim.stage)
        return simulate.draw(work, scale=self.settings.service_time_scale, rng=self.rng)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """/healthz: no fatal error, and the event loop is turning (a handler that blocks
        it, such as CPU work in an `async def`, stalls claims and heartbeats alike)."""
        stalled = time.monotonic() - self._tick > max(STALL_SECONDS, 3 * TICK_SECONDS)
        return not self.failed and not stalled

    def stop(self) -> None:
        """Begin the graceful drain (signal handlers call this; so can tests)."""
        self._stopping.set()
        self._wake.set()
        self._capacity.set()

    async def run(self) -> None:
        """Connect, check the schema, work until stop(), drain. Raises on a fatal error."""
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(await self._connect()) for _ in range(3)]
            claim_conn, flush_conn, upkeep_conn = conns
            await self.store.check_schema(claim_conn)
            tasks = {
                asyncio.create_task(self._claim_loop(claim_conn), name="claim"),
                asyncio.create_task(self._flush_loop(flush_conn), name="flush"),
                asyncio.create_task(self._upkeep_loop(upkeep_conn), name="upkeep"),
            }
            if self.settings.listen:
                tasks.add(asyncio.create_task(self._listen_loop(), name="listen"))
            self.ready = self.started = True
            log.info("worker ready", extra={"fields": self._describe()})
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            crashed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            if crashed:
                self.failed = True
            await self._drain(tasks, flush_conn)
            if crashed:
                raise crashed[0].exception()  # type: ignore[misc]

    async def _connect(self) -> AsyncConn:
        return await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )

    async def _drain(self, tasks: set[asyncio.Task[None]], flush_conn: AsyncConn) -> None:
        self.ready = False
        self.stop()
        by_name = {t.get_name(): t for t in tasks}
        log.info("draining", extra={"fields": {"in_flight": len(self._running)}})
        with contextlib.suppress(Exception):
            await by_name["claim"]
        running = set(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        flusher = by_name["flush"]
        if not flusher.done():
            self._done.put_nowait(None)
            await flusher
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held = list(self._held.values())
        released = set()
        if held and not flush_conn.closed and not flusher.cancelled() and not flusher.exception():
            released = await self.store.release(flush_conn, held)
        for claim in held:
            if claim.job_id in released:
                self._count(claim.stage, "released")
        self._held.clear()
        self.metrics.in_flight.set(0)
        log.info("drained", extra={"fields": {"released": len(released)}})

    # -- claiming and handling ---------------------------------------------------------------

    def _free_slots(self) -> int:
        # Hold up to one extra batch while the previous one is being flushed (pipelining).
        s = self.settings
        return min(
            s.concurrency - len(self._running), s.concurrency + s.batch_size - len(self._held)
        )

    async def _claim_loop(self, conn: AsyncConn) -> None:
        s = self.settings
        threshold = max(1, min(s.batch_size, s.concurrency) // 2)
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._capacity.clear()
            free = self._free_slots()
            if free < threshold:
                await self._capacity.wait()
                continue
            limit = min(s.batch_size, free)
            self._wake.clear()
            started = loop.time()
            claims = await self.store.claim(conn, self._stages, limit, s.lease_seconds)
            self.metrics.claim_latency.observe(loop.time() - started)
            self.metrics.claim_batch.observe(len(claims))
            for claim in claims:
                self._start(claim)
            self.metrics.in_flight.set(len(self._held))
            if len(claims) < limit and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), s.poll_interval_seconds)

    def _start(self, claim: Claim) -> None:
        self._held[claim.job_id] = claim
        planned = None
        if self._builtin_simulation and getattr(self, f"handle_{claim.stage}", None) is None:
            planned = self._plan(claim)
            if planned[0] <= 0:  # nothing to wait for: finish inline, no task
                failure = None
                if planned[1]:
                    failure = simulate.SimulatedFailure(f"simulated failure at stage {claim.stage}")
                self._finish(claim, failure, 0.0)
                return
        task = asyncio.create_task(self._handle(claim, planned))
        self._running[claim.job_id] = task
        task.add_done_callback(functools.partial(self._handler_finished, claim.job_id))

    def _handler_finished(self, job_id: str, _task: "asyncio.Task[None]") -> None:
        self._running.pop(job_id, None)
        self._capacity.set()

    async def _handle(self, claim: Claim, planned: tuple[float, bool] | None) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            if planned is not None:
                await self._simulated(claim.stage, *planned)
            else:
                job = Job(
                    UUID(claim.job_id),
                    UUID(claim.document_id),
                    claim.stage,
                    claim.retry_count + 1,
                    claim.payload,
                )
                handler = self.handler_for(claim.stage)
                if inspect.iscoroutinefunction(handler):
                    await handler(job)
                else:
                    await asyncio.to_thread(handler, job)
        except Exception as error:  # any handler failure becomes a retry or a deadletter
            self._finish(claim, error, loop.time() - started)
        else:
            self._finish(claim, None, loop.time() - started)

    def _finish(self, claim: Claim, error: Exception | None, seconds: float) -> None:
        if error is None:
            completion = self._succeeded(claim, seconds)
        else:
            completion = self._failed(claim, error, seconds)
        histogram = self._histograms.get(claim.stage)
        if histogram is None:
            histogram = self._histograms[claim.stage] = self.metrics.processing.labels(claim.stage)
        histogram.observe(seconds)
        self._done.put_nowait(completion)

    def _count(self, stage: str, outcome: str) -> None:
        counter = self._counters.get((stage, outcome))
        if counter is None:
            counter = self._counters[(stage, outcome)] = self.metrics.jobs.labels(stage, outcome)
        counter.inc()

    def _succeeded(self, claim: Claim, seconds: float) -> Completion:
        following = pipeline.next_stage(claim.stage)
        if following is None:
            return Completion(claim, claim.stage, "done", 0, seconds=seconds)
        return Completion(claim, following, "queued", 0, seconds=seconds)

    def _failed(self, claim: Claim, error: Exception, seconds: float) -> Completion:
        s = self.settings
        retries = claim.retry_count + 1
        detail = {
            "type": type(error).__name__,
            "message": str(error)[:2000],
            "stage": claim.stage,
            "attempt": retries,
            "worker": self.name,
            "at": datetime.now(UTC).isoformat(),
        }
        if retries > s.max_retries:
            log.warning("deadletter", extra={"fields": {"job_id": str(claim.job_id), **detail}})
            return Completion(claim, claim.stage, "deadletter", retries, None, detail, seconds)
        delay = backoff.retry_delay(
            claim.retry_count,
            base_seconds=s.backoff_base_seconds,
            cap_seconds=s.backoff_cap_seconds,
            rng=self.rng,
        )
        log.info("retry", extra={"fields": {"job_id": str(claim.job_id), "delay": delay, **detail}})
        return Completion(claim, claim.stage, "retryable", retries, delay, detail, seconds)

    # -- writing results ----------------------------------------------------------------------

    async def _flush_loop(self, conn: AsyncConn) -> None:
        limit = min(max(self.settings.batch_size, self.settings.concurrency), MAX_FLUSH)
        finished = False
        while not finished:
            first = await self._done.get()
            batch: list[Completion] = []
            if first is None:
                finished = True
            else:
                batch.append(first)
            while not finished and len(batch) < limit and not self._done.empty():
                item = self._done.get_nowait()
                if item is None:
                    finished = True
                else:
                    batch.append(item)
            if batch:
                await self._write(conn, batch)

    async def _write(self, conn: AsyncConn, batch: list[Completion]) -> None:
        accepted = await self.store.complete(conn, batch)
        self.metrics.flush_batch.observe(len(batch))
        wake = False
        for completion in batch:
            claim = completion.claim
            self._held.pop(claim.job_id, None)
            if claim.job_id not in accepted:
                outcome = "fenced"
                log.warning("completion fenced", extra={"fields": {"job_id": str(claim.job_id)}})
            elif completion.next_state == "queued":
                outcome = "advanced"
                wake = wake or completion.next_stage in self._stages
            elif completion.next_state == "retryable":
                outcome = "retry"
            else:
                outcome = completion.next_state  # done | deadletter
            self._count(claim.stage, outcome)
        self.metrics.in_flight.set(len(self._held))
        self._capacity.set()
        if wake:
            self._wake.set()

    # -- lease upkeep and wake-ups ------------------------------------------------------------

    async def _upkeep_loop(self, conn: AsyncConn) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + s.effective_heartbeat_seconds
        next_reap = loop.time() + self.rng.uniform(0, s.reap_interval_seconds)  # spread workers
        while True:
            now = loop.time()
            if now >= next_reap:
                reaped = await self.store.reap(conn, s.max_retries, s.reap_batch)
                for row in reaped:
                    self._count(row.stage, "reaped")
                if reaped:
                    log.info("reaped expired leases", extra={"fields": {"jobs": len(reaped)}})
                    self._wake.set()
                next_reap = now + s.reap_interval_seconds * self.rng.uniform(0.8, 1.2)
            if now >= next_beat:
                await self.store.heartbeat(conn, list(self._held.values()), s.lease_seconds)
                next_beat = now + s.effective_heartbeat_seconds
            self._tick = time.monotonic()
            await asyncio.sleep(
                min(max(0.0, min(next_beat, next_reap) - loop.time()), TICK_SECONDS)
            )

    async def _listen_loop(self) -> None:
        channel = pipeline.ready_channel(self.settings.schema)
        try:
            async with await self._connect() as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                async for note in conn.notifies():
                    if note.payload in self._stages:
                        self._wake.set()
        except psycopg.Error as error:  # polling still works without wake-ups
            log.warning("LISTEN failed; polling only", extra={"fields": {"error": str(error)}})
            await self._stopping.wait()

    def _describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "worker": self.name,
            "stages": list(s.stages),
            "concurrency": s.concurrency,
            "batch_size": s.batch_size,
            "lease_seconds": s.lease_seconds,
            "max_retries": s.max_retries,
        }
