"""What the transition functions read (Observation) and return (Transition).

Frozen values only. Called by every module of scaletest/transitions/.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backlog_operator.scaletest.phases import Phase, Verdict


@dataclass(frozen=True)
class Observation:
    """One tick's view of a run: its phase, the current part's progress, the timeline.

    `produced`, `requested` and `finished` (done or deadletter) count the jobs of
    the part the phase works on (baseline jobs in Baseline, load jobs afterwards).
    """

    phase: Phase
    produced: int = 0
    requested: int = 0
    finished: int = 0
    part_started_at: datetime | None = None
    part_duration_seconds: int = 0
    drain_started_at: datetime | None = None
    simulated_supported: bool = False
    # Set by the shell once analysis has run (Analyzing only).
    verdict: Verdict | None = None
    verdict_message: str = ""
    # (reason, message) of an error the run cannot survive (a missing Secret, a bad trace).
    fatal_error: tuple[str, str] | None = None


@dataclass(frozen=True)
class Transition:
    """Move to `target`; reason (CamelCase) and message go to the condition and the Event."""

    target: Phase
    reason: str
    message: str


def failed(reason: str, message: str) -> Transition:
    return Transition(Phase.FAILED, reason, message)


def elapsed(since: datetime | None, now: datetime) -> float:
    """Seconds from `since` to `now`; 0 when the part has not started."""
    if since is None:
        return 0.0
    return max(0.0, (now - since).total_seconds())
