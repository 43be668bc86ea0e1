"""Prometheus metrics of ScaleTest runs, in the operator's shared registry.

`count_run(verdict)` when a run ends (verdict Passed, Failed, or Error for a run
that could not complete) and `count_phase(phase)` on every phase change. Called
by scaletest/daemon.py; exposed by `backlog-operator run --metrics-port`.
"""

from __future__ import annotations

from prometheus_client import Counter

from backlog_operator.metrics import REGISTRY

RUNS = Counter(
    "backlog_operator_scaletest_runs",
    "Finished ScaleTest runs by verdict (Passed, Failed; Error: ended without a verdict).",
    ("verdict",),
    registry=REGISTRY,
)
PHASES = Counter(
    "backlog_operator_scaletest_phase_transitions",
    "ScaleTest phase changes, by the phase entered.",
    ("phase",),
    registry=REGISTRY,
)


def count_run(verdict: str) -> None:
    RUNS.labels(verdict).inc()


def count_phase(phase: str) -> None:
    PHASES.labels(phase).inc()
