"""Pending -> Baseline | Loading; Simulated -> Analyzing (or Failed if it cannot run).

Called through transitions.decide for a freshly created ScaleTest.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import Mode, ScaleTestSpec
from backlog_operator.scaletest.phases import Phase
from backlog_operator.scaletest.transitions.types import Observation, Transition, failed


def next_phase(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    if spec.mode is Mode.SIMULATED and not observation.simulated_supported:
        return failed(
            "NotImplemented",
            "mode Simulated is not available in this build: the policy simulator "
            "exposes no ScaleTest entry point yet; use mode Live",
        )
    if spec.mode is Mode.SIMULATED:
        return Transition(
            Phase.ANALYZING,
            "Simulating",
            "running the experiment through the policy simulator in virtual time",
        )
    if spec.baseline is not None:
        return Transition(
            Phase.BASELINE,
            "BaselineStarted",
            f"baseline: {spec.baseline.rate_per_second:g} jobs/s "
            f"for {spec.baseline.duration_seconds}s",
        )
    return Transition(Phase.LOADING, "LoadStarted", f"{spec.load.profile} load started")
