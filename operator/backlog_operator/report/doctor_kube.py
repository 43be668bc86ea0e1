"""The doctor's Kubernetes checks: CRDs, operator and leader, worker pools, scalers in fallback.

`run(api, namespaces, peering)` returns a list of checks.Check for a
kubernetes.client.ApiClient. The operator counts as running when a peer of the
(Cluster)KopfPeering `peering` is alive (kopf's lastseen + lifetime), or, for a
--standalone operator, when a BacklogScaler's status.lastReadingTime is recent.
Called by report/doctor.py.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from backlog_operator.report import checks

GROUP, VERSION = "backlog.dev", "v1alpha1"
CRD_FIX = (
    "kubectl apply -k manifests/crds\n"
    "(or: helm upgrade --install backlog-operator helm/backlog-operator)"
)
# A scaler whose last reading is older than this (beyond its poll interval) is not being served.
READING_SLACK_SECONDS = 60.0


def shipped_crds() -> list[dict[str, Any]]:
    """Every CRD document in backlog_operator.api/crds (the project's single source)."""
    folder = importlib.resources.files("backlog_operator.api").joinpath("crds")
    docs: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            docs.extend(d for d in yaml.safe_load_all(entry.read_text()) if d)
    return docs


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run(
    api: client.ApiClient,
    namespaces: Sequence[str],
    peering: str,
    crds: Sequence[dict[str, Any]] | None = None,
) -> list[checks.Check]:
    """Every Kubernetes check; `crds` defaults to the shipped CRDs (tests add their own)."""
    now = datetime.now(UTC)
    try:
        info = client.VersionApi(api).get_code()
    except Exception as error:  # any transport or auth failure means the same to the user
        return [
            checks.fail(
                "kubernetes reachable",
                f"{type(error).__name__}: {str(error).splitlines()[0][:200]}",
                "check KUBECONFIG / --kubeconfig and that the API server runs",
            )
        ]
    found = [checks.ok("kubernetes reachable", f"{info.git_version} at {api.configuration.host}")]
    crd_check = _crds(api, shipped_crds() if crds is None else crds)
    found.append(crd_check)
    if crd_check.failed:
        return found  # without the CRDs nothing below can be listed
    scalers = _scalers(api, namespaces)
    found.extend(_operator(api, namespaces, peering, scalers, now))
    found.append(_pools(api, scalers))
    found.append(_fallback(scalers))
    return found


def _crds(api: client.ApiClient, docs: Sequence[dict[str, Any]]) -> checks.Check:
    name = "CRDs installed and served"
    ext: Any = client.ApiextensionsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    problems: list[str] = []
    names = []
    for doc in docs:
        crd_name, spec = doc["metadata"]["name"], doc["spec"]
        names.append(crd_name)
        try:
            crd = ext.read_custom_resource_definition(crd_name)
        except ApiException as error:
            problems.append(
                f"{crd_name} absent" if error.status == 404 else f"{crd_name}: {error.reason}"
            )
            continue
        conditions = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
        if conditions.get("Established") != "True":
            problems.append(f"{crd_name} not Established")
            continue
        served = {v.name for v in crd.spec.versions if v.served}
        for version in (v["name"] for v in spec["versions"] if v.get("served", True)):
            if version not in served:
                problems.append(f"{crd_name} does not serve {version}")
                continue
            try:
                custom.list_cluster_custom_object(
                    spec["group"], version, spec["names"]["plural"], limit=1
                )
            except ApiException as error:
                problems.append(f"{crd_name} {version} not served ({error.status})")
    if problems:
        return checks.fail(name, "; ".join(problems), CRD_FIX)
    return checks.ok(name, ", ".join(names))


def _scalers(api: client.ApiClient, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    custom: Any = client.CustomObjectsApi(api)
    if not namespaces:
        listed = custom.list_cluster_custom_object(GROUP, VERSION, "backlogscalers")
        return list(listed["items"])
    items: list[dict[str, Any]] = []
    for ns in namespaces:
        items.extend(
            custom.list_namespaced_custom_object(GROUP, VERSION, ns, "backlogscalers")["items"]
        )
    return items


@dataclass(frozen=True)
class Peer:
    where: str  # "ClusterKopfPeering/NAME" or "KopfPeering NS/NAME"
    identity: str
    priority: int
    alive: bool


def _peers(
    api: client.ApiClient, namespaces: Sequence[str], peering: str, now: datetime
) -> list[Peer]:
    custom: Any = client.CustomObjectsApi(api)
    objects: list[tuple[str, dict[str, Any]]] = []
    try:
        objects.append(
            (
                f"ClusterKopfPeering/{peering}",
                custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering),
            )
        )
    except ApiException as error:
        if error.status != 404:
            raise
    if namespaces:
        listed = [
            item
            for ns in namespaces
            for item in custom.list_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings")[
                "items"
            ]
        ]
    else:
        listed = custom.list_cluster_custom_object("kopf.dev", "v1", "kopfpeerings")["items"]
    for item in listed:
        meta = item["metadata"]
        if meta["name"] == peering:
            objects.append((f"KopfPeering {meta['namespace']}/{peering}", item))
    peers = []
    for where, obj in objects:
        for identity, info in (obj.get("status") or {}).items():
            if not isinstance(info, dict):
                continue
            seen = _time(info.get("lastseen"))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            alive = seen is not None and seen + lifetime > now
            peers.append(Peer(where, identity, int(info.get("priority", 0)), alive))
    return peers


def _operator(
    api: client.ApiClient,
    namespaces: Sequence[str],
    peering: str,
    scalers: Sequence[dict[str, Any]],
    now: datetime,
) -> list[checks.Check]:
    start_fix = (
        "start the operator: helm upgrade --install backlog-operator helm/backlog-operator,\n"
        "or locally: backlog-operator run --all-namespaces"
    )
    peers = [p for p in _peers(api, namespaces, peering, now) if p.alive]
    fresh = [s for s in scalers if _recently_read(s, now)]
    if not peers:
        if fresh:
            return [
                checks.ok(
                    "operator running",
                    f"no live peer in peering {peering!r} (standalone?); "
                    f"{len(fresh)} of {len(scalers)} scalers read recently",
                ),
                checks.skip("leader elected", "no peering in use"),
            ]
        detail = f"no live peer in any (Cluster)KopfPeering {peering!r}"
        if scalers:
            detail += f"; none of {len(scalers)} BacklogScalers was read in the last minute"
        return [
            checks.fail("operator running", detail, start_fix),
            checks.skip("leader elected", "no operator"),
        ]
    running = checks.ok(
        "operator running", f"{len(peers)} live peer(s) in {sorted({p.where for p in peers})}"
    )
    results = [running]
    for where in sorted({p.where for p in peers}):
        mine = [p for p in peers if p.where == where]
        top = max(p.priority for p in mine)
        leaders = [p for p in mine if p.priority == top]
        if len(leaders) > 1:
            results.append(
                checks.fail(
                    "leader elected",
                    f"{where}: {len(leaders)} peers share priority {top}: kopf pauses all of them",
                    "give each replica its own --priority (default: random), or run one replica",
                )
            )
        else:
            results.append(
                checks.ok(
                    "leader elected",
                    f"{where}: {leaders[0].identity} (priority {top}), {len(mine) - 1} standby",
                )
            )
    return results


def _recently_read(scaler: dict[str, Any], now: datetime) -> bool:
    status = scaler.get("status") or {}
    seen = _time(status.get("lastReadingTime"))
    if seen is None:
        return False
    poll = float((scaler.get("spec") or {}).get("pollIntervalSeconds", 5))
    return (now - seen).total_seconds() <= poll + READING_SLACK_SECONDS


def _name(scaler: dict[str, Any]) -> str:
    return f"{scaler['metadata']['namespace']}/{scaler['metadata']['name']}"


def _pools(api: client.ApiClient, scalers: Sequence[dict[str, Any]]) -> checks.Check:
    name = "worker pools healthy"
    if not scalers:
        return checks.skip(name, "no BacklogScaler found")
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    failures: list[str] = []
    waits: list[str] = []
    healthy = 0
    for scaler in scalers:
        ns = scaler["metadata"]["namespace"]
        ref = scaler["spec"]["scaleTargetRef"]
        target = f"{ref['kind']} {ns}/{ref['name']}"
        read = {
            "Deployment": apps.read_namespaced_deployment,
            "StatefulSet": apps.read_namespaced_stateful_set,
        }.get(ref["kind"])
        if read is None:
            healthy += 1  # any /scale resource: nothing more we know how to inspect
            continue
        try:
            workload = read(ref["name"], ns)
        except ApiException as error:
            if error.status == 404:
                failures.append(f"{_name(scaler)}: {target} does not exist")
                continue
            raise
        wanted = workload.spec.replicas or 0
        ready = (workload.status.ready_replicas or 0) if workload.status else 0
        if ready >= wanted:
            healthy += 1
            continue
        selector = ",".join(
            f"{k}={v}" for k, v in (workload.spec.selector.match_labels or {}).items()
        )
        broken = _broken_pods(core, ns, selector)
        line = f"{target}: {ready}/{wanted} ready"
        if broken:
            failures.append(f"{line}; {'; '.join(broken[:3])}")
        else:
            waits.append(f"{line} (starting)")
    if failures:
        return checks.fail(
            name,
            " | ".join(failures + waits),
            "create the missing workload or fix its pods: kubectl describe pod / kubectl logs",
        )
    if waits:
        return checks.warn(
            name, " | ".join(waits), "wait a moment and run doctor again; pods are starting"
        )
    return checks.ok(name, f"{healthy} pool(s) at their replicas")


def _broken_pods(core: Any, namespace: str, selector: str) -> list[str]:
    out = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        if pod.status is None:
            continue
        if pod.status.phase == "Failed":
            out.append(f"pod {pod.metadata.name} Failed")
            continue
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting if cs.state else None
            terminated = cs.state.terminated if cs.state else None
            if waiting is not None and waiting.reason in (
                "CrashLoopBackOff",
                "Error",
                "CreateContainerConfigError",
            ):
                out.append(f"pod {pod.metadata.name} {waiting.reason}")
            elif terminated is not None and terminated.exit_code:
                out.append(f"pod {pod.metadata.name} exited {terminated.exit_code}")
            elif (cs.restart_count or 0) > 0 and not cs.ready:
                out.append(f"pod {pod.metadata.name} restarted {cs.restart_count}x")
    return out


def _fallback(scalers: Sequence[dict[str, Any]]) -> checks.Check:
    name = "no scaler in fallback"
    if not scalers:
        return checks.skip(name, "no BacklogScaler found")
    stuck = []
    for scaler in scalers:
        status = scaler.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        fallback = conditions.get("Fallback") or {}
        if fallback.get("status") == "True" or status.get("fallback") is True:
            why = fallback.get("message") or status.get("lastError") or "no reading"
            stuck.append(f"{_name(scaler)}: {why}")
    if stuck:
        return checks.fail(
            name,
            " | ".join(stuck),
            "the scaler cannot read its backlog: check its DSN Secret and the database\n"
            "(kubectl describe bs NAME shows lastError; doctor --dsn checks the database)",
        )
    return checks.ok(name, f"{len(scalers)} scaler(s) reading normally")
