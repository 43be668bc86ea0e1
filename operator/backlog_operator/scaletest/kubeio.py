"""ScaleTest's reads and writes against the Kubernetes API (blocking; call in a thread).

Status patches through the status subresource (kube.resources), Events, the DSN
Secret (via kube.secrets), the trace ConfigMap, and the BacklogScalers the run
samples (their status replicas and spec.source.stages). Called by scaletest/daemon.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import events, resources, rest
from backlog_operator.kube import scalers as bs
from backlog_operator.scaletest.sampler import ScalerReading

GROUP = resources.GROUP
VERSION = resources.VERSION
PLURAL = "scaletests"
KIND = "ScaleTest"


def patch_status(
    api: client.ApiClient, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch .status; returns the stored status ({} if the object is gone)."""
    return resources.patch_status(api, PLURAL, namespace, name, status)


def post_event(
    api: client.ApiClient, namespace: str, name: str, uid: str, event: events.Event, now: datetime
) -> None:
    involved = events.InvolvedObject(resources.API_VERSION, KIND, name, namespace, uid)
    events.post_event(api, events.event_body(involved, event, now))


class TraceNotFound(LookupError):
    """The trace ConfigMap or its key is missing."""


def read_config_map_key(api: client.ApiClient, namespace: str, name: str, key: str) -> str:
    try:
        body = rest.request(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{quote(name)}")
    except client.ApiException as error:
        raise TraceNotFound(
            f"cannot read ConfigMap {namespace}/{name}: HTTP {error.status}"
        ) from None
    data = body.get("data") or {}
    if key not in data:
        raise TraceNotFound(f"ConfigMap {namespace}/{name} has no key {key!r}")
    return str(data[key])


def read_scalers(
    api: client.ApiClient, namespace: str, names: Sequence[str]
) -> tuple[dict[str, ScalerReading], dict[str, list[str]]]:
    """Replicas from each BacklogScaler's status, and the stages each one serves."""
    readings: dict[str, ScalerReading] = {}
    stages: dict[str, list[str]] = {}
    for name in names:
        body = resources.get(api, bs.PLURAL, namespace, name)
        if body is None:
            readings[name] = ScalerReading(None, None)
            continue
        status = body.get("status") or {}
        readings[name] = ScalerReading(status.get("desiredReplicas"), status.get("currentReplicas"))
        stages[name] = list(((body.get("spec") or {}).get("source") or {}).get("stages") or [])
    return readings, stages


def read_scaler_specs(
    api: client.ApiClient, namespace: str, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The spec of each named BacklogScaler that exists (for the simulator)."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        body = resources.get(api, bs.PLURAL, namespace, name)
        if body is not None:
            found[name] = dict(body.get("spec") or {})
    return found
