"""Draining -> Analyzing: every run job is done or deadletter, or drainTimeoutSeconds passed.

Called through transitions.decide.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest.phases import Phase
from backlog_operator.scaletest.transitions.types import Observation, Transition, elapsed


def next_phase(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    if observation.finished >= observation.produced:
        return Transition(
            Phase.ANALYZING, "Drained", f"all {observation.produced} jobs done or deadletter"
        )
    spent = elapsed(observation.drain_started_at, now)
    if observation.drain_started_at is not None and spent >= spec.drain_timeout_seconds:
        return Transition(
            Phase.ANALYZING,
            "DrainTimedOut",
            f"{observation.produced - observation.finished} of {observation.produced} jobs "
            f"unfinished after drainTimeoutSeconds={spec.drain_timeout_seconds}",
        )
    return None
