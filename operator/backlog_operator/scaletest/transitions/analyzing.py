"""Analyzing -> Succeeded (every SLO met) | Failed (naming the unmet SLOs).

The shell computes the results and the verdict on entering Analyzing and passes
them in the observation. Called through transitions.decide.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest.phases import Phase, Verdict
from backlog_operator.scaletest.transitions.types import Observation, Transition


def next_phase(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    if observation.verdict is None:
        return None
    if observation.verdict is Verdict.PASSED:
        return Transition(
            Phase.SUCCEEDED, "SLOsMet", observation.verdict_message or "every SLO met"
        )
    return Transition(
        Phase.FAILED, "SLONotMet", observation.verdict_message or "an SLO was not met"
    )
