"""The run's load replayed in the simulator: our policy next to KEDA + HPA defaults.

`simulate(info, scaler_specs)` parses the recorded ScaleTest spec, turns its
load profile into per-second arrivals (the measured baseline throughput for
`fromBaseline`), and runs sim.staged twice on the same arrivals and service
times: once with each BacklogScaler's own policy (scaletest.simulated's one
stage per scaler), once with a KEDA ScaledObject at its defaults (30 s polling,
300 s cooldown, the HPA's 15 s sync; same min/max replicas; targetQueryValue =
backlogPerReplica, or 10). Virtual time, no database: the simulator's limits
are in docs/decisions/0013. Called by report/cli.py; rendered by sections.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backlog_operator.api.scaletest import Profile, parse_spec
from backlog_operator.report import model
from backlog_operator.scaletest import profiles, simulated
from backlog_operator.sim import staged
from backlog_operator.sim.keda import KedaConfig, KedaController

KEDA_DEFAULT_TARGET = 10.0


@dataclass(frozen=True)
class Comparison:
    ours: staged.StagedResult | None
    keda: staged.StagedResult | None
    keda_target: Mapping[str, float]
    note: str = ""  # why there is no comparison


def _arrivals(info: model.RunInfo) -> list[float]:
    spec = parse_spec(info.spec)
    baseline = info.baseline_throughput or (
        spec.baseline.rate_per_second if spec.baseline else None
    )
    rates = profiles.rates(spec.load, baseline_throughput=baseline)
    schedule = profiles.Schedule(rates, spec.load.max_jobs)
    capped, total = [], 0.0
    for rate in rates:  # maxJobs cuts the arrivals as it cuts the producers
        take = max(0.0, min(rate, schedule.total - total))
        capped.append(take)
        total += take
    return capped


def _keda_target(scaler: Mapping[str, Any]) -> float:
    policy = scaler.get("policy") or {}
    value = policy.get("backlogPerReplica")
    return float(value) if value else KEDA_DEFAULT_TARGET


def simulate(
    info: model.RunInfo, scaler_specs: Mapping[str, Mapping[str, Any]] | None, seed: int = 0
) -> Comparison:
    if not scaler_specs:
        return Comparison(None, None, {}, "needs the BacklogScaler specs (pass --kubeconfig)")
    spec = parse_spec(info.spec)
    if spec.load.profile is Profile.TRACE:
        return Comparison(
            None, None, {}, "Trace loads are not replayed here (the trace lives in a ConfigMap)"
        )
    arrivals = _arrivals(info)
    ours_models = simulated.stage_models(spec, scaler_specs)
    targets = {name: _keda_target(s) for name, s in scaler_specs.items()}
    keda_models = []
    for m in ours_models:
        raw = scaler_specs.get(m.scaler or "", {})
        config = KedaConfig(
            target_value=targets.get(m.scaler or "", KEDA_DEFAULT_TARGET),
            min_replicas=int(raw.get("minReplicas", 0)),
            max_replicas=int(raw.get("maxReplicas", 10)),
        )
        controller = KedaController(config=config, name=f"keda-{m.scaler}")
        keda_models.append(dataclasses.replace(m, controller=controller))
    # queue wait p95 over (job, stage) pairs of every pipeline stage, as the live column.
    waitless = simulated.waitless_stages(ours_models)
    ours = staged.simulate_stages(arrivals, ours_models, seed=seed, waitless_stages=waitless)
    keda = staged.simulate_stages(arrivals, keda_models, seed=seed, waitless_stages=waitless)
    return Comparison(ours, keda, targets)


def rows(
    data: model.RunData, c: Comparison
) -> tuple[tuple[str, float | None, float | None, float | None], ...]:
    """(figure, live, simulated ours, simulated KEDA) for the report's table."""
    r = data.info.results
    e2e = (r.get("latency") or {}).get("endToEnd") or {}

    def sim(result: staged.StagedResult | None, pick: Any) -> float | None:
        return None if result is None else pick(result)

    def both(pick: Any) -> tuple[float | None, float | None]:
        return sim(c.ours, pick), sim(c.keda, pick)

    def num(value: Any) -> float | None:
        return None if value is None else float(value)

    live_rs = sum((r.get("replicaSeconds") or {}).values()) if r.get("replicaSeconds") else None
    live_max = max((r.get("maxReplicas") or {}).values(), default=None)
    table = [
        ("jobs", num(r.get("jobs")), *both(lambda x: float(x.jobs))),
        (
            "throughput (jobs/s)",
            num(r.get("throughputPerSecond")),
            *both(lambda x: x.throughput_per_second),
        ),
        ("end-to-end p50 (s)", num(e2e.get("p50")), *both(lambda x: x.end_to_end.p50)),
        ("end-to-end p95 (s)", num(e2e.get("p95")), *both(lambda x: x.end_to_end.p95)),
        (
            "queue wait p95 (s)",
            num(r.get("queueWaitP95Seconds")),
            *both(lambda x: x.queue_wait_p95_seconds),
        ),
        (
            "time to first scale-up (s)",
            num(r.get("timeToFirstScaleSeconds")),
            *both(lambda x: x.time_to_first_scale_seconds),
        ),
        ("drain (s)", num(r.get("drainSeconds")), *both(lambda x: x.drain_seconds)),
        (
            "replica-seconds, all pools",
            num(live_rs),
            *both(lambda x: sum(s.replica_seconds for s in x.stages)),
        ),
        (
            "max replicas of any pool",
            num(live_max),
            *both(lambda x: float(max(s.max_replicas for s in x.stages))),
        ),
    ]
    return tuple(table)
