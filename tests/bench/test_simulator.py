"""Benchmark: the operator's default QueueWait policy vs the KEDA + HPA default model,
side by side on the shared traces, plus the simulator's own speed on a 24-hour trace.

For each of step, spike, ramp and diurnal (../shared/traces from the repo root, or
$SHARED_TRACES): service time 1 s Exponential, startup 5 s, seed 0, maxReplicas 1000
for both (KEDA: targetQueryValue 10, its defaults otherwise; ours: the CRD defaults).
Reports p95_wait_s, replica_seconds, scale_changes, the ratios ours/KEDA and whether
the goal (p95 <= half of KEDA's at <= KEDA's replica-seconds) is met; the same for our
policy with HPA's behavior defaults ("hpa-behavior": scaleUp 100 %, scaleDown window
300 s), which shows what our faster behavior defaults buy (docs/decisions/0006, 0012).
Then a synthetic 24 h diurnal day (20 s Exponential jobs, peak 45/s, up to 1,000
replicas) timed with KEDA, with ours, and with ours polling only (listen off): wall
and CPU seconds, jobs per CPU second, and the number of policy readings.

Writes bench/results/simulator.json. A figure, not an assertion: the test checks only
that every job was served (conservation) in every run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from backlog_operator.sim import engine, keda, results, run, traces
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.service import parse_service_time

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "simulator.json"
TRACES = Path(os.environ.get("SHARED_TRACES", ROOT.parent / "shared" / "traces"))
NAMES = ("step", "spike", "ramp", "diurnal")
MAX_REPLICAS = int(os.environ.get("BENCH_SIM_MAX_REPLICAS", "1000"))
SERVICE = "1:Exponential"
STARTUP_S = 5.0
# Our policy math with HPA's behavior defaults, spelled out (ours are faster; 0006).
HPA_BEHAVIOR: dict[str, Any] = {
    "behavior": {
        "scaleUp": {
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ]
        },
        "scaleDown": {"stabilizationWindowSeconds": 300},
    },
}
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "hpa-behavior": HPA_BEHAVIOR}
DAY_SERVICE = "20:Exponential"
DAY_PEAK_PER_S = 45.0
KEYS = ("p95_wait_s", "replica_seconds", "scale_changes")


def _side_by_side(trace: traces.Trace, spec: dict[str, Any]) -> dict[str, Any]:
    ours = OursController.from_spec({"maxReplicas": MAX_REPLICAS, **spec})
    kedas = keda.KedaController(keda.KedaConfig(target_value=10, max_replicas=MAX_REPLICAS))
    settings = run.RunSettings(parse_service_time(SERVICE), startup_s=STARTUP_S, seed=0)
    both = run.compare(trace, [ours, kedas], settings)
    for result in both.values():
        assert result.completed == result.arrived == trace.total, result.name
    mine, theirs = both["ours"], both["keda-default"]
    ratios = {k: _ratio(getattr(mine, k), getattr(theirs, k)) for k in KEYS}
    return {
        "ours": {**mine.as_json(), "max_replicas": mine.max_replicas},
        "keda-default": {**theirs.as_json(), "max_replicas": theirs.max_replicas},
        "ratios": ratios,
        "goal_met": {
            "p95_at_most_half": mine.p95_wait_s <= 0.5 * theirs.p95_wait_s,
            "replica_seconds_at_most_keda": mine.replica_seconds <= theirs.replica_seconds,
        },
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _timed_day(controller: engine.Controller) -> dict[str, Any]:
    day = traces.synthetic_diurnal(86_400, DAY_PEAK_PER_S, floor_per_s=1.0)
    wall, cpu = time.perf_counter(), time.process_time()
    arrivals = traces.arrival_times(day.arrivals)
    raw = engine.simulate(arrivals, controller, parse_service_time(DAY_SERVICE), seed=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert raw.completed == day.total
    summary = results.summarize(controller.name, raw)
    return {
        "jobs": day.total,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "jobs_per_cpu_s": round(day.total / cpu),
        "max_replicas": raw.max_replicas,
        "p95_wait_s": round(summary.p95_wait_s, 3),
        "replica_seconds": round(raw.replica_seconds),
        "scale_changes": raw.scale_changes,
        "readings": raw.evaluations,
    }


def _table(doc: dict[str, Any]) -> str:
    head = "| trace | variant | ours p95 s | KEDA p95 s | p95 ratio | ours rep-s | KEDA rep-s "
    head += "| rep-s ratio | ours changes | KEDA changes | goal |"
    lines = [head, "|" + "---|" * 11]
    for variant in VARIANTS:
        for name, row in doc[variant].items():
            o, k, r, g = row["ours"], row["keda-default"], row["ratios"], row["goal_met"]
            met = "yes" if all(g.values()) else "no"
            lines.append(
                f"| {name} | {variant} | {o['p95_wait_s']:.2f} | {k['p95_wait_s']:.2f} "
                f"| {r['p95_wait_s']} | {o['replica_seconds']:,.0f} | {k['replica_seconds']:,.0f} "
                f"| {r['replica_seconds']} | {o['scale_changes']} | {k['scale_changes']} | {met} |"
            )
    return "\n".join(lines)


def test_simulator_benchmark() -> None:
    loaded = {n: traces.parse_trace((TRACES / f"{n}.csv").read_text()) for n in NAMES}
    doc: dict[str, Any] = {
        "settings": {
            "service_time": SERVICE,
            "startup_s": STARTUP_S,
            "seed": 0,
            "max_replicas": MAX_REPLICAS,
            "keda": "targetQueryValue 10, KEDA/HPA defaults",
            "ours_default": "BacklogScaler CRD defaults (QueueWait)",
            "ours_hpa_behavior": HPA_BEHAVIOR,
            "traces": str(TRACES),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    for variant, spec in VARIANTS.items():
        doc[variant] = {n: _side_by_side(t, spec) for n, t in loaded.items()}
    ours_day = OursController.from_spec({"maxReplicas": 1000})
    keda_day = keda.KedaController(keda.KedaConfig(target_value=10, max_replicas=1000))
    # listen off: readings only every pollIntervalSeconds, which separates the engine's
    # cost from the cost of ~7 decide() calls per simulated second with NOTIFY wake-ups.
    ours_polling = OursController.from_spec(
        {"maxReplicas": 1000, "listen": False}, name="ours-listen-off"
    )
    doc["day_24h"] = {
        "trace": f"synthetic raised cosine, 1/s to {DAY_PEAK_PER_S:g}/s, {DAY_SERVICE} jobs",
        "keda-default": _timed_day(keda_day),
        "ours": _timed_day(ours_day),
        "ours-listen-off": _timed_day(ours_polling),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(_table(doc))
    print("24 h day:", json.dumps(doc["day_24h"]))
