"""The ScaleTest phase machine: one module per transition, each a pure function.

`decide(spec, observation, now)` dispatches on the current phase to
`<phase>.next_phase(spec, observation, now) -> Transition | None`. The
observation is what the daemon read from the runs table and the pipeline this
tick; `now` comes from the same database clock as the stored timestamps, so
elapsed times never mix clocks. Called by scaletest/daemon.py; the effects of
entering a phase (fixing the schedule, starting producers, analysing) belong to
the shell.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest.phases import Phase, allowed
from backlog_operator.scaletest.transitions import (
    analyzing,
    baseline,
    draining,
    loading,
    pending,
)
from backlog_operator.scaletest.transitions.types import Observation, Transition, failed

__all__ = ["Observation", "Transition", "decide", "failed"]

_BY_PHASE = {
    Phase.PENDING: pending.next_phase,
    Phase.BASELINE: baseline.next_phase,
    Phase.LOADING: loading.next_phase,
    Phase.DRAINING: draining.next_phase,
    Phase.ANALYZING: analyzing.next_phase,
}


def decide(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    """The move to make from `observation.phase` now, or None to stay."""
    if observation.phase.terminal:
        return None
    if observation.fatal_error is not None:
        reason, message = observation.fatal_error
        return failed(reason, message)
    transition = _BY_PHASE[observation.phase](spec, observation, now)
    if transition is not None and not allowed(observation.phase, transition.target):
        raise AssertionError(f"{observation.phase} -> {transition.target} is not a transition")
    return transition
