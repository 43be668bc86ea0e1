"""Pure builders for a ScaleTest's status patches and Events.

`phase_patch(...)` is the merge patch for a phase change (phase, its start time,
conditions, message; start/completion times and the verdict when they apply);
`progress_patch(...)` the per-tick progress. Conditions follow the Kubernetes
API conventions through kube.status.merge_conditions:
- Running: True from the first phase until a terminal one;
- Completed: True in Succeeded/Failed, with the reason the run ended;
- Ready: False while the run cannot reach its Secret or database (it retries).
Called by scaletest/daemon.py; unit-tested on plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from backlog_operator.kube import events
from backlog_operator.kube.status import Condition, merge_conditions, timestamp
from backlog_operator.scaletest.phases import Phase, Verdict
from backlog_operator.scaletest.transitions import Transition

RUNNING = "Running"
COMPLETED = "Completed"
READY = "Ready"


def phase_conditions(phase: Phase, reason: str, message: str) -> tuple[Condition, ...]:
    if phase.terminal:
        return (
            Condition(RUNNING, "False", reason, message),
            Condition(COMPLETED, "True", reason, message),
        )
    return (
        Condition(RUNNING, "True", reason, message),
        Condition(COMPLETED, "False", "InProgress", f"phase {phase.value}"),
    )


def phase_patch(
    previous: Mapping[str, Any],
    transition: Transition,
    *,
    generation: int,
    now: datetime,
    run_id: str,
    verdict: Verdict | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status merge patch that records `transition`."""
    wanted = phase_conditions(transition.target, transition.reason, transition.message)
    kept = [
        c for c in previous.get("conditions") or () if c.get("type") not in (RUNNING, COMPLETED)
    ]
    conditions = merge_conditions(previous.get("conditions"), wanted, generation, now)
    patch: dict[str, Any] = {
        "phase": transition.target.value,
        "phaseStartTime": timestamp(now),
        "runId": run_id,
        "observedGeneration": generation,
        "message": transition.message[:4096],
        "conditions": kept + conditions,
    }
    if not previous.get("startTime"):
        patch["startTime"] = timestamp(now)
    if transition.target.terminal:
        patch["completionTime"] = timestamp(now)
    if verdict is not None:
        patch["verdict"] = verdict.value
    if extra:
        patch.update(extra)
    return patch


def ready_patch(
    previous: Mapping[str, Any], ok: bool, reason: str, message: str, generation: int, now: datetime
) -> dict[str, Any]:
    """Ready condition only (the other conditions are carried over unchanged)."""
    others = [c for c in previous.get("conditions") or () if c.get("type") != READY]
    ready = merge_conditions(
        previous.get("conditions"),
        (Condition(READY, "True" if ok else "False", reason, message),),
        generation,
        now,
    )
    return {"conditions": others + ready}


def ready_changed(previous: Mapping[str, Any], ok: bool, reason: str) -> bool:
    for condition in previous.get("conditions") or ():
        if condition.get("type") == READY:
            return condition.get("status") != ("True" if ok else "False") or (
                condition.get("reason") != reason
            )
    return True


def progress_patch(
    *,
    requested: int,
    created: int,
    done: int,
    deadletter: int,
    pods_deleted: int,
    requested_rate: float | None,
) -> dict[str, Any]:
    progress: dict[str, Any] = {
        "jobsRequested": requested,
        "jobsCreated": created,
        "jobsDone": done,
        "jobsDeadletter": deadletter,
        "podsDeleted": pods_deleted,
    }
    if requested_rate is not None:
        progress["requestedRatePerSecond"] = round(requested_rate, 3)
    return {"progress": progress}


def phase_event(transition: Transition) -> events.Event:
    """Normal for progress, Warning when the run fails."""
    kind = events.WARNING if transition.target is Phase.FAILED else events.NORMAL
    return events.Event(kind, transition.reason, f"{transition.target.value}: {transition.message}")
