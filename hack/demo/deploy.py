"""Deploy the demo: namespace, DSN Secret, peering, worker pools, BacklogScalers, ScaleTest.

Manifests live in demo/manifests/ (pools.yaml, scaletest.yaml), the same YAML
a user would `kubectl apply`. `scaletest_body(profile)` applies the short
profile's overrides. `snapshot(api)` reads what the live display shows. Called
by demo/run.py.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from demo.setup import NAMESPACE

MANIFESTS = Path(__file__).resolve().parent / "manifests"
GROUP, VERSION = "backlog.dev", "v1alpha1"
PLURALS = {"BacklogScaler": "backlogscalers", "ScaleTest": "scaletests"}
# DEMO_PROFILE=short: the same shape in about a minute (the e2e test runs it).
SHORT = {
    "baseline": {"durationSeconds": 6, "ratePerSecond": 3},
    "load": {
        "ratePerSecond": 3,
        "peakRatePerSecond": 8,
        "spikeStartSeconds": 6,
        "spikeDurationSeconds": 6,
        "durationSeconds": 18,
    },
    "drainTimeoutSeconds": 180,
}


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def scaletest_body(profile: str) -> dict[str, Any]:
    (body,) = documents("scaletest.yaml")
    if profile == "short":
        spec = body["spec"]
        for key, value in SHORT.items():
            if isinstance(value, dict):
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = value
    return copy.deepcopy(body)


def _create(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def base(api: Any, dsn: str) -> None:
    """Namespace, the DSN Secret and the KopfPeering the operator's replicas share."""
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    _create(core.create_namespace, {"metadata": {"name": NAMESPACE}})
    secret = {
        "metadata": {"name": "upload-db"},
        "data": {"dsn": base64.b64encode(dsn.encode()).decode()},
    }
    _create(core.create_namespaced_secret, NAMESPACE, secret)
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": "backlog-operator"},
    }
    _create(
        custom.create_namespaced_custom_object, "kopf.dev", "v1", NAMESPACE, "kopfpeerings", peering
    )


def pools(api: Any) -> list[str]:
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    created = []
    for doc in documents("pools.yaml"):
        kind = doc["kind"]
        if kind == "Deployment":
            _create(apps.create_namespaced_deployment, NAMESPACE, doc)
        else:
            _create(
                custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                NAMESPACE,
                PLURALS[kind],
                doc,
            )
        created.append(f"{kind}/{doc['metadata']['name']}")
    return created


def start_scaletest(api: Any, profile: str) -> str:
    body = scaletest_body(profile)
    custom: Any = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "scaletests", body)
    return str(body["metadata"]["name"])


def delete_all(api: Any) -> None:
    """Delete ScaleTests and BacklogScalers while the operator runs (it drops its finalizers)."""
    custom: Any = client.CustomObjectsApi(api)
    for plural in ("scaletests", "backlogscalers"):
        try:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural)["items"]
        except ApiException:
            continue
        for item in items:
            try:
                custom.delete_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, plural, item["metadata"]["name"]
                )
            except ApiException as error:
                if error.status != 404:
                    raise


def remaining(api: Any) -> int:
    custom: Any = client.CustomObjectsApi(api)
    return sum(
        len(custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, p)["items"])
        for p in ("scaletests", "backlogscalers")
    )


@dataclass(frozen=True)
class Pool:
    scaler: str
    ready: int
    in_flight: int
    desired: int | None
    current: int | None


@dataclass(frozen=True)
class Snapshot:
    phase: str
    done: int
    total: int
    created: int
    status: dict[str, Any]
    pools: tuple[Pool, ...]


def snapshot(api: Any, name: str) -> Snapshot:
    custom: Any = client.CustomObjectsApi(api)
    test = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "scaletests", name)
    status = dict(test.get("status") or {})
    progress = status.get("progress") or {}
    scalers = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "backlogscalers")
    found = []
    for item in scalers["items"]:
        st = item.get("status") or {}
        backlog = st.get("backlog") or {}
        found.append(
            Pool(
                scaler=item["metadata"]["name"],
                ready=int(backlog.get("ready", 0)),
                in_flight=int(backlog.get("inFlight", 0)),
                desired=st.get("desiredReplicas"),
                current=st.get("currentReplicas"),
            )
        )
    order = {"parse-workers": 0, "chunk-workers": 1, "embed-workers": 2}
    return Snapshot(
        phase=str(status.get("phase", "Pending")),
        done=int(progress.get("jobsDone", 0)),
        total=int(progress.get("jobsRequested", 0)),
        created=int(progress.get("jobsCreated", 0)),
        status=status,
        pools=tuple(sorted(found, key=lambda p: order.get(p.scaler, 9))),
    )
