"""Headline figures of a run and the before/after comparison of two runs. Pure.

`figures(data)` lists (name, value, lower_is_better) for the numbers a reader
compares; `compare(before, after)` pairs them with the absolute and relative
change and whether it is an improvement. Called by report/sections.py and the
demo's results table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backlog_operator.report import model


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    lower_is_better: bool | None  # None: neither (e.g. jobs requested)
    unit: str = ""


@dataclass(frozen=True)
class Delta:
    name: str
    before: float | None
    after: float | None
    change: float | None
    relative: float | None  # change / before
    verdict: str  # better | worse | same | -
    unit: str = ""


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def figures(data: model.RunData) -> tuple[Figure, ...]:
    r = data.info.results
    e2e = (r.get("latency") or {}).get("endToEnd") or {}
    out = [
        Figure("jobs", _num(r.get("jobs")), None),
        Figure("throughput", _num(r.get("throughputPerSecond")), False, " jobs/s"),
        Figure("end-to-end p50", _num(e2e.get("p50")), True, " s"),
        Figure("end-to-end p95", _num(e2e.get("p95")), True, " s"),
        Figure("end-to-end p99", _num(e2e.get("p99")), True, " s"),
        Figure("queue wait p95", _num(r.get("queueWaitP95Seconds")), True, " s"),
        Figure("time to first scale", _num(r.get("timeToFirstScaleSeconds")), True, " s"),
        Figure("drain", _num(r.get("drainSeconds")), True, " s"),
        Figure("lost jobs", _num(r.get("lostJobs")), True),
        Figure("duplicate completions", _num(r.get("duplicateCompletions")), True),
    ]
    for scaler, n in sorted((r.get("maxReplicas") or {}).items()):
        out.append(Figure(f"max replicas {scaler}", _num(n), None))
    for scaler, n in sorted((r.get("replicaSeconds") or {}).items()):
        out.append(Figure(f"replica-seconds {scaler}", _num(n), True))
    out.append(Figure("SLOs met", float(sum(s.met for s in data.slo)), False, f"/{len(data.slo)}"))
    return tuple(out)


def _verdict(change: float | None, lower_is_better: bool | None) -> str:
    if change is None or lower_is_better is None:
        return "-"
    if abs(change) < 1e-9:
        return "same"
    return "better" if (change < 0) == lower_is_better else "worse"


def compare(before: model.RunData, after: model.RunData) -> tuple[Delta, ...]:
    old = {f.name: f for f in figures(before)}
    new = {f.name: f for f in figures(after)}
    names = list(old) + [n for n in new if n not in old]
    out = []
    for name in names:
        a, b = old.get(name), new.get(name)
        x = a.value if a else None
        y = b.value if b else None
        change = None if x is None or y is None else y - x
        relative = None if change is None or not x else change / abs(x)
        ref = a or b
        assert ref is not None
        out.append(
            Delta(name, x, y, change, relative, _verdict(change, ref.lower_is_better), ref.unit)
        )
    return tuple(out)
