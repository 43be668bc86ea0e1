"""The report's sections as document blocks, from a recorded run. Pure (no I/O).

`build(data, images, findings, scalers, other)` returns the blocks of
report.md: summary and verdict, per-stage baselines, bottleneck and database
profile, optimizations from evidence (index advisor findings, pool size,
replicas and reaction), scaling validation (each SLO, the charts) and, with
`other`, a before/after table. Called by report/cli.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backlog_operator.report import advice, advisor, compare, model, simcompare
from backlog_operator.report import document as d
from backlog_operator.report.table import fmt

# Below this p95 queue wait no stage is called a bottleneck.
NEGLIGIBLE_WAIT_SECONDS = 1.0


def _s(value: Any, digits: int = 2, unit: str = "") -> str:
    return fmt(None if value is None else float(value), digits, unit)


def build(
    data: model.RunData,
    images: Sequence[d.Image],
    findings: Sequence[advisor.Finding],
    scalers: Mapping[str, advice.ScalerSpec] | None = None,
    other: model.RunData | None = None,
    sim: simcompare.Comparison | None = None,
) -> list[d.Block]:
    blocks: list[d.Block] = [d.Heading(1, f"ScaleTest report: {data.info.run_id}")]
    blocks += summary(data)
    blocks += baselines(data)
    blocks += bottleneck(data)
    blocks += optimizations(data, findings, scalers)
    blocks += validation(data, images)
    if sim is not None:
        blocks += simulated(data, sim)
    if other is not None:
        blocks += before_after(other, data)
    return blocks


def verdict_line(data: model.RunData) -> str:
    info = data.info
    if info.verdict is None:
        return f"**No verdict**: the run ended in phase {info.phase} without one."
    unmet = [s for s in data.slo if not s.met]
    if not unmet:
        return f"**{info.verdict}**: all {len(data.slo)} SLOs met."
    parts = [f"{s.name} observed {_s(s.observed)} against target {_s(s.target)}" for s in unmet]
    return f"**{info.verdict}**: " + "; ".join(parts) + "."


def summary(data: model.RunData) -> list[d.Block]:
    info, r = data.info, data.info.results
    load = info.spec.get("load") or {}
    e2e = (r.get("latency") or {}).get("endToEnd") or {}
    intro = (
        f"ScaleTest `{info.namespace}/{info.name}` ({info.mode}, profile {info.profile}, "
        f"load factor {load.get('loadFactor', 1)}, {load.get('producers', '?')} producers), "
        f"started {info.started_at:%Y-%m-%d %H:%M:%S} UTC, phase {info.phase}."
    )
    rows = [
        ("jobs (load)", _s(r.get("jobs"), 0)),
        (
            "done / deadletter / lost",
            f"{r.get('done', '-')} / {r.get('deadletter', '-')} / {r.get('lostJobs', '-')}",
        ),
        ("duplicate completions", _s(r.get("duplicateCompletions"), 0)),
        ("requested rate", _s(r.get("requestedRatePerSecond"), 2, " jobs/s")),
        ("producer rate", _s(r.get("producerRatePerSecond"), 2, " jobs/s")),
        ("throughput", _s(r.get("throughputPerSecond"), 2, " jobs/s")),
        ("baseline throughput", _s(info.baseline_throughput, 2, " jobs/s")),
        (
            "end-to-end p50 / p95 / p99",
            " / ".join(_s(e2e.get(k), 2) for k in ("p50", "p95", "p99")) + " s",
        ),
        ("queue wait p95", _s(r.get("queueWaitP95Seconds"), 2, " s")),
        ("time to first scale-up", _s(r.get("timeToFirstScaleSeconds"), 1, " s")),
        ("drain", _s(r.get("drainSeconds"), 1, " s")),
        ("pods deleted by chaos", _s(r.get("podsDeleted"), 0)),
    ]
    for scaler in sorted(r.get("maxReplicas") or {}):
        seconds = (r.get("replicaSeconds") or {}).get(scaler)
        rows.append(
            (
                f"{scaler}: max replicas, replica-seconds",
                f"{r['maxReplicas'][scaler]}, {_s(seconds, 0)}",
            )
        )
    timeline = [
        ("baseline", info.offset(info.baseline_started_at), info.offset(info.baseline_finished_at)),
        ("load", info.offset(info.load_started_at), info.offset(info.load_finished_at)),
        ("drain", info.offset(info.load_finished_at), info.offset(info.drain_finished_at)),
    ]
    return [
        d.Heading(2, "Summary and verdict"),
        d.Para(verdict_line(data)),
        d.Para(intro),
        d.Table(("figure", "value"), tuple(rows)),
        d.Table(
            ("part", "from (s)", "to (s)"),
            tuple((name, _s(a, 1), _s(b, 1)) for name, a, b in timeline if a is not None),
        ),
    ]


_STAGE_COLUMNS = (
    "stage",
    "completions",
    "service p50",
    "service p95",
    "queue wait p50",
    "queue wait p95",
    "in stage p50",
    "in stage p95",
    "AVG(updated_at - created_at)",
    "utilization",
)


def stage_table(stats: Sequence[model.StageStat]) -> d.Table:
    return d.Table(
        _STAGE_COLUMNS,
        tuple(
            (
                s.stage,
                str(s.completions),
                _s(s.service_p50, 3),
                _s(s.service_p95, 3),
                _s(s.queue_wait_p50),
                _s(s.queue_wait_p95),
                _s(s.latency_p50),
                _s(s.latency_p95),
                _s(s.avg_updated_minus_created),
                _s(s.utilization),
            )
            for s in stats
        ),
    )


def baselines(data: model.RunData) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Per-stage baselines"),
        d.Para(
            "Seconds. Service is the worker's measured handler time; queue wait is entering a "
            "stage to its first claim; in stage is entering to leaving (both from the events). "
            "`AVG(updated_at - created_at)` is the original plan's figure, grouped by the stage "
            "a job sits in now: it counts from the job's creation, so it grows along the "
            "pipeline and mixes the waits of every earlier stage; the event-based p50/p95 "
            "measure each stage on its own."
        ),
    ]
    for part in ("baseline", "load"):
        stats = data.stage_stats(part)
        if stats:
            blocks += [d.Heading(3, part.capitalize()), stage_table(stats)]
    if len(blocks) == 2:
        blocks.append(d.Para("No per-stage statistics were recorded for this run."))
    return blocks


def bottleneck(data: model.RunData) -> list[d.Block]:
    r = data.info.results
    found = r.get("bottleneck") or {}
    blocks: list[d.Block] = [d.Heading(2, "Bottleneck")]
    waited = r.get("queueWaitP95Seconds")
    if found and waited is not None and float(waited) < NEGLIGIBLE_WAIT_SECONDS:
        blocks.append(
            d.Para(
                f"Jobs hardly waited (queue wait p95 {float(waited):.2f} s): no stage limited "
                f"the pipeline. The largest share of that small wait, "
                f"{float(found.get('share', 0)):.0%}, was at {found['stage']}."
            )
        )
    elif found:
        util = found.get("utilization")
        blocks.append(
            d.Para(
                f"**{found['stage']}** held {float(found.get('share', 0)):.0%} of all queue wait; "
                f"its pool's utilization was {_s(util)} busy handler-seconds per replica-second "
                "(with N concurrent handlers per worker, up to N)."
            )
        )
    else:
        blocks.append(d.Para("No stage made jobs wait: no bottleneck during this run."))
    profile = data.info.db_profile or {}
    if profile:
        conns = ", ".join(
            f"{k}: {v}" for k, v in (profile.get("connections_by_state") or {}).items()
        )
        blocks.append(d.Heading(3, "Database profile"))
        blocks.append(
            d.Table(
                ("figure", "after the run", "peak during the run"),
                (
                    (
                        "connections",
                        conns or "-",
                        _s(profile.get("max_connections_during_run"), 0),
                    ),
                    (
                        "sessions waiting on locks",
                        str(profile.get("lock_waits", "-")),
                        _s(profile.get("max_lock_waits_during_run"), 0),
                    ),
                    (
                        "oldest open transaction",
                        _s(profile.get("oldest_transaction_seconds"), 1, " s"),
                        _s(profile.get("max_oldest_transaction_seconds_during_run"), 1, " s"),
                    ),
                    (
                        "upload_jobs live / dead tuples",
                        f"{profile.get('live_tuples', '-')} / {profile.get('dead_tuples', '-')}",
                        "-",
                    ),
                    ("relfrozenxid age", str(profile.get("relfrozenxid_age", "-")), "-"),
                ),
            )
        )
        top = profile.get("top_statements")
        if isinstance(top, list) and top:
            blocks.append(
                d.Table(
                    ("statement", "calls", "total ms", "mean ms"),
                    tuple(
                        (
                            str(t["query"])[:120],
                            str(t["calls"]),
                            _s(t["total_ms"], 1),
                            _s(t["mean_ms"], 3),
                        )
                        for t in top
                    ),
                )
            )
        elif isinstance(top, str):
            blocks.append(d.Para(f"Top statements: {top}."))
    return blocks


def optimizations(
    data: model.RunData,
    findings: Sequence[advisor.Finding],
    scalers: Mapping[str, advice.ScalerSpec] | None,
) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Optimizations from evidence"),
        d.Heading(3, "Index advisor"),
    ]
    if not findings:
        blocks.append(d.Para("Not run: the pipeline schema could not be read."))
    for f in findings:
        what = "the worker's claim" if f.query == "claim" else "the operator's backlog query"
        verdict = (
            "no index serves it: propose the statement below"
            if f.needs_index
            else "served by its partial indexes"
        )
        blocks.append(
            d.Para(
                f"EXPLAIN of {what}: planned {', '.join(f.chosen) or '-'}; with sequential scans "
                f"discouraged {', '.join(f.forced) or '-'}. Verdict: {verdict}."
            )
        )
        if f.statements:
            blocks.append(d.Code("\n".join(f.statements), "sql"))
    pools = advice.pool_advice(data, scalers)
    blocks.append(d.Heading(3, "Pool size"))
    if pools:
        blocks.append(
            d.Para(
                "Little's law: busy handlers = rate x mean service time; handler slots "
                f"(replicas x worker --concurrency) = busy / {advice.TARGET_UTILIZATION:g} "
                "target utilization, at the load's mean throughput and at its peak rate."
            )
        )
        blocks.append(
            d.Table(
                ("pool", "mean service (s)", "busy handlers", "slots at mean", "slots at peak"),
                tuple(
                    (
                        p.name,
                        _s(p.mean_service_seconds, 3),
                        _s(p.busy_mean),
                        str(p.slots_mean),
                        _s(p.slots_peak, 0),
                    )
                    for p in pools
                ),
            )
        )
    else:
        blocks.append(d.Para("No completed work to size the pools from."))
    blocks.append(d.Heading(3, "Replicas and reaction"))
    notes = advice.scaler_advice(data, scalers)
    blocks.append(
        d.Bullets(notes) if notes else d.Para("Nothing stands out: replicas followed the backlog.")
    )
    return blocks


def validation(data: model.RunData, images: Sequence[d.Image]) -> list[d.Block]:
    blocks: list[d.Block] = [d.Heading(2, "Scaling validation")]
    if data.slo:
        blocks.append(
            d.Table(
                ("SLO", "target", "observed", "met"),
                tuple(
                    (s.name, _s(s.target), _s(s.observed), "yes" if s.met else "**no**")
                    for s in data.slo
                ),
            )
        )
    else:
        blocks.append(d.Para("The spec set no SLO."))
    if data.latency_source == "events":
        blocks.append(
            d.Para(
                "The run's job rows were cleaned up; the latency chart uses the events they left "
                "(first claim to finalized), which leaves out each job's first queue wait."
            )
        )
    blocks += list(images)
    return blocks


def before_after(before: model.RunData, after: model.RunData) -> list[d.Block]:
    rows = []
    for delta in compare.compare(before, after):
        rel = "-" if delta.relative is None else f"{delta.relative:+.0%}"
        change = "-" if delta.change is None else f"{delta.change:+.2f}"
        rows.append((delta.name, _s(delta.before), _s(delta.after), change, rel, delta.verdict))
    return [
        d.Heading(2, "Before / after"),
        d.Para(
            f"Before: `{before.info.run_id}` ({before.info.verdict or 'no verdict'}); "
            f"after: `{after.info.run_id}` ({after.info.verdict or 'no verdict'})."
        ),
        d.Table(("figure", "before", "after", "change", "relative", "verdict"), tuple(rows)),
    ]


_COUNTS = ("jobs", "max replicas of any pool")


def simulated(data: model.RunData, sim: simcompare.Comparison) -> list[d.Block]:
    blocks: list[d.Block] = [
        d.Heading(2, "Simulated comparison: our policy and KEDA + HPA defaults")
    ]
    if sim.ours is None:
        blocks.append(d.Para(f"Not simulated: {sim.note}."))
        return blocks
    targets = ", ".join(f"{k} {v:g}" for k, v in sorted(sim.keda_target.items()))
    blocks.append(
        d.Para(
            "The same load profile and service times in virtual time (sim.staged: one queue "
            "per pool, no database or claim latency, no failures), once with each "
            "BacklogScaler's own policy and once with a KEDA ScaledObject at its defaults "
            "(polling 30 s, cooldown 300 s, HPA sync 15 s and behavior; same min/max "
            f"replicas; targetQueryValue per pool: {targets}). Replica-seconds cover each "
            "run's own span. The simulator serves one job at a time per replica: workers "
            "with `--concurrency` N serve N at once, so for N > 1 both simulated columns are "
            "pessimistic about waits; the comparison between them still holds."
        )
    )
    blocks.append(
        d.Table(
            ("figure", "live run", "simulated, ours", "simulated, KEDA defaults"),
            tuple(
                (name, _s(a, n), _s(b, n), _s(c, n))
                for name, a, b, c in simcompare.rows(data, sim)
                for n in [0 if name in _COUNTS else 2]
            ),
        )
    )
    return blocks
