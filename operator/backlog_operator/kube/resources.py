"""Our custom resources (backlog.dev/v1alpha1) as plain JSON: paths, reads, status patches.

`get(api, plural, namespace, name)` returns the object, or None when it does not
exist; `patch_status(api, plural, namespace, name, status)` merge-patches
`.status` through the status subresource (so spec and metadata are never touched
and the operator needs only `<plural>/status` patch). Called by kube.scalers
(BacklogScalers) and scaletest.kubeio (ScaleTests, and the scalers a run samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import rest

GROUP = "backlog.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def path(plural: str, namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{quote(name)}"


def get(api: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist (404)."""
    try:
        return rest.request(api, "GET", path(plural, namespace, name))
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def patch_status(
    api: client.ApiClient, plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch `.status`; returns the stored status. A 404 (deleted meanwhile) -> {}."""
    try:
        body = rest.request(
            api,
            "PATCH",
            path(plural, namespace, name) + "/status",
            body={"status": dict(status)},
            content_type=rest.MERGE_PATCH,
        )
    except client.ApiException as error:
        if error.status == 404:
            return {}
        raise
    stored: dict[str, Any] = body.get("status") or {}
    return stored
