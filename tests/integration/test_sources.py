"""sources/ against a real PostgreSQL: counts, rates, NOTIFY wake-ups, one query per tick
for many subscribers, statement_timeout, outage and recovery, the partial index.

Each test drives the async hub with asyncio.run(); waits have deadlines (failing the
test with a message), never timing assertions: "woken by NOTIFY" is proven by a
3600 s poll interval and the reading's cause, not by a stopwatch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest

from backlog_operator.policy.types import Signals
from backlog_operator.sources import hub as hublib
from backlog_operator.sources import queries
from backlog_operator.sources.pool import PoolRegistry, PoolSettings
from backlog_operator.sources.subscriber import Reading, Subscriber, Subscription

pytestmark = pytest.mark.integration

NEVER = 3600.0  # a poll interval no test waits for
T = TypeVar("T")


def insert_jobs(
    dsn: str,
    stage: str,
    state: str,
    count: int,
    *,
    age_s: float = 0.0,
    retry_in_s: float | None = None,
) -> None:
    """`count` jobs (each with its own document) last updated `age_s` seconds ago."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            WITH d AS (
                INSERT INTO upload_pipeline.documents (filename)
                SELECT 'doc-' || i FROM generate_series(1, %(n)s) AS i
                RETURNING document_id)
            INSERT INTO upload_pipeline.upload_jobs
                (document_id, stage, state, retry_at, created_at, updated_at)
            SELECT document_id, %(stage)s, %(state)s,
                   now() + make_interval(secs => %(retry)s),
                   now() - make_interval(secs => %(age)s), now() - make_interval(secs => %(age)s)
            FROM d
            """,
            {"n": count, "stage": stage, "state": state, "retry": retry_in_s, "age": age_s},
        )


def insert_events(
    dsn: str, stage: str, count: int, *, seconds: float | None = None, age_s: float = 1.0
) -> None:
    """`count` stage_done events of `stage`, `age_s` seconds old, recording `seconds`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO upload_pipeline.events (stage, event_type, detail, created_at)
            SELECT %(stage)s, 'stage_done',
                   jsonb_strip_nulls(jsonb_build_object('seconds', %(seconds)s::float8)),
                   now() - make_interval(secs => %(age)s)
            FROM generate_series(1, %(n)s)
            """,
            {"stage": stage, "n": count, "seconds": seconds, "age": age_s},
        )


async def until(
    probe: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
) -> T:
    """probe()'s first truthy value; the test fails with `what` if none comes in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"gave up after {timeout:.0f}s waiting for {what} (last: {last!r})")


async def next_matching(
    sub: Subscriber, accept: Callable[[Reading], bool], what: str, timeout: float = 30.0
) -> Reading:
    """The first new reading that `accept`s, within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Reading | None = None
    while (left := deadline - loop.time()) > 0:
        try:
            last = await sub.next(timeout=left)
        except TimeoutError:
            break
        if accept(last):
            return last
    pytest.fail(f"no reading with {what} within {timeout:.0f}s (last: {last!r})")


def test_counts_rates_and_ages_for_a_mix_of_states(migrated_dsn: str) -> None:
    insert_jobs(migrated_dsn, "parsing", "queued", 3, age_s=40)
    insert_jobs(migrated_dsn, "parsing", "working", 2)
    insert_jobs(migrated_dsn, "parsing", "retryable", 1, retry_in_s=-5)  # due: ready
    insert_jobs(migrated_dsn, "parsing", "retryable", 2, retry_in_s=600)  # not yet
    insert_jobs(migrated_dsn, "parsing", "done", 4, age_s=500)
    insert_jobs(migrated_dsn, "parsing", "deadletter", 1)
    insert_jobs(migrated_dsn, "parsed", "queued", 1, age_s=10)
    insert_jobs(migrated_dsn, "chunking", "queued", 7)  # a stage the scaler does not watch
    insert_events(migrated_dsn, "job_validated", 6)  # arrivals to parsing
    insert_events(migrated_dsn, "job_validated", 50, age_s=600)  # outside the window
    insert_events(migrated_dsn, "parsing", 2, seconds=2.0)
    insert_events(migrated_dsn, "parsing", 1, seconds=5.0)  # parsing: 3 done, mean 3 s
    insert_events(migrated_dsn, "queued", 12)  # arrivals to job_validated (upstream)

    async def scenario() -> Reading:
        hubs = hublib.SignalHubs(hublib.HubSettings(window_s=60.0))
        try:
            spec = Subscription(
                stages=("parsing", "parsed"),
                upstream_stages=("job_validated",),
                poll_interval_s=NEVER,
            )
            sub = await hubs.subscribe(migrated_dsn, spec)
            return await sub.next(timeout=30)
        finally:
            await hubs.close()

    reading = asyncio.run(scenario())
    assert reading.error is None and reading.cause == "subscribe"
    s = reading.signals
    assert s.ok
    assert (s.ready, s.in_flight) == (3 + 1 + 1, 2)
    assert s.oldest_ready_seconds is not None and 40 <= s.oldest_ready_seconds < 400
    assert s.completion_rate_per_s == pytest.approx(3 / 60)
    # parsing gets job_validated's 6 completions, parsed gets parsing's 3.
    assert s.arrival_rate_per_s == pytest.approx((6 + 3) / 60)
    assert s.service_time_s == pytest.approx(3.0)
    assert s.upstream_arrival_rate_per_s == pytest.approx(12 / 60)
    by_stage = {r.stage: r for r in reading.stages}
    assert set(by_stage) == {"parsing", "parsed"}
    assert (by_stage["parsing"].ready, by_stage["parsing"].in_flight) == (4, 2)
    assert (by_stage["parsed"].ready, by_stage["parsed"].in_flight) == (1, 0)
    parsed_age = by_stage["parsed"].oldest_ready_s
    assert parsed_age is not None and 10 <= parsed_age < s.oldest_ready_seconds


def test_empty_stages_read_as_zero_with_ok_true(migrated_dsn: str) -> None:
    async def scenario() -> Reading:
        hubs = hublib.SignalHubs()
        try:
            sub = await hubs.subscribe(migrated_dsn, Subscription(stages=("embedding",)))
            return await sub.next(timeout=30)
        finally:
            await hubs.close()

    reading = asyncio.run(scenario())
    assert reading.signals == Signals(
        ready=0,
        in_flight=0,
        oldest_ready_seconds=None,
        arrival_rate_per_s=0.0,
        completion_rate_per_s=0.0,
        service_time_s=None,
        upstream_arrival_rate_per_s=None,
        ok=True,
    )


def test_notify_wakes_the_hub_only_for_watched_stages(migrated_dsn: str) -> None:
    async def scenario() -> None:
        hubs = hublib.SignalHubs()
        try:
            sub = await hubs.subscribe(
                migrated_dsn, Subscription(stages=("parsing",), poll_interval_s=NEVER)
            )
            first = await sub.next(timeout=30)
            assert first.cause == "subscribe" and first.signals.ready == 0
            await until(lambda: hubs.stats()[0].listening, "the listener to LISTEN")

            # A stage nobody watches: received, but no wake-up and no query.
            queries_before = hubs.stats()[0].queries
            insert_jobs(migrated_dsn, "embedding", "queued", 1)
            await until(lambda: hubs.stats()[0].notifies >= 1, "the embedding NOTIFY")
            stats = hubs.stats()[0]
            assert (stats.notify_wakeups, stats.queries) == (0, queries_before)

            # A watched stage: a reading comes long before the 3600 s poll.
            insert_jobs(migrated_dsn, "parsing", "queued", 2)
            woken = await sub.next(timeout=30)
            assert woken.cause == "notify"
            assert woken.signals.ready == 2
            stats = hubs.stats()[0]
            assert stats.notify_wakeups >= 1 and stats.notify_ticks >= 1
        finally:
            await hubs.close()

    asyncio.run(scenario())


def test_listen_false_subscriber_does_not_listen(migrated_dsn: str) -> None:
    async def scenario() -> hublib.HubStats:
        hubs = hublib.SignalHubs()
        try:
            spec = Subscription(stages=("parsing",), poll_interval_s=NEVER, listen=False)
            sub = await hubs.subscribe(migrated_dsn, spec)
            await sub.next(timeout=30)
            await asyncio.sleep(0.5)  # give a (wrongly) eager listener time to connect
            return hubs.stats()[0]
        finally:
            await hubs.close()

    stats = asyncio.run(scenario())
    assert stats.listening == frozenset()
    assert stats.listener_connects == 0  # no LISTEN connection held for nobody


def _statement_calls(dsn: str) -> int:
    """pg_stat_statements' count of stage_signals executions in this database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        row = conn.execute(
            """
            SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query LIKE '%%WITH wanted AS%%'
            """
        ).fetchone()
        assert row is not None
        return int(row[0])


def _ready_is(count: int, reading: Reading) -> bool:
    return reading.signals.ready == count


def _seq_from(seq: int, reading: Reading) -> bool:
    return reading.seq >= seq


def test_subscribers_on_one_dsn_share_one_pool_and_one_query_per_tick(migrated_dsn: str) -> None:
    _statement_calls(migrated_dsn)  # creates the extension before counting starts
    ticks = 4

    async def scenario() -> tuple[int, int, hublib.HubStats]:
        hubs = hublib.SignalHubs()
        try:
            parse = await hubs.subscribe(
                migrated_dsn, Subscription(stages=("parsing",), poll_interval_s=NEVER)
            )
            chunk = await hubs.subscribe(
                migrated_dsn, Subscription(stages=("chunking", "chunked"), poll_interval_s=NEVER)
            )
            await until(lambda: parse.latest and chunk.latest, "first readings of both")
            await until(lambda: hubs.stats()[0].listening, "the listener to LISTEN")
            assert hubs.pools.pool_count() == 1 and len(hubs.stats()) == 1
            await asyncio.sleep(0.3)  # let the subscribe-time ticks settle before counting
            seq = max(parse.latest.seq, chunk.latest.seq)  # type: ignore[union-attr]
            before = _statement_calls(migrated_dsn)
            stats_before = hubs.stats()[0]
            for i in range(1, ticks + 1):
                insert_jobs(migrated_dsn, "parsing", "queued", 1)
                a = await next_matching(parse, functools.partial(_ready_is, i), f"{i} ready")
                b = await next_matching(chunk, functools.partial(_seq_from, a.seq), "same tick")
                assert b.seq == a.seq > seq  # the same tick served both subscribers
                seq = a.seq
            stats = hubs.stats()[0]
            calls = _statement_calls(migrated_dsn) - before
            return calls, stats.queries - stats_before.queries, stats
        finally:
            await hubs.close()

    calls, counted, stats = asyncio.run(scenario())
    assert calls == counted  # the hub's counter agrees with the server's
    assert ticks <= calls <= ticks + 1  # one statement per tick, not one per subscriber
    assert stats.subscribers == 2 and stats.query_errors == 0


def test_pooled_connections_carry_statement_timeout(migrated_dsn: str) -> None:
    async def scenario() -> tuple[str, BaseException | None]:
        pools = PoolRegistry(PoolSettings(statement_timeout_ms=300))
        try:
            pool = await pools.acquire(migrated_dsn)
            async with pool.connection() as conn:
                shown = await (await conn.execute("SHOW statement_timeout")).fetchone()
                try:
                    await conn.execute("SELECT pg_sleep(3)")
                    caught: BaseException | None = None
                except psycopg.errors.QueryCanceled as exc:
                    caught = exc
            assert shown is not None
            return str(shown[0]), caught
        finally:
            await pools.close()

    shown, caught = asyncio.run(scenario())
    assert shown == "300ms"
    assert caught is not None and "statement timeout" in str(caught)


def test_a_blocked_query_times_out_into_a_failed_reading(migrated_dsn: str) -> None:
    async def scenario() -> tuple[Reading, Reading]:
        settings = hublib.HubSettings(pool=PoolSettings(statement_timeout_ms=200))
        hubs = hublib.SignalHubs(settings)
        try:
            spec = Subscription(stages=("parsing",), poll_interval_s=0.2, listen=False)
            insert_jobs(migrated_dsn, "parsing", "queued", 3)
            sub = await hubs.subscribe(migrated_dsn, spec)
            await next_matching(sub, lambda r: r.ok, "a first good reading")
            # An exclusive lock blocks the hub's SELECT until statement_timeout fires.
            async with await psycopg.AsyncConnection.connect(migrated_dsn) as locker:
                await locker.execute(
                    "LOCK TABLE upload_pipeline.upload_jobs IN ACCESS EXCLUSIVE MODE"
                )
                failed = await next_matching(sub, lambda r: not r.ok, "a failed reading")
                await locker.rollback()
            recovered = await next_matching(sub, lambda r: r.ok, "a good reading again")
            return failed, recovered
        finally:
            await hubs.close()

    failed, recovered = asyncio.run(scenario())
    assert failed.signals == Signals.failed()  # ok=False: the policy holds, never zero
    assert failed.error is not None and "statement timeout" in failed.error
    assert recovered.signals.ready == 3


def test_stopped_server_gives_failed_readings_then_recovers(
    private_pg_server: Any, private_migrated_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = "S3cret-Passw0rd-xyz"  # trust auth ignores it; it must never be shown
    dsn = private_migrated_dsn.replace("postgres@", f"postgres:{password}@")
    assert password in dsn
    insert_jobs(dsn, "parsing", "queued", 2)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[Reading, Reading, hublib.HubStats]:
        hubs = hublib.SignalHubs()
        try:
            sub = await hubs.subscribe(dsn, Subscription(stages=("parsing",), poll_interval_s=0.3))
            await next_matching(sub, lambda r: r.ok and r.signals.ready == 2, "2 ready")
            await until(lambda: hubs.stats()[0].listening, "the listener to LISTEN")
            await asyncio.to_thread(private_pg_server.stop)
            failed = await next_matching(sub, lambda r: not r.ok, "a failed reading")
            await asyncio.to_thread(private_pg_server.start)
            back = await next_matching(sub, lambda r: r.ok, "recovery", timeout=60)
            await until(lambda: hubs.stats()[0].listening, "the listener back", timeout=60)
            return failed, back, hubs.stats()[0]
        finally:
            await hubs.close()

    failed, back, stats = asyncio.run(scenario())
    assert failed.signals == Signals.failed()
    assert failed.error
    assert password not in failed.error and dsn not in failed.error
    assert back.signals.ready == 2
    assert stats.query_errors >= 1 and stats.listener_connects >= 2
    assert password not in str(stats)
    assert password not in caplog.text


def test_backlog_query_uses_the_partial_index(migrated_dsn: str) -> None:
    insert_jobs(migrated_dsn, "parsing", "done", 20000, age_s=3600)
    insert_jobs(migrated_dsn, "parsing", "queued", 50)
    insert_jobs(migrated_dsn, "parsing", "working", 5)
    insert_jobs(migrated_dsn, "parsing", "retryable", 5, retry_in_s=30)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE upload_pipeline.upload_jobs")
        plan = conn.execute(
            psycopg.sql.SQL("EXPLAIN (FORMAT TEXT) {}").format(
                queries.stage_signals("upload_pipeline", "upload_jobs")
            ),
            {"stages": ["parsing", "parsed"], "window_s": 60.0},
        ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "Index Only Scan using upload_jobs_active" in text, text  # the counts
    assert "using upload_jobs_queued_since" in text, text  # the oldest queued probe
    assert "using upload_jobs_retry_due" in text, text  # waiting retries, oldest due
    assert "Seq Scan on upload_jobs" not in text, text
