"""Unit tests of kube/'s pure builders: status, conditions, events, deletion costs, scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backlog_operator.kube import deletion_cost, events, scale, status
from backlog_operator.policy import Signals

NOW = datetime(2026, 11, 29, 19, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def _by_type(conditions: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conditions}


def test_healthy_tick_gives_ready_true_and_not_paused() -> None:
    health = status.Health(active=True, active_reason="ScaleUp", active_message="demand 3.2")
    conds = _by_type(status.merge_conditions([], status.conditions_for(health), 4, NOW))
    assert list(conds) == ["Ready", "Active", "Fallback", "Paused"]
    assert conds["Ready"]["status"] == "True"
    assert conds["Active"] == {
        "type": "Active",
        "status": "True",
        "reason": "ScaleUp",
        "message": "demand 3.2",
        "lastTransitionTime": "2026-11-29T19:00:00Z",
        "observedGeneration": 4,
    }
    assert conds["Fallback"]["status"] == "False"
    assert conds["Paused"]["status"] == "False"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = status.merge_conditions([], status.conditions_for(status.Health(active=True)), 1, NOW)
    # Same statuses, new reasons and generation: times kept, generation follows.
    same = status.merge_conditions(
        first, status.conditions_for(status.Health(active=True, active_reason="Hold")), 2, LATER
    )
    assert all(c["lastTransitionTime"] == "2026-11-29T19:00:00Z" for c in same)
    assert all(c["observedGeneration"] == 2 for c in same)
    failed = status.merge_conditions(
        same,
        status.conditions_for(
            status.Health(error_reason=status.SOURCE_ERROR, error_message="timeout", active=True)
        ),
        2,
        LATER,
    )
    by_type = _by_type(failed)
    assert by_type["Ready"]["status"] == "False"
    assert by_type["Ready"]["reason"] == "SourceError"
    assert by_type["Ready"]["lastTransitionTime"] == "2026-11-29T19:05:00Z"
    assert by_type["Active"]["lastTransitionTime"] == "2026-11-29T19:00:00Z"


def test_fallback_and_paused_conditions() -> None:
    health = status.Health(
        error_reason=status.SOURCE_ERROR,
        error_message="connection refused",
        active=True,
        fallback=True,
        consecutive_failures=3,
        failure_threshold=3,
        paused_by="annotation",
    )
    conds = {c.type: c for c in status.conditions_for(health)}
    assert conds["Fallback"].status == "True"
    assert "3 consecutive" in conds["Fallback"].message
    assert conds["Paused"] == status.Condition(
        "Paused", "True", "PausedByAnnotation", 'backlog.dev/paused is "true"'
    )
    below = status.conditions_for(
        status.Health(consecutive_failures=1, failure_threshold=3, paused_by="spec")
    )
    assert below[2].reason == "BelowFailureThreshold"
    assert below[3].reason == "PausedBySpec"
    assert below[1].status == "Unknown"


def test_build_status_keeps_figures_of_a_failed_reading_out() -> None:
    signals = Signals(ready=12, in_flight=3, oldest_ready_seconds=4.56789, arrival_rate_per_s=2.0)
    report = status.StatusReport(
        generation=7,
        health=status.Health(active=True),
        signals=signals,
        stages=(status.StageBacklog("parsing", 12, 3, 4.56789),),
        desired_replicas=4,
        current_replicas=2,
        last_scale_time=NOW,
        last_scale_reason="ScaleUp",
    )
    body = status.build_status(report, None, NOW)
    assert body["backlog"] == {
        "ready": 12,
        "inFlight": 3,
        "oldestReadySeconds": 4.568,
        "stages": [{"stage": "parsing", "ready": 12, "inFlight": 3, "oldestReadySeconds": 4.568}],
    }
    assert body["arrivalRatePerSecond"] == 2.0
    assert "serviceTimeSeconds" not in body
    assert body["desiredReplicas"] == 4
    assert body["lastScaleTime"] == "2026-11-29T19:00:00Z"
    assert body["observedGeneration"] == 7
    failed = status.build_status(
        status.StatusReport(
            generation=7,
            health=status.Health(error_reason="SourceError", error_message="boom"),
            signals=Signals.failed(),
        ),
        body,
        LATER,
    )
    assert "backlog" not in failed  # merge patch keeps the last good figures
    assert failed["lastError"] == "boom"
    assert status.status_changed(body, failed)
    assert not status.status_changed(body, {"desiredReplicas": 4})


def test_scale_event_names_direction_and_numbers() -> None:
    up = events.scale_event(2, 5, "Deployment/parse-worker", "ready 120 > capacity")
    assert up.reason == events.SCALED_UP
    assert up.message == "Deployment/parse-worker 2 -> 5: ready 120 > capacity"
    down = events.scale_event(5, 0, "Deployment/parse-worker", "idle")
    assert down.reason == events.SCALED_DOWN
    obj = events.InvolvedObject("backlog.dev/v1alpha1", "BacklogScaler", "bs", "ns", "uid-1")
    body = events.event_body(obj, up, NOW)
    assert body["involvedObject"]["uid"] == "uid-1"
    assert body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["name"].startswith("bs.")
    assert body["firstTimestamp"] == "2026-11-29T19:00:00Z"
    assert body["type"] == "Normal"


def _pod(name: str, cost: str | None = None, deleting: bool = False) -> dict:
    meta: dict = {"name": name, "annotations": {}}
    if cost is not None:
        meta["annotations"][deletion_cost.DELETION_COST] = cost
    if deleting:
        meta["deletionTimestamp"] = "2026-11-29T19:00:00Z"
    return {"metadata": meta}


def test_idle_pods_get_the_lowest_cost_and_unchanged_pods_are_skipped() -> None:
    pods = [_pod("w-b", cost="0"), _pod("w-a"), _pod("w-c", cost="1"), _pod("w-d", deleting=True)]
    plan = deletion_cost.plan_costs(pods, {"w-a": 3, "w-c": 1, "gone": 9})
    assert [(p.name, p.desired, p.needs_patch) for p in plan] == [
        ("w-a", 3, True),
        ("w-b", 0, False),
        ("w-c", 1, False),
    ]
    assert deletion_cost.cost_for(0) < deletion_cost.cost_for(1)
    assert deletion_cost.cost_for(10**12) == 2**31 - 1
    assert deletion_cost.cost_patch(2) == {
        "metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "2"}}
    }


def test_scale_reading_and_target_ref() -> None:
    body = {
        "metadata": {"resourceVersion": "42"},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=w"},
    }
    assert scale.Scale.from_body(body) == scale.Scale(3, 2, "app=w", "42")
    assert scale.Scale.from_body({"spec": {}, "status": {}}).replicas == 0
    ref = scale.TargetRef.from_spec({"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"})
    assert (ref.group, ref.version) == ("apps", "v1")
    core = scale.TargetRef("v1", "ReplicationController", "rc")
    assert (core.group, core.version) == ("", "v1")
    assert scale.scale_body(5) == {"spec": {"replicas": 5}}
