"""Kubernetes Events about a BacklogScaler: every scale, source failures and recoveries.

`scale_event(...)` and `event_body(...)` are pure builders (tests compare their
output); `post_event(api, body)` creates the core/v1 Event. Called by
scaler.reconcile. Messages never contain the DSN: callers pass sanitized text.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client

from backlog_operator.kube import rest

COMPONENT = "backlog-operator"
NORMAL = "Normal"
WARNING = "Warning"

# Event reasons (CamelCase, as kubectl shows them).
SCALED_UP = "ScaledUp"
SCALED_DOWN = "ScaledDown"
SOURCE_ERROR = "SourceError"
FALLBACK = "FallbackActive"
RECOVERED = "SourceRecovered"
SCALE_ERROR = "ScaleError"
PAUSED = "Paused"
RESUMED = "Resumed"
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class InvolvedObject:
    """The object an Event is about (here: a BacklogScaler)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str = ""

    def to_body(self) -> dict[str, Any]:
        body = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
        }
        if self.uid:
            body["uid"] = self.uid
        return body


@dataclass(frozen=True)
class Event:
    """What happened: type (Normal/Warning), reason and a human-readable message."""

    type: str
    reason: str
    message: str


def scale_event(from_replicas: int, to_replicas: int, target: str, why: str) -> Event:
    """'ScaledUp: Deployment/parse-worker 2 -> 5: <why>' (or ScaledDown)."""
    reason = SCALED_UP if to_replicas > from_replicas else SCALED_DOWN
    return Event(NORMAL, reason, f"{target} {from_replicas} -> {to_replicas}: {why}")


def instance_name() -> str:
    """This operator replica, for Event.reportingInstance (the pod name when in a pod)."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def event_body(obj: InvolvedObject, event: Event, now: datetime) -> dict[str, Any]:
    """A core/v1 Event (pure; `now` must be timezone-aware)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            # Unique name, like client-go's recorder: <object>.<random>.
            "name": f"{obj.name}.{uuid.uuid4().hex[:16]}",
            "namespace": obj.namespace,
        },
        "involvedObject": obj.to_body(),
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance_name(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def post_event(api: client.ApiClient, body: dict[str, Any]) -> None:
    """Create the Event in its object's namespace."""
    namespace = body["metadata"]["namespace"]
    rest.request(api, "POST", f"/api/v1/namespaces/{namespace}/events", body=body)
