"""The life of one ScaleTest inside the operator: observe, decide, enter, patch; repeat.

`run_scaletest(rt, body, stopped)` is what the kopf daemon (scaletest.handlers)
awaits. Every `sampleIntervalSeconds` it reads the run's row and progress from
PostgreSQL, samples the backlog and the scalers, asks the pure phase machine
(transitions.decide) whether to move, performs the effects of entering the new
phase (effects.enter) and patches the status, with an Event per phase change.
The phase comes from the status and the timeline from the database, so a
restarted operator resumes where the last one stopped. Transient trouble (the
Secret or the database unreachable) sets Ready=False and is retried; only a run
that cannot go on (an invalid trace, no results schema) ends Failed.
`finalize(rt, body)` is the deletion path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
import psycopg
from kubernetes import client

from backlog_operator.api.scaletest import Mode, Profile, SpecError, parse_spec
from backlog_operator.kube import secrets
from backlog_operator.scaletest import (
    analysis,
    effects,
    kubeio,
    profiles,
    runs,
    sampler,
    simulated,
    slo,
    status,
    transitions,
)
from backlog_operator.scaletest.context import RunContext, Runtime
from backlog_operator.scaletest.phases import Part, Phase, Verdict, part_of

log = logging.getLogger(__name__)

# sim.staged runs mode Simulated (scaletest.simulated adapts it).
SIMULATED_SUPPORTED = True
STATEMENT_TIMEOUT_MS = 120_000


class FatalRunError(Exception):
    """The run cannot go on; args are (reason, message)."""


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        dsn,
        autocommit=True,
        connect_timeout=10,
        application_name="backlog-operator-scaletest",
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    )


async def _prepare(rt: Runtime, ctx: RunContext) -> None:
    """Secret -> DSN, connection, results schema, run row, trace (once per connection)."""
    ref = ctx.spec.dsn_secret
    ctx.dsn = await rt.kube(secrets.read_secret_value, rt.api, ctx.namespace, ref.name, ref.key)
    ctx.conn = await _connect(ctx.dsn)
    cursor = await ctx.conn.execute("SELECT to_regclass('backlog_operator.scaletest_runs')")
    row = await cursor.fetchone()
    if row is None or row[0] is None:
        raise FatalRunError(
            "ResultsSchemaMissing",
            "the database has no backlog_operator.scaletest_runs table: "
            "run `backlog-operator db migrate` against it",
        )
    await runs.create(
        ctx.conn,
        run_id=ctx.run_id,
        namespace=ctx.namespace,
        name=ctx.name,
        uid=ctx.uid,
        spec=ctx.spec,
        raw_spec=ctx.raw_spec,
    )
    trace_ref = ctx.spec.load.trace
    if ctx.spec.load.profile is Profile.TRACE and trace_ref is not None and ctx.trace is None:
        try:
            text = await rt.kube(
                kubeio.read_config_map_key, rt.api, ctx.namespace, trace_ref.name, trace_ref.key
            )
            ctx.trace = profiles.parse_trace_csv(text)
        except kubeio.TraceNotFound as error:
            raise FatalRunError("TraceNotFound", str(error)) from None
        except profiles.TraceError as error:
            raise FatalRunError("TraceInvalid", f"spec.load.trace: {error}") from None


async def _patch(rt: Runtime, ctx: RunContext, patch: Mapping[str, Any]) -> None:
    stored = await rt.kube(kubeio.patch_status, rt.api, ctx.namespace, ctx.name, patch)
    ctx.status.update(stored or patch)


async def _event(rt: Runtime, ctx: RunContext, transition: transitions.Transition) -> None:
    try:
        await rt.kube(
            kubeio.post_event,
            rt.api,
            ctx.namespace,
            ctx.name,
            ctx.uid,
            status.phase_event(transition),
            datetime.now(UTC),
        )
    except client.ApiException as error:  # an Event is never worth failing a run for
        log.warning("run %s: event not posted: HTTP %s", ctx.run_id, error.status)


async def _analyze(rt: Runtime, ctx: RunContext, run: runs.Run, now: datetime) -> None:
    if ctx.spec.mode is Mode.SIMULATED:
        specs = await rt.kube(kubeio.read_scaler_specs, rt.api, ctx.namespace, ctx.spec.scalers)
        try:
            ctx.results = simulated.run(ctx.spec, specs, ctx.trace)
        except ValueError as error:  # a scaler spec or workload the simulator cannot model
            raise FatalRunError("SimulationFailed", str(error)) from None
        await analysis.store(ctx.db, ctx.run_id, Part.LOAD, ctx.results)
        await _patch(rt, ctx, {"results": ctx.results.to_status()})
        return
    _readings, scaler_stages = await rt.kube(
        kubeio.read_scalers, rt.api, ctx.namespace, ctx.spec.scalers
    )
    ctx.results = await analysis.analyze(
        ctx.db,
        run=run,
        spec=ctx.spec,
        scaler_stages=scaler_stages,
        now=now,
        pods_deleted=ctx.pods_deleted,
    )
    await _patch(rt, ctx, {"results": ctx.results.to_status()})


def _verdict_message(ctx: RunContext) -> str:
    results = ctx.results
    if results is None:
        return ""
    if results.verdict is Verdict.PASSED:
        return f"every SLO met ({len(results.slo)}): {results.done} jobs done"
    return "SLO not met: " + slo.describe_failures(results.slo)


async def observe(
    rt: Runtime, ctx: RunContext, run: runs.Run, now: datetime
) -> transitions.Observation:
    """One tick's observation; keeps producers and chaos running where the phase wants."""
    phase = ctx.phase
    if phase is Phase.PENDING:
        return transitions.Observation(phase, simulated_supported=SIMULATED_SUPPORTED)
    if phase is Phase.ANALYZING:
        if ctx.results is None:
            await _analyze(rt, ctx, run, now)
        assert ctx.results is not None
        return transitions.Observation(
            phase, verdict=ctx.results.verdict, verdict_message=_verdict_message(ctx)
        )
    part = part_of(phase)
    try:
        schedule = ctx.schedule(run, part)
    except SpecError as error:  # fromBaseline, but the baseline finished nothing
        raise FatalRunError("BaselineNotMeasured", str(error)) from None
    requested = run.requested(part)
    if requested is None:  # entered, but the stamp was lost: enter again
        requested = schedule.total
    started = run.started(part)
    if phase.producing and started is not None:
        ctx.start_producers(part, schedule)  # no-op while running; resumes after a restart
        if phase is Phase.LOADING:
            ctx.start_chaos(rt.api)
    produced = await runs.produced(ctx.db, ctx.run_id, part)
    counts = await runs.part_counts(ctx.db, ctx.run_id, part, ctx.spec.schema)
    readings: Mapping[str, sampler.ScalerReading] = {}
    if ctx.spec.scalers:
        readings, _ = await rt.kube(kubeio.read_scalers, rt.api, ctx.namespace, ctx.spec.scalers)
    await sampler.record(
        ctx.db,
        run_id=ctx.run_id,
        phase=phase,
        part=part,
        schema=ctx.spec.schema,
        produced=produced,
        scalers=readings,
        at=now,
    )
    progress = status.progress_patch(
        requested=requested,
        created=counts.created,
        done=counts.done,
        deadletter=counts.deadletter,
        pods_deleted=ctx.pods_deleted,
        requested_rate=schedule.mean_rate,
    )
    if progress != ctx.last_progress:
        await _patch(rt, ctx, progress)
        ctx.last_progress = progress
    return transitions.Observation(
        phase,
        produced=produced,
        requested=requested,
        finished=counts.finished,
        part_started_at=started,
        part_duration_seconds=schedule.duration_seconds,
        drain_started_at=run.load_finished_at,
    )


async def _move(
    rt: Runtime, ctx: RunContext, transition: transitions.Transition, run: runs.Run, now: datetime
) -> None:
    extra = await effects.enter(rt, ctx, transition, run, now) if ctx.conn else {}
    verdict = ctx.results.verdict if ctx.results and transition.target.terminal else None
    patch = status.phase_patch(
        ctx.status,
        transition,
        generation=ctx.generation,
        now=now,
        run_id=ctx.run_id,
        verdict=verdict,
        extra=extra,
    )
    await _patch(rt, ctx, patch)
    ctx.phase = transition.target
    log.info("run %s: %s (%s) %s", ctx.run_id, ctx.phase, transition.reason, transition.message)
    await _event(rt, ctx, transition)


async def tick(rt: Runtime, ctx: RunContext) -> bool:
    """Observe and move as far as the phase machine allows now; True once terminal."""
    while not ctx.phase.terminal:
        now = await runs.clock(ctx.db)
        run = await runs.get(ctx.db, ctx.run_id)
        assert run is not None, "the run row is created before the first tick"
        transition = transitions.decide(ctx.spec, await observe(rt, ctx, run, now), now)
        if transition is None:
            return False
        await _move(rt, ctx, transition, run, now)
    return True


async def _fail(rt: Runtime, ctx: RunContext, reason: str, message: str) -> None:
    transition = transitions.failed(reason, message)
    if ctx.conn is not None and not ctx.conn.closed:
        run = await runs.get(ctx.conn, ctx.run_id)
        if run is not None:
            await _move(rt, ctx, transition, run, await runs.clock(ctx.conn))
            return
    await ctx.stop_background()
    now = datetime.now(UTC)
    patch = status.phase_patch(
        ctx.status, transition, generation=ctx.generation, now=now, run_id=ctx.run_id
    )
    await _patch(rt, ctx, patch)
    ctx.phase = Phase.FAILED
    await _event(rt, ctx, transition)


async def _not_ready(rt: Runtime, ctx: RunContext, reason: str, message: str) -> None:
    log.warning("run %s: %s: %s", ctx.run_id, reason, message)
    if ctx.conn is not None:
        await ctx.conn.close()
        ctx.conn = None
    if status.ready_changed(ctx.status, False, reason):
        now = datetime.now(UTC)
        await _patch(
            rt, ctx, status.ready_patch(ctx.status, False, reason, message, ctx.generation, now)
        )


def context_from(body: Mapping[str, Any]) -> RunContext:
    meta = body["metadata"]
    current = dict(body.get("status") or {})
    return RunContext(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 1),
        spec=parse_spec(body["spec"]),
        raw_spec=dict(body["spec"]),
        run_id=current.get("runId") or runs.run_id_for(meta["name"], meta["uid"]),
        phase=Phase(current.get("phase") or Phase.PENDING),
        status=current,
        pods_deleted=int((current.get("progress") or {}).get("podsDeleted") or 0),
    )


async def run_scaletest(rt: Runtime, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
    """Drive one ScaleTest until it is terminal, deleted, or the operator stops."""
    try:
        ctx = context_from(body)
    except (SpecError, ValueError, KeyError) as error:
        meta = body["metadata"]
        await rt.kube(
            kubeio.patch_status,
            rt.api,
            meta["namespace"],
            meta["name"],
            {"phase": Phase.FAILED.value, "message": f"invalid spec: {error}"},
        )
        return
    if ctx.phase.terminal:
        return
    rt.active[ctx.run_id] = ctx
    try:
        while not stopped and not ctx.closing:
            try:
                if ctx.conn is None:
                    await _prepare(rt, ctx)
                    if status.ready_changed(ctx.status, True, "Connected"):
                        now = datetime.now(UTC)
                        await _patch(
                            rt,
                            ctx,
                            status.ready_patch(
                                ctx.status, True, "Connected", "", ctx.generation, now
                            ),
                        )
                if await tick(rt, ctx):
                    return
            except FatalRunError as error:
                await _fail(rt, ctx, *error.args)
                return
            except secrets.SecretError as error:
                await _not_ready(rt, ctx, "SecretError", str(error))
            except psycopg.Error as error:
                # Never the DSN: psycopg messages name host and database at most.
                await _not_ready(rt, ctx, "DatabaseError", type(error).__name__)
            await stopped.wait(ctx.spec.sample_interval_seconds)
    finally:
        rt.active.pop(ctx.run_id, None)
        await ctx.close()


async def finalize(rt: Runtime, body: kopf.Body) -> None:
    """Deletion: stop producers and chaos, clean up per `cleanup`; results rows stay."""
    try:
        ctx = context_from(body)
    except (SpecError, ValueError, KeyError):
        return
    running = rt.active.pop(ctx.run_id, None)
    if running is not None:
        await running.shut()
    verdict_text = ctx.status.get("verdict")
    verdict = Verdict(verdict_text) if verdict_text else None
    if not effects.should_clean(ctx.spec.cleanup, verdict):
        return
    try:
        ref = ctx.spec.dsn_secret
        ctx.dsn = await rt.kube(secrets.read_secret_value, rt.api, ctx.namespace, ref.name, ref.key)
        ctx.conn = await _connect(ctx.dsn)
        await effects.cleanup(ctx, verdict)
    except (secrets.SecretError, psycopg.Error) as error:
        # Never block a deletion (or a namespace's) on cleanup: the rows can go by hand.
        log.warning("run %s: cleanup skipped: %s", ctx.run_id, type(error).__name__)
    finally:
        await ctx.close()
