"""Drain-aware scale-in: rank a workload's pods by their in-flight claims.

Before a scale-in the scaler (scaler.reconcile) reads how many jobs each pod
holds (`upload_jobs.claimed_by` = pod name, state working) and calls
`annotate_pods`, which sets `controller.kubernetes.io/pod-deletion-cost` on the
target's pods so the ReplicaSet controller deletes idle pods first. Pods whose
annotation already has the right value are not patched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import rest

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# Idle pods get the lowest cost; a pod created after our listing is unannotated,
# which the controller reads as 0 too, so it ties with idle pods, never with busy ones.
IDLE_COST = 0
MAX_COST = 2**31 - 1  # the annotation must parse as an int32


@dataclass(frozen=True)
class PodCost:
    """One pod, its current annotation (None when absent) and the cost it should get."""

    name: str
    current: str | None
    desired: int

    @property
    def needs_patch(self) -> bool:
        return self.current != str(self.desired)


def cost_for(claims: int) -> int:
    """The deletion cost of a pod holding `claims` in-flight jobs: more work, costlier."""
    return IDLE_COST if claims <= 0 else min(claims, MAX_COST)


def plan_costs(pods: Iterable[dict[str, Any]], claims: Mapping[str, int]) -> list[PodCost]:
    """Pure: the cost each live pod should carry. Terminating pods are left alone."""
    plan = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = str(meta["name"])
        current = (meta.get("annotations") or {}).get(DELETION_COST)
        plan.append(PodCost(name, current, cost_for(claims.get(name, 0))))
    return sorted(plan, key=lambda p: p.name)


def cost_patch(cost: int) -> dict[str, Any]:
    """The merge patch that sets one pod's deletion cost."""
    return {"metadata": {"annotations": {DELETION_COST: str(cost)}}}


def list_pods(api: client.ApiClient, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching a /scale status selector (empty when the selector is empty)."""
    if not selector:
        return []
    body = rest.request(
        api,
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        query=[("labelSelector", selector)],
    )
    return list(body.get("items") or [])


def annotate_pods(
    api: client.ApiClient, namespace: str, selector: str, claims: Mapping[str, int]
) -> list[PodCost]:
    """Set the deletion cost on every pod of the selector; return what was patched."""
    patched = []
    for cost in plan_costs(list_pods(api, namespace, selector), claims):
        if not cost.needs_patch:
            continue
        try:
            rest.request(
                api,
                "PATCH",
                f"/api/v1/namespaces/{namespace}/pods/{quote(cost.name)}",
                body=cost_patch(cost.desired),
                content_type=rest.MERGE_PATCH,
            )
        except client.ApiException as error:
            if error.status == 404:  # gone meanwhile: nothing to protect
                continue
            raise
        patched.append(cost)
    return patched
