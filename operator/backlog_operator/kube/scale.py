"""Read and patch the /scale subresource of any scalable workload.

`ScaleClient(api).read(ref, namespace)` and `.patch(ref, namespace, replicas)`
work for Deployments, StatefulSets, ReplicaSets and any custom resource with a
scale subresource: the kind is resolved to its plural through API discovery
(cached per group/version). Called by the scaler's reconcile step
(scaler.reconcile), which patches only when the desired count differs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from backlog_operator.kube import rest

# The common kinds need no discovery round trip (and no discovery permission).
WELL_KNOWN_PLURALS: dict[tuple[str, str], str] = {
    ("apps", "Deployment"): "deployments",
    ("apps", "StatefulSet"): "statefulsets",
    ("apps", "ReplicaSet"): "replicasets",
    ("", "ReplicationController"): "replicationcontrollers",
}


class TargetNotFound(LookupError):
    """The scaleTargetRef names a kind without /scale, or an object that does not exist."""


@dataclass(frozen=True)
class TargetRef:
    """spec.scaleTargetRef."""

    api_version: str
    kind: str
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @classmethod
    def from_spec(cls, ref: dict[str, Any]) -> TargetRef:
        return cls(str(ref["apiVersion"]), str(ref["kind"]), str(ref["name"]))

    def describe(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Scale:
    """A /scale reading: desired (spec) and observed (status) replicas and the pod selector."""

    replicas: int
    status_replicas: int
    selector: str  # label selector in string form; "" when the workload reports none
    resource_version: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Scale:
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        return cls(
            replicas=int(spec.get("replicas") or 0),
            status_replicas=int(status.get("replicas") or 0),
            selector=str(status.get("selector") or ""),
            resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""),
        )


def scale_body(replicas: int) -> dict[str, Any]:
    """The merge patch that sets the replicas (pure; tests compare it)."""
    return {"spec": {"replicas": replicas}}


class ScaleClient:
    """Reads and patches /scale; thread-safe (the scaler calls it from worker threads)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._plurals: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def path(self, ref: TargetRef, namespace: str) -> str:
        plural = self._plural(ref)
        prefix = f"/apis/{ref.group}/{ref.version}" if ref.group else f"/api/{ref.version}"
        return f"{prefix}/namespaces/{namespace}/{plural}/{ref.name}/scale"

    def read(self, ref: TargetRef, namespace: str) -> Scale:
        try:
            return Scale.from_body(rest.request(self._api, "GET", self.path(ref, namespace)))
        except client.ApiException as error:
            if error.status == 404:
                raise TargetNotFound(f"{ref.describe()} not found in {namespace}") from None
            raise

    def patch(self, ref: TargetRef, namespace: str, replicas: int) -> Scale:
        """Set spec.replicas; a merge patch, so no read-modify-write race on the object."""
        try:
            body = rest.request(
                self._api,
                "PATCH",
                self.path(ref, namespace),
                body=scale_body(replicas),
                content_type=rest.MERGE_PATCH,
            )
        except client.ApiException as error:
            if error.status == 404:
                raise TargetNotFound(f"{ref.describe()} not found in {namespace}") from None
            raise
        return Scale.from_body(body)

    def _plural(self, ref: TargetRef) -> str:
        key = (ref.group, ref.kind)
        known = WELL_KNOWN_PLURALS.get(key)
        if known is not None:
            return known
        with self._lock:
            cached = self._plurals.get(key)
        if cached is not None:
            return cached
        plural = discover_plural(self._api, ref)
        with self._lock:
            self._plurals[key] = plural
        return plural


def discover_plural(api: client.ApiClient, ref: TargetRef) -> str:
    """Find the resource of `ref.kind` in its group/version that has a scale subresource."""
    path = f"/apis/{ref.api_version}" if ref.group else f"/api/{ref.version}"
    try:
        listing = rest.request(api, "GET", path)
    except client.ApiException as error:
        if error.status == 404:
            raise TargetNotFound(f"API {ref.api_version} is not served") from None
        raise
    names = {str(r.get("name", "")) for r in listing.get("resources", [])}
    for resource in listing.get("resources", []):
        name = str(resource.get("name", ""))
        if resource.get("kind") == ref.kind and "/" not in name and f"{name}/scale" in names:
            return name
    raise TargetNotFound(f"{ref.kind} in {ref.api_version} has no /scale subresource")
