"""Writes to BacklogScaler objects themselves: the status subresource.

`patch_status(api, namespace, name, status)` merge-patches `.status` through
the status subresource (so spec and metadata are never touched and the
operator needs only `backlogscalers/status` patch). Called by scaler.reconcile.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import rest

GROUP = "backlog.dev"
VERSION = "v1alpha1"
PLURAL = "backlogscalers"
KIND = "BacklogScaler"
API_VERSION = f"{GROUP}/{VERSION}"


def scaler_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{quote(name)}"


def patch_status(
    api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch `.status`; returns the stored status. A 404 (deleted meanwhile) -> {}."""
    try:
        body = rest.request(
            api,
            "PATCH",
            scaler_path(namespace, name) + "/status",
            body={"status": status},
            content_type=rest.MERGE_PATCH,
        )
    except client.ApiException as error:
        if error.status == 404:
            return {}
        raise
    stored: dict[str, Any] = body.get("status") or {}
    return stored
