"""Loading -> Draining: when the profile's time is up and every scheduled job exists.

Called through transitions.decide.
"""

from __future__ import annotations

from datetime import datetime

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.scaletest.phases import Phase
from backlog_operator.scaletest.transitions.types import Observation, Transition, elapsed


def next_phase(spec: ScaleTestSpec, observation: Observation, now: datetime) -> Transition | None:
    if observation.part_started_at is None:
        return None
    spent = elapsed(observation.part_started_at, now)
    if spent < observation.part_duration_seconds:
        return None
    if observation.produced < observation.requested:
        return None  # producers are behind (or resuming after a restart): let them finish
    return Transition(
        Phase.DRAINING,
        "LoadFinished",
        f"{observation.produced} jobs produced in {spent:.1f}s; waiting for them to finish",
    )
