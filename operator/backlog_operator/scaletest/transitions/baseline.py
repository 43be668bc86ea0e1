"""Baseline -> Loading: once the baseline's jobs are all produced and have finished.

A baseline whose jobs do not finish within drainTimeoutSeconds after its schedule
ends still moves on (its figures are then partial, and the message says so).
Called through transitions.decide.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest.phases import Phase
from backlog_operator.scaletest.transitions.types import Observation, Transition, elapsed


def next_phase(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    spent = elapsed(observation.part_started_at, now)
    if observation.part_started_at is None or spent < observation.part_duration_seconds:
        return None
    if observation.produced < observation.requested:
        return None
    if observation.finished >= observation.produced:
        return Transition(
            Phase.LOADING,
            "BaselineMeasured",
            f"baseline finished: {observation.finished} jobs in {spent:.1f}s",
        )
    if spent >= observation.part_duration_seconds + spec.drain_timeout_seconds:
        return Transition(
            Phase.LOADING,
            "BaselineDrainTimedOut",
            f"baseline jobs unfinished after drainTimeoutSeconds: "
            f"{observation.produced - observation.finished} of {observation.produced}",
        )
    return None
