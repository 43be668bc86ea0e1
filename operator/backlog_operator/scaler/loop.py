"""The life of one BacklogScaler inside the operator: subscribe, then tick per reading.

`run_scaler(rt, body, stopped)` is what the kopf daemon (scaler.handlers) awaits.
Each round re-reads the live `body` (kopf keeps it current), parses the spec,
resolves the DSN from the Secret (cached, refreshed every `secret_refresh_s`),
(re)subscribes to the database's SignalHub when the source part of the spec
changes, waits for the next Reading and hands it to scaler.reconcile.tick.
It never writes to the scale target on its way out: deleting a BacklogScaler
leaves the target's replicas as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from backlog_operator import metrics
from backlog_operator.api.backlogscaler import BacklogScalerSpec, parse_backlogscaler
from backlog_operator.kube import secrets, status
from backlog_operator.scaler import reconcile
from backlog_operator.scaler.runtime import Runtime
from backlog_operator.sources.subscriber import Subscriber, Subscription

logger = logging.getLogger(__name__)
PAUSED_ANNOTATION = "backlog.dev/paused"
PROBLEM_RETRY_S = 5.0  # invalid spec / unreadable Secret: look again this often
STOP_CHECK_S = 1.0  # below the daemon's cancellation_backoff (scaler.handlers)


def paused_by(body: Mapping[str, Any], spec: BacklogScalerSpec) -> str | None:
    """ "annotation" or "spec" when paused, else None (the annotation wins for the reason)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(PAUSED_ANNOTATION, "")).strip().lower() == "true":
        return "annotation"
    return "spec" if spec.scaler.paused else None


def subscription_for(spec: BacklogScalerSpec) -> Subscription:
    return Subscription(
        stages=spec.source.stages,
        schema=spec.source.schema,
        table=spec.source.table,
        upstream_stages=spec.scaler.policy.upstream_stages,
        poll_interval_s=float(spec.poll_interval_s),
        listen=spec.listen,
    )


def clock() -> reconcile.Clock:
    return reconcile.Clock(mono=time.monotonic(), wall=datetime.now(UTC))


@dataclass
class _Source:
    """The current subscription and the DSN it was made with (mutable loop state)."""

    dsn: str | None = None
    dsn_read_at: float = float("-inf")
    secret_ref: tuple[str, str] | None = None
    subscription: Subscription | None = None
    subscriber: Subscriber | None = None

    async def close(self) -> None:
        if self.subscriber is not None:
            await self.subscriber.close()
        self.subscriber = None
        self.subscription = None


async def _resolve_dsn(rt: Runtime, namespace: str, spec: BacklogScalerSpec, src: _Source) -> str:
    ref = (spec.dsn_secret_name, spec.dsn_secret_key)
    fresh = time.monotonic() - src.dsn_read_at < rt.options.secret_refresh_s
    if src.dsn is not None and src.secret_ref == ref and fresh:
        return src.dsn
    dsn = await reconcile.kube_call(rt, secrets.read_secret_value, rt.api, namespace, *ref)
    src.dsn, src.secret_ref, src.dsn_read_at = dsn, ref, time.monotonic()
    return dsn


async def _ensure_subscribed(rt: Runtime, dsn: str, wanted: Subscription, src: _Source) -> None:
    if src.subscriber is not None and src.subscription == wanted and src.dsn == dsn:
        return
    await src.close()
    src.subscriber = await rt.hubs.subscribe(dsn, wanted)
    src.subscription = wanted


def _snapshot(body: Mapping[str, Any]) -> tuple[int, BacklogScalerSpec] | None:
    """(generation, parsed spec) of the live body right now; None if the spec is invalid."""
    try:
        spec = parse_backlogscaler(body.get("spec") or {})
    except ValueError:
        return None
    return int(body["metadata"].get("generation") or 0), spec


async def run_scaler(rt: Runtime, body: Mapping[str, Any], stopped: kopf.DaemonStopped) -> None:
    """Reconcile one BacklogScaler until kopf stops the daemon (deletion, shutdown, peering)."""
    meta = body["metadata"]
    namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta.get("uid", ""))
    state = reconcile.ScalerState(status=dict(body.get("status") or {}))
    src = _Source()
    subscribed_dsn: str | None = None
    try:
        while not stopped:
            generation = int(body["metadata"].get("generation") or 0)
            try:
                spec = parse_backlogscaler(body.get("spec") or {})
            except ValueError as error:
                state = await reconcile.report_problem(
                    rt,
                    namespace,
                    name,
                    uid,
                    generation,
                    status.INVALID_SPEC,
                    str(error),
                    state,
                    clock(),
                )
                await stopped.wait(PROBLEM_RETRY_S)  # returns early on stop
                continue
            try:
                dsn = await _resolve_dsn(rt, namespace, spec, src)
            except secrets.SecretError as error:
                state = await reconcile.report_problem(
                    rt,
                    namespace,
                    name,
                    uid,
                    generation,
                    status.SECRET_ERROR,
                    str(error),
                    state,
                    clock(),
                )
                await stopped.wait(PROBLEM_RETRY_S)  # returns early on stop
                continue
            if subscribed_dsn != dsn:
                await src.close()
            await _ensure_subscribed(rt, dsn, subscription_for(spec), src)
            subscribed_dsn = dsn
            assert src.subscriber is not None
            try:
                # Short, bounded waits: a stop request (deletion, shutdown, peering pause)
                # ends the loop within STOP_CHECK_S, before kopf resorts to cancelling it.
                reading = await src.subscriber.next(timeout=STOP_CHECK_S)
            except TimeoutError:
                continue
            # The body changed while we waited: take spec, generation and annotations from
            # one fresh snapshot (no await in between), never a mix of old and new.
            fresh = _snapshot(body)
            if fresh is None or subscription_for(fresh[1]) != src.subscription:
                continue  # the top of the loop reports or re-subscribes
            generation, spec = fresh
            if (spec.dsn_secret_name, spec.dsn_secret_key) != src.secret_ref:
                continue
            ctx = reconcile.ScalerContext(
                namespace, name, uid, generation, spec, dsn, paused_by(body, spec)
            )
            logger.debug(
                "%s/%s: reading %d (%s) ok=%s generation=%d paused_by=%s",
                namespace,
                name,
                reading.seq,
                reading.cause,
                reading.ok,
                generation,
                ctx.paused_by,
            )
            state = await reconcile.tick(rt, ctx, reading, state, clock())
            lag = asyncio.get_running_loop().time() - reading.at
            metrics.RECONCILE_LAG_SECONDS.labels(namespace, name).observe(lag)
    finally:
        await src.close()
        metrics.forget_scaler(namespace, name)
