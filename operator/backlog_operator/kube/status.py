"""Pure builders for a BacklogScaler's status: conditions and the status body.

`conditions_for(health)` says which conditions hold after one reconcile tick;
`merge_conditions(previous, wanted, generation, now)` applies the Kubernetes API
conventions (lastTransitionTime moves only when a condition's status changes;
observedGeneration is the generation the tick evaluated); `build_status(...)` is
the whole `.status` object. Called by scaler.reconcile; kube.scalers patches the
result. No I/O here, so unit tests compare plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backlog_operator.policy import Signals

READY = "Ready"
ACTIVE = "Active"
FALLBACK = "Fallback"
PAUSED = "Paused"

# Ready=False reasons.
SOURCE_ERROR = "SourceError"
SECRET_ERROR = "SecretError"
TARGET_NOT_FOUND = "TargetNotFound"
SCALE_ERROR = "ScaleError"
INVALID_SPEC = "InvalidSpec"


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server stores metav1.Time."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    """A condition before the bookkeeping fields: status is "True", "False" or "Unknown"."""

    type: str
    status: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Health:
    """What one tick learned, in the terms the conditions need.

    `error_reason` is None when the reading and the actuation succeeded. `active`
    and `fallback` come from the policy's Decision (None: no decision this tick).
    """

    paused_by: str | None = None  # "spec" | "annotation"
    error_reason: str | None = None
    error_message: str = ""
    active: bool | None = None
    active_reason: str = ""
    active_message: str = ""
    fallback: bool = False
    consecutive_failures: int = 0
    failure_threshold: int = 0


def _flag(value: bool) -> str:
    return "True" if value else "False"


def conditions_for(health: Health) -> tuple[Condition, ...]:
    """The four conditions after a tick: Ready, Active, Fallback, Paused."""
    if health.error_reason is None:
        ready = Condition(READY, "True", "Reconciled", "backlog read and target reconciled")
    else:
        ready = Condition(READY, "False", health.error_reason, health.error_message)
    if health.active is None:
        active = Condition(ACTIVE, "Unknown", health.error_reason or "NoDecision", "")
    elif health.active:
        active = Condition(ACTIVE, "True", health.active_reason or "Active", health.active_message)
    else:
        active = Condition(ACTIVE, "False", health.active_reason or "Idle", health.active_message)
    if health.fallback:
        fallback = Condition(
            FALLBACK,
            "True",
            "FailureThresholdReached",
            f"{health.consecutive_failures} consecutive failed readings "
            f"(threshold {health.failure_threshold})",
        )
    elif health.consecutive_failures:
        fallback = Condition(
            FALLBACK,
            "False",
            "BelowFailureThreshold",
            f"{health.consecutive_failures} consecutive failed readings "
            f"(threshold {health.failure_threshold}); replicas held",
        )
    else:
        fallback = Condition(FALLBACK, "False", "SourceHealthy", "")
    if health.paused_by == "annotation":
        paused = Condition(PAUSED, "True", "PausedByAnnotation", 'backlog.dev/paused is "true"')
    elif health.paused_by is not None:
        paused = Condition(PAUSED, "True", "PausedBySpec", "spec.paused is true")
    else:
        paused = Condition(PAUSED, "False", "NotPaused", "")
    return (ready, active, fallback, paused)


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[Condition],
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions to store: lastTransitionTime is kept unless the status changed."""
    before = {str(c.get("type")): c for c in previous or ()}
    merged = []
    for condition in wanted:
        old = before.get(condition.type)
        if (
            old is not None
            and old.get("status") == condition.status
            and old.get("lastTransitionTime")
        ):
            transition = str(old["lastTransitionTime"])
        else:
            transition = timestamp(now)
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return merged


@dataclass(frozen=True)
class StageBacklog:
    """One stage's share of the backlog, for status.backlog.stages."""

    stage: str
    ready: int
    in_flight: int
    oldest_ready_seconds: float | None = None


@dataclass(frozen=True)
class StatusReport:
    """Everything the status shows after a tick (built by scaler.reconcile)."""

    generation: int
    health: Health
    signals: Signals | None = None
    stages: tuple[StageBacklog, ...] = ()
    desired_replicas: int | None = None
    current_replicas: int | None = None
    last_scale_time: datetime | None = None
    last_reading_time: datetime | None = None
    last_scale_reason: str | None = None


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _backlog(signals: Signals, stages: Sequence[StageBacklog]) -> dict[str, Any]:
    backlog: dict[str, Any] = {"ready": signals.ready, "inFlight": signals.in_flight}
    if signals.oldest_ready_seconds is not None:
        backlog["oldestReadySeconds"] = _rounded(signals.oldest_ready_seconds)
    if stages:
        backlog["stages"] = [
            {
                "stage": s.stage,
                "ready": s.ready,
                "inFlight": s.in_flight,
                **(
                    {"oldestReadySeconds": _rounded(s.oldest_ready_seconds)}
                    if s.oldest_ready_seconds is not None
                    else {}
                ),
            }
            for s in stages
        ]
    return backlog


def build_status(
    report: StatusReport,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The `.status` to patch. Figures of a failed reading keep their previous values."""
    previous = previous or {}
    health = report.health
    status: dict[str, Any] = {
        "observedGeneration": report.generation,
        "consecutiveFailures": health.consecutive_failures,
        "fallback": health.fallback,
        "lastError": health.error_message if health.error_reason else "",
        "conditions": merge_conditions(
            previous.get("conditions"), conditions_for(health), report.generation, now
        ),
    }
    if report.desired_replicas is not None:
        status["desiredReplicas"] = report.desired_replicas
    if report.current_replicas is not None:
        status["currentReplicas"] = report.current_replicas
    if report.last_scale_time is not None:
        status["lastScaleTime"] = timestamp(report.last_scale_time)
    if report.last_scale_reason:
        status["lastScaleReason"] = report.last_scale_reason
    if report.last_reading_time is not None:
        status["lastReadingTime"] = timestamp(report.last_reading_time)
    signals = report.signals
    if signals is not None and signals.ok:
        status["backlog"] = _backlog(signals, report.stages)
        rates = {
            "arrivalRatePerSecond": signals.arrival_rate_per_s,
            "upstreamArrivalRatePerSecond": signals.upstream_arrival_rate_per_s,
            "completionRatePerSecond": signals.completion_rate_per_s,
            "serviceTimeSeconds": signals.service_time_s,
        }
        status.update({k: _rounded(v) for k, v in rates.items() if v is not None})
    return status


# Figures that drift every tick (ages, rates, the reading time): refreshed with the
# heartbeat or alongside a material change, so 200 scalers do not patch every second.
DRIFTING = frozenset(
    {
        "lastReadingTime",
        "arrivalRatePerSecond",
        "upstreamArrivalRatePerSecond",
        "completionRatePerSecond",
        "serviceTimeSeconds",
    }
)


def material(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` without the drifting figures (and without oldest-ready ages): what a patch
    must not wait for."""
    kept = {k: v for k, v in body.items() if k not in DRIFTING}
    backlog = kept.get("backlog")
    if isinstance(backlog, Mapping):
        kept["backlog"] = {
            "ready": backlog.get("ready"),
            "inFlight": backlog.get("inFlight"),
            "stages": [
                {k: v for k, v in s.items() if k != "oldestReadySeconds"}
                for s in backlog.get("stages") or []
            ],
        }
    return kept


def status_changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """True when patching `new` would change something (fields absent in `new` are kept)."""
    previous = previous or {}
    return any(previous.get(key) != value for key, value in new.items())
