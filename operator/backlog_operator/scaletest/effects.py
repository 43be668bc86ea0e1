"""What entering each phase does: the shell around the pure transitions.

`enter(rt, ctx, transition, run, now)` stamps the run's timeline in PostgreSQL
(idempotently), starts or stops producers and chaos, runs the baseline and the
final analysis, cleans up per `spec.cleanup`, and returns the extra status
fields for the phase patch. Every effect tolerates being repeated, because a
restart between the database write and the status patch repeats it. Called by
scaletest/daemon.py.
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_operator.api.scaletest import Cleanup
from backlog_operator.scaletest import analysis, metrics, runs
from backlog_operator.scaletest.context import RunContext, Runtime
from backlog_operator.scaletest.phases import Part, Phase, Verdict
from backlog_operator.scaletest.runs import Run
from backlog_operator.scaletest.transitions import Transition

log = logging.getLogger(__name__)


async def enter(
    rt: Runtime, ctx: RunContext, transition: Transition, run: Run, now: Any
) -> dict[str, Any]:
    """Perform the effects of entering `transition.target`; return extra status fields."""
    target = transition.target
    conn = ctx.db
    extra: dict[str, Any] = {}
    if target is Phase.BASELINE:
        schedule = ctx.baseline_schedule()
        await runs.start_part(conn, ctx.run_id, Part.BASELINE, schedule.total, schedule.mean_rate)
        ctx.start_producers(Part.BASELINE, schedule)
    elif target is Phase.LOADING:
        if ctx.phase is Phase.BASELINE:
            await ctx.stop_producers()
            summary = await analysis.baseline(conn, run=run, schema=ctx.spec.schema, now=now)
            await runs.finish_baseline(conn, ctx.run_id, summary.get("throughputPerSecond"))
            extra["baseline"] = {k: v for k, v in summary.items() if v is not None}
            fresh = await runs.get(conn, ctx.run_id)
            run = fresh or run
        schedule = ctx.load_schedule(run)
        await runs.start_part(conn, ctx.run_id, Part.LOAD, schedule.total, schedule.mean_rate)
        ctx.start_producers(Part.LOAD, schedule)
        ctx.start_chaos(rt.api)
    elif target is Phase.DRAINING:
        await ctx.stop_chaos()
        await ctx.stop_producers()
        await runs.finish_load(conn, ctx.run_id)
    elif target is Phase.ANALYZING:
        await runs.finish_drain(conn, ctx.run_id)
    elif target.terminal:
        await ctx.stop_background()
        verdict = ctx.results.verdict if ctx.results is not None else None
        await runs.complete(conn, ctx.run_id, target, verdict)
        metrics.count_run(verdict.value if verdict is not None else "Error")
        await cleanup(ctx, verdict)
    await runs.set_phase(conn, ctx.run_id, target)
    metrics.count_phase(target.value)
    return extra


def should_clean(policy: Cleanup, verdict: Verdict | None) -> bool:
    """OnSuccess removes the synthetic jobs only after a Passed run; Failed keeps them."""
    if policy is Cleanup.ALWAYS:
        return True
    return policy is Cleanup.ON_SUCCESS and verdict is Verdict.PASSED


async def cleanup(ctx: RunContext, verdict: Verdict | None) -> int:
    """Remove the run's documents and jobs when the policy says so; results rows stay."""
    if not should_clean(ctx.spec.cleanup, verdict):
        return 0
    removed = await runs.delete_jobs(ctx.db, ctx.run_id, ctx.spec.schema)
    log.info(
        "run %s: removed %d synthetic documents (cleanup %s)", ctx.run_id, removed, ctx.spec.cleanup
    )
    return removed
