"""Writes to BacklogScaler objects themselves: the status subresource.

`patch_status(api, namespace, name, status)` merge-patches `.status` through
the status subresource (kube.resources: spec and metadata are never touched and
the operator needs only `backlogscalers/status` patch). Called by scaler.reconcile.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from backlog_operator.kube import resources

GROUP = resources.GROUP
VERSION = resources.VERSION
API_VERSION = resources.API_VERSION
PLURAL = "backlogscalers"
KIND = "BacklogScaler"


def patch_status(
    api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch `.status`; returns the stored status. A 404 (deleted meanwhile) -> {}."""
    return resources.patch_status(api, PLURAL, namespace, name, status)
