"""One reconcile tick of one BacklogScaler: decide -> actuate -> report.

`tick(rt, ctx, reading, state, clock)` reads the target's /scale, asks
`policy.decide` for the replicas, annotates pod-deletion-cost before a
drain-aware scale-in, patches /scale only when the count differs, posts Events
on scales and on source failures/recoveries, records metrics and patches the
status when it changed. `report_problem` does the reporting half alone when
there is nothing to decide (invalid spec, unreadable Secret). Called by
scaler.loop; every Kubernetes write goes through kube/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from kubernetes import client

from backlog_operator import metrics, policy
from backlog_operator.api.backlogscaler import BacklogScalerSpec
from backlog_operator.kube import deletion_cost, events, scalers, status
from backlog_operator.kube.scale import Scale, TargetNotFound, TargetRef
from backlog_operator.scaler import claims
from backlog_operator.scaler.runtime import Runtime
from backlog_operator.sources import dsn as dsnlib
from backlog_operator.sources.subscriber import Reading

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Clock:
    """`mono` feeds the policy (its windows); `wall` stamps status and Events."""

    mono: float
    wall: datetime


@dataclass(frozen=True)
class ScalerContext:
    """Who we are reconciling and with what spec (re-read from the live body each tick)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: BacklogScalerSpec
    dsn: str
    paused_by: str | None  # "spec" | "annotation" | None

    def involved(self) -> events.InvolvedObject:
        return events.InvolvedObject(
            scalers.API_VERSION, scalers.KIND, self.name, self.namespace, self.uid
        )


@dataclass(frozen=True)
class ScalerState:
    """Memory of one scaler between ticks (lost on restart: then it starts cautious)."""

    history: policy.ScalerHistory = field(default_factory=policy.ScalerHistory)
    last_scale_time: datetime | None = None
    last_scale_reason: str | None = None
    error_reason: str | None = None  # Ready=False reason of the previous tick
    fallback: bool = False
    paused_by: str | None = None
    status: Mapping[str, Any] | None = None  # what we last stored
    status_at: float | None = None  # Clock.mono of that patch
    # The target's /scale, re-read every `scale_refresh_s` and before any patch.
    scale: Scale | None = None
    scale_ref: TargetRef | None = None
    scale_at: float | None = None


async def kube_call(rt: Runtime, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking kube/ call in a thread, at most `kube_slots` at a time."""
    async with rt.kube_slots:
        return await asyncio.to_thread(fn, *args)


def _problem_health(reason: str, message: str, paused_by: str | None) -> status.Health:
    return status.Health(paused_by=paused_by, error_reason=reason, error_message=message)


async def report_problem(
    rt: Runtime,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    reason: str,
    message: str,
    state: ScalerState,
    clock: Clock,
) -> ScalerState:
    """Ready=False with `reason` (an Event on the transition); nothing is scaled."""
    obj = events.InvolvedObject(scalers.API_VERSION, scalers.KIND, name, namespace, uid)
    if state.error_reason != reason:
        await _post(rt, obj, events.Event(events.WARNING, reason, message), clock)
    report = status.StatusReport(generation, _problem_health(reason, message, None))
    state = dataclasses.replace(state, error_reason=reason)
    return await _store_status(rt, namespace, name, report, state, clock)


async def tick(
    rt: Runtime, ctx: ScalerContext, reading: Reading, state: ScalerState, clock: Clock
) -> ScalerState:
    """One decide -> actuate -> report round for `reading`."""
    spec = ctx.spec
    ref = TargetRef(
        spec.scale_target_ref.api_version, spec.scale_target_ref.kind, spec.scale_target_ref.name
    )
    obj = ctx.involved()
    await _paused_events(rt, obj, ctx.paused_by, state, clock)
    state = dataclasses.replace(state, paused_by=ctx.paused_by)
    config = spec.scaler
    if ctx.paused_by is not None:
        config = dataclasses.replace(config, paused=True)
    cached = state.scale is not None and state.scale_ref == ref and state.scale_at is not None
    fresh_enough = cached and clock.mono - (state.scale_at or 0.0) < rt.options.scale_refresh_s
    for attempt in range(2):
        if attempt == 1 or not fresh_enough:
            try:
                read = await kube_call(rt, rt.scales.read, ref, ctx.namespace)
            except TargetNotFound as error:
                return await _fail(rt, ctx, status.TARGET_NOT_FOUND, str(error), state, clock)
            except client.ApiException as error:
                message = f"reading {ref.describe()}/scale: HTTP {error.status} {error.reason}"
                return await _fail(rt, ctx, status.SCALE_ERROR, message, state, clock)
            state = dataclasses.replace(state, scale=read, scale_ref=ref, scale_at=clock.mono)
            fresh_enough = False  # this reading is fresh: no second attempt needed
        assert state.scale is not None
        scale: Scale = state.scale
        decision = policy.decide(config, reading.signals, scale.replicas, state.history, clock.mono)
        # A cached /scale only ever confirms "nothing to do": act on a fresh one.
        if not (decision.changed and fresh_enough):
            break
    unscaled_history = state.history
    state = dataclasses.replace(state, history=decision.history)
    await _source_events(rt, obj, reading, decision, state, clock)

    error_reason: str | None = None
    error_message = ""
    if not reading.ok:
        error_reason, error_message = status.SOURCE_ERROR, reading.error or "reading failed"
    if decision.changed and ctx.paused_by is None:
        try:
            state = await _actuate(rt, ctx, ref, scale, decision, state, clock)
        except Exception as error:  # reported, retried next tick
            logger.warning(
                "%s/%s: scaling failed: %s",
                ctx.namespace,
                ctx.name,
                dsnlib.describe_error(error, ctx.dsn),
            )
            error_reason = status.SCALE_ERROR
            error_message = dsnlib.describe_error(error, ctx.dsn)
            # decide() recorded this change for the behavior limits; it did not happen,
            # so forget it or the retry next tick would be throttled by a phantom scale.
            state = dataclasses.replace(state, history=unscaled_history)

    health = status.Health(
        paused_by=ctx.paused_by,
        error_reason=error_reason,
        error_message=error_message,
        active=decision.active,
        active_reason=str(decision.reason),
        active_message=decision.message,
        fallback=decision.fallback_active,
        consecutive_failures=decision.history.consecutive_failures,
        failure_threshold=config.fallback.failure_threshold,
    )
    report = status.StatusReport(
        generation=ctx.generation,
        health=health,
        signals=reading.signals,
        stages=tuple(
            status.StageBacklog(s.stage, s.ready, s.in_flight, s.oldest_ready_s)
            for s in reading.stages
        ),
        desired_replicas=decision.desired_replicas,
        current_replicas=scale.status_replicas,
        last_scale_time=state.last_scale_time,
        last_reading_time=clock.wall if reading.ok else None,
        last_scale_reason=state.last_scale_reason,
    )
    _record_metrics(ctx, reading, decision, scale)
    state = dataclasses.replace(state, error_reason=error_reason, fallback=decision.fallback_active)
    return await _store_status(rt, ctx.namespace, ctx.name, report, state, clock)


async def _actuate(
    rt: Runtime,
    ctx: ScalerContext,
    ref: TargetRef,
    scale: Scale,
    decision: policy.Decision,
    state: ScalerState,
    clock: Clock,
) -> ScalerState:
    desired, current = decision.desired_replicas, scale.replicas
    if desired < current and ctx.spec.drain_aware_scale_in:
        await _protect_busy_pods(rt, ctx, scale)
    patched = await kube_call(rt, rt.scales.patch, ref, ctx.namespace, desired)
    metrics.count_scale(ctx.namespace, ctx.name, current, desired)
    event = events.scale_event(current, desired, ref.describe(), decision.message)
    logger.info("%s/%s: %s", ctx.namespace, ctx.name, event.message)
    await _post(rt, ctx.involved(), event, clock)
    return dataclasses.replace(
        state,
        last_scale_time=clock.wall,
        last_scale_reason=str(decision.reason),
        scale=patched,
        scale_ref=ref,
        scale_at=clock.mono,
    )


async def _protect_busy_pods(rt: Runtime, ctx: ScalerContext, scale: Scale) -> None:
    """Deletion cost from claims; if claims cannot be read the scale-in waits (raises)."""
    pods = await kube_call(rt, deletion_cost.list_pods, rt.api, ctx.namespace, scale.selector)
    names = [str(p["metadata"]["name"]) for p in pods]
    source = ctx.spec.source
    held = await claims.claims_by_pod(rt.hubs.pools, ctx.dsn, source.schema, source.table, names)
    await kube_call(rt, deletion_cost.annotate_pods, rt.api, ctx.namespace, scale.selector, held)


async def _fail(
    rt: Runtime, ctx: ScalerContext, reason: str, message: str, state: ScalerState, clock: Clock
) -> ScalerState:
    if state.error_reason != reason:
        await _post(rt, ctx.involved(), events.Event(events.WARNING, reason, message), clock)
    health = _problem_health(reason, message, ctx.paused_by)
    report = status.StatusReport(ctx.generation, health)
    state = dataclasses.replace(state, error_reason=reason)
    return await _store_status(rt, ctx.namespace, ctx.name, report, state, clock)


async def _source_events(
    rt: Runtime,
    obj: events.InvolvedObject,
    reading: Reading,
    decision: policy.Decision,
    state: ScalerState,
    clock: Clock,
) -> None:
    """Warnings when the source fails and when fallback starts; Normal when it recovers."""
    if not reading.ok and state.error_reason != status.SOURCE_ERROR:
        message = f"{reading.error or 'reading failed'}; {decision.message}"
        await _post(rt, obj, events.Event(events.WARNING, events.SOURCE_ERROR, message), clock)
    if decision.fallback_active and not state.fallback:
        event = events.Event(events.WARNING, events.FALLBACK, decision.message)
        await _post(rt, obj, event, clock)
    if reading.ok and state.error_reason == status.SOURCE_ERROR:
        event = events.Event(events.NORMAL, events.RECOVERED, "backlog readings succeed again")
        await _post(rt, obj, event, clock)


async def _paused_events(
    rt: Runtime, obj: events.InvolvedObject, paused_by: str | None, state: ScalerState, clock: Clock
) -> None:
    if paused_by is not None and state.paused_by is None:
        event = events.Event(events.NORMAL, events.PAUSED, f"paused by {paused_by}: no changes")
        await _post(rt, obj, event, clock)
    elif paused_by is None and state.paused_by is not None:
        await _post(rt, obj, events.Event(events.NORMAL, events.RESUMED, "scaling resumed"), clock)


async def _post(rt: Runtime, obj: events.InvolvedObject, event: events.Event, clock: Clock) -> None:
    """Events are best effort: a failure to post one is logged, never fatal."""
    try:
        await kube_call(rt, events.post_event, rt.api, events.event_body(obj, event, clock.wall))
    except Exception as error:
        logger.warning(
            "%s/%s: event %s not posted: %s",
            obj.namespace,
            obj.name,
            event.reason,
            _describe(error),
        )


async def _store_status(
    rt: Runtime,
    namespace: str,
    name: str,
    report: status.StatusReport,
    state: ScalerState,
    clock: Clock,
) -> ScalerState:
    """Patch the status when it changed (lastReadingTime alone only every heartbeat)."""
    new = status.build_status(report, state.status, clock.wall)
    heartbeat_due = (
        state.status_at is None or clock.mono - state.status_at >= rt.options.status_heartbeat_s
    )
    if not heartbeat_due and status.material(state.status or {}) == status.material(new):
        return state
    try:
        stored = await kube_call(rt, scalers.patch_status, rt.api, namespace, name, new)
    except Exception as error:
        logger.warning("%s/%s: status not patched: %s", namespace, name, _describe(error))
        return state
    return dataclasses.replace(state, status=stored or new, status_at=clock.mono)


def _record_metrics(
    ctx: ScalerContext, reading: Reading, decision: policy.Decision, scale: Scale
) -> None:
    for stage in reading.stages:
        metrics.record_backlog(ctx.namespace, ctx.name, stage.stage, stage.ready, stage.in_flight)
    if reading.ok:  # a failed reading has no age: keep the last one rather than report 0
        oldest = reading.signals.oldest_ready_seconds or 0.0
        metrics.OLDEST_READY_SECONDS.labels(ctx.namespace, ctx.name).set(oldest)
    metrics.record_replicas(ctx.namespace, ctx.name, decision.desired_replicas, scale.replicas)
    metrics.FALLBACK_ACTIVE.labels(ctx.namespace, ctx.name).set(int(decision.fallback_active))
    metrics.PAUSED.labels(ctx.namespace, ctx.name).set(int(ctx.paused_by is not None))
    if not reading.ok:
        metrics.SCALER_SOURCE_ERRORS.labels(ctx.namespace, ctx.name).inc()


def _describe(error: BaseException) -> str:
    if isinstance(error, client.ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{error.__class__.__name__}: {error}"[:500]
