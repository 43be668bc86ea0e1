"""ScaleTest `mode: Simulated`: the same experiment through the policy simulator.

`run(spec, scaler_specs, trace)` turns the load profile into per-second arrivals
(profiles.rates), models each BacklogScaler as one stage of sim.staged (a scaler
serving several pipeline stages becomes one stage whose mean service time is the
sum of its stages' means, shaped like its slowest stage), runs it in virtual
time and returns a `Results` with SLO verdicts, so the status, the results
tables and the verdict look like a live run's (queueWaitP95Seconds included: p95 over
(job, stage) pairs of every pipeline stage; a stage no model queues counts with zero
wait, so it is optimistic where a pool serves several stages). No failures, retries or lost jobs
are modelled (chaos and failureRate are ignored; the simulator's limits are in
docs/decisions/0013). Without scalers the whole pipeline is one stage with one
replica. Pure (no I/O); called by scaletest/daemon.py on entering Analyzing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backlog_operator import pipeline
from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest import profiles, slo
from backlog_operator.scaletest.bottleneck import Bottleneck
from backlog_operator.scaletest.results import Percentiles, Results, ScalerFigures, StageFigures
from backlog_operator.sim import staged
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.scripted import Scripted
from backlog_operator.sim.service import ServiceTime


def combined_service(workload: Mapping[str, Any], stages: Sequence[str]) -> ServiceTime:
    """One service time for a worker pool serving `stages` one after the other."""
    parts = [staged.service_for(workload, stage) for stage in stages]
    slowest = max(parts, key=lambda part: part.mean_s)
    return ServiceTime(sum(p.mean_s for p in parts), slowest.distribution, slowest.cv)


def stage_models(
    spec: ScaleTestSpec, scaler_specs: Mapping[str, Mapping[str, Any]]
) -> list[staged.StageModel]:
    """One model per scaler, in the order of the first pipeline stage each one serves."""
    order = {stage: i for i, stage in enumerate(pipeline.STAGES)}
    models = []
    for name, scaler_spec in scaler_specs.items():
        stages = list((scaler_spec.get("source") or {}).get("stages") or [])
        if not stages:
            continue
        stages.sort(key=lambda s: order.get(s, len(order)))
        controller = OursController.from_spec(dict(scaler_spec), name=name)
        service = combined_service(spec.workload, stages)
        models.append(
            (order.get(stages[0], 0), staged.StageModel(stages[0], service, controller, name))
        )
    models.sort(key=lambda pair: pair[0])
    if not models:
        whole = combined_service(spec.workload, pipeline.STAGES)
        return [staged.StageModel("pipeline", whole, Scripted(((0.0, 1),)), "pipeline")]
    return [model for _, model in models]


def waitless_stages(models: Sequence[staged.StageModel]) -> int:
    """Pipeline stages the models do not queue separately (`simulate_stages` counts them).

    queueWaitP95Seconds is over (job, stage) pairs as in a live run, which counts every
    pipeline stage a job passes; a stage no model queues counts with zero wait.
    """
    return max(len(pipeline.STAGES) - len(models), 0)


def _percentiles(p: staged.Percentiles) -> Percentiles:
    return Percentiles(p.p50, p.p95, p.p99)


def run(
    spec: ScaleTestSpec,
    scaler_specs: Mapping[str, Mapping[str, Any]],
    trace: Sequence[float] | None = None,
    seed: int = 0,
) -> Results:
    """The simulated run's results and SLO verdicts (baseline throughput: its rate)."""
    baseline_rate = spec.baseline.rate_per_second if spec.baseline else None
    rates = profiles.rates(spec.load, baseline_throughput=baseline_rate, trace=trace)
    schedule = profiles.Schedule(rates, spec.load.max_jobs)
    # Cap at maxJobs like the producers do: cut the arrivals once the cap is reached.
    capped, total = [], 0.0
    for rate in rates:
        take = max(0.0, min(rate, schedule.total - total))
        capped.append(take)
        total += take
    models = stage_models(spec, scaler_specs)
    result = staged.simulate_stages(
        capped, models, seed=seed, waitless_stages=waitless_stages(models)
    )
    stages = tuple(
        StageFigures(
            stage=o.stage,
            completions=result.done,
            latency=_percentiles(o.latency),
            queue_wait=_percentiles(o.queue_wait),
            utilization=o.utilization,
        )
        for o in result.stages
    )
    scalers = tuple(
        ScalerFigures(o.scaler, o.max_replicas, o.replica_seconds, o.first_scale_up_s)
        for o in result.stages
        if o.scaler != "pipeline"
    )
    # Where jobs waited most (p95 per stage); its share of the stages' summed p95 waits.
    waits = {o.stage: o.queue_wait.p95 for o in result.stages}
    worst = max(result.stages, key=lambda o: o.queue_wait.p95)
    total_wait = sum(waits.values())
    bottleneck = (
        Bottleneck(worst.stage, worst.queue_wait.p95 / total_wait, worst.utilization)
        if total_wait > 0
        else None
    )
    observed = slo.Observed(
        p95_end_to_end_seconds=result.end_to_end.p95,
        p95_queue_wait_seconds=result.queue_wait_p95_seconds,
        drain_seconds=result.drain_seconds,
        lost_jobs=0,
        duplicate_completions=0,
        throughput_per_second=result.throughput_per_second,
    )
    verdicts = slo.evaluate(spec.slo, observed)
    return Results(
        jobs=result.jobs,
        done=result.done,
        deadletter=0,
        lost_jobs=0,
        duplicate_completions=0,
        throughput_per_second=result.throughput_per_second,
        producer_rate_per_second=result.producer_rate_per_second,
        requested_rate_per_second=schedule.mean_rate,
        end_to_end=_percentiles(result.end_to_end),
        queue_wait_p95_seconds=result.queue_wait_p95_seconds,
        drain_seconds=result.drain_seconds,
        stages=stages,
        scalers=scalers,
        bottleneck=bottleneck,
        slo=verdicts,
        verdict=slo.verdict(verdicts),
    )
