"""Turn a pod's first container into a local command line and environment.

Called by `devcluster.node` just before it starts a pod's process. Works on raw
pod JSON (camelCase, as the API serves it). The image is ignored except for the
entrypoint mapping below; see docs/decisions/0002-process-node.md.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

POD_IP = "127.0.0.1"
# Image repository suffix -> the local command that stands in for its entrypoint.
IMAGE_ENTRYPOINTS: Mapping[str, tuple[str, ...]] = {"backlog-operator": ("backlog-operator",)}

# (kind, namespace, name) -> the object's JSON, or None when it does not exist.
Lookup = Callable[[str, str, str], dict[str, Any] | None]


class ContainerConfigError(Exception):
    """The container cannot start yet (a missing Secret key, no command...): kubelet's
    CreateContainerConfigError. The node retries later."""


@dataclass(frozen=True)
class LaunchSpec:
    argv: tuple[str, ...]
    env: dict[str, str]


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown references stay as written."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(repl, text)


def image_repository(image: str) -> str:
    """`reg:5000/team/backlog-operator:1.2@sha256:..` -> `reg:5000/team/backlog-operator`."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def entrypoint(image: str) -> tuple[str, ...] | None:
    repo = image_repository(image)
    for suffix, argv in IMAGE_ENTRYPOINTS.items():
        if repo == suffix or repo.endswith("/" + suffix):
            return argv
    return None


def field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef {path!r}")


def _key_ref(kind: str, ns: str, ref: Mapping[str, Any], lookup: Lookup) -> str | None:
    obj = lookup(kind, ns, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{ref["name"]}" not found')
    if kind == "secret":
        data = obj.get("data") or {}
        if ref["key"] in data:
            return base64.b64decode(data[ref["key"]]).decode()
    else:
        data = obj.get("data") or {}
        if ref["key"] in data:
            return str(data[ref["key"]])
    if optional:
        return None
    raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")


def _env_from(ns: str, sources: Sequence[Mapping[str, Any]], lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in sources:
        prefix = src.get("prefix", "")
        for kind, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(field)
            if not ref:
                continue
            obj = lookup(kind, ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind} "{ref["name"]}" not found')
            for key, value in (obj.get("data") or {}).items():
                env[prefix + key] = base64.b64decode(value).decode() if kind == "secret" else value
    return env


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup
) -> dict[str, str]:
    """The container's own environment (envFrom, then env in order, with expansion)."""
    ns = pod["metadata"]["namespace"]
    env = _env_from(ns, container.get("envFrom") or [], lookup)
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "secret" if "secretKeyRef" in source else "configmap"
            value = _key_ref(
                kind, ns, source.get("secretKeyRef") or source["configMapKeyRef"], lookup
            )
            if value is not None:
                env[name] = value
        else:
            # resourceFieldRef: no cgroup limits here, so there is no honest value.
            raise ContainerConfigError(
                f"env {name}: only value, fieldRef, secretKeyRef and "
                "configMapKeyRef are supported by the process node"
            )
    return env


def launch_spec(
    pod: Mapping[str, Any],
    lookup: Lookup,
    base_env: Mapping[str, str],
) -> LaunchSpec:
    """argv and full environment for the pod's first container.

    `base_env` is what every pod process gets (PATH with the venv first,
    KUBECONFIG...); the container's env overrides it, as in a real container.
    """
    container = pod["spec"]["containers"][0]
    own = container_env(pod, container, lookup)
    env = {**base_env, "HOSTNAME": pod["metadata"]["name"], **own}
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command:
        mapped = entrypoint(container.get("image", ""))
        if mapped is None:
            raise ContainerConfigError(
                f"image {container.get('image')!r} has no local entrypoint: give the container"
                " a command (the process node ignores images)"
            )
        command = list(mapped)
    argv = tuple(expand(part, own) for part in command + args)
    return LaunchSpec(argv, env)
