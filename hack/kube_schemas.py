#!/usr/bin/env python3
"""JSON schemas of built-in Kubernetes kinds for kubeconform, from a live API server.

kubeconform downloads its schemas from the internet by default; this machine (and CI)
has no such access. This script reads the API server's own `/openapi/v2` (the pinned
kube-apiserver from hack/versions.env) and writes standalone, strict schemas, named as
kubeconform's default template expects (`{kind}-{group}-{version}.json`, e.g.
`deployment-apps-v1.json`), for the kinds this project ships, under
hack/schemas/kubernetes/. The committed files are checked against the live server by
tests/integration/test_manifests.py (docs/decisions/0027-offline-kubeconform.md).

    make cluster-up && .venv/bin/python hack/kube_schemas.py --kubeconfig .local/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "hack" / "schemas" / "kubernetes"

# (group, version, kind) of every built-in kind in manifests/, manifests/examples/ and the chart.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "Namespace"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("batch", "v1", "Job"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
)
# Types whose OpenAPI v2 description is looser or stricter than what YAML users write.
SPECIAL: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "oneOf": [{"type": "string"}, {"type": "integer"}]
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    },
}


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's `{{.ResourceKind}}{{.KindSuffix}}.json` for one kind."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def _definition_name(openapi: dict[str, Any], group: str, version: str, kind: str) -> str:
    for name, definition in openapi["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (group, version, kind):
                return str(name)
    raise KeyError(f"{group}/{version} {kind} is not served by this API server")


def _resolve(node: Any, definitions: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """Inline every $ref (standalone); a recursive reference becomes `{}` (any value)."""
    if isinstance(node, list):
        return [_resolve(item, definitions, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in SPECIAL:
            return dict(SPECIAL[name])
        if name in stack:
            return {}
        return _resolve(definitions[name], definitions, (*stack, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "format"):
            continue
        if key == "properties":
            out[key] = {k: _resolve(v, definitions, stack) for k, v in value.items()}
        else:
            out[key] = _resolve(value, definitions, stack)
    if "properties" in out:
        out.setdefault("type", "object")
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)  # strict: a typo is an error
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]  # as kubernetes-json-schema: null is allowed
    return out


def schemas(openapi: dict[str, Any]) -> dict[str, str]:
    """File name -> JSON text for every kind in KINDS."""
    definitions = openapi["definitions"]
    out: dict[str, str] = {}
    for group, version, kind in KINDS:
        name = _definition_name(openapi, group, version, kind)
        schema = _resolve(definitions[name], definitions, (name,))
        schema["type"] = "object"
        api_version = f"{group}/{version}" if group else version
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [api_version]}
        props["kind"] = {"type": "string", "enum": [kind]}
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
        out[file_name(group, version, kind)] = json.dumps(schema, separators=(",", ":")) + "\n"
    return out


def kubectl(kubeconfig: str, *args: str) -> str:
    """Run the pinned kubectl (.local/bin first) against `kubeconfig`."""
    binary = shutil.which("kubectl", path=f"{ROOT / '.local' / 'bin'}:{os.environ.get('PATH', '')}")
    if binary is None:
        raise SystemExit("kubectl not found: run `make tools`")
    return subprocess.run(
        [binary, "--kubeconfig", kubeconfig, *args], check=True, capture_output=True, text=True
    ).stdout


def fetch_openapi(kubeconfig: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(kubectl(kubeconfig, "get", "--raw", "/openapi/v2"))
    return data


def server_version(kubeconfig: str) -> str:
    info = json.loads(kubectl(kubeconfig, "version", "-o", "json"))
    return str(info["serverVersion"]["gitVersion"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=str(ROOT / ".local" / "kubeconfig"))
    args = parser.parse_args(argv)
    version = server_version(args.kubeconfig)
    files = schemas(fetch_openapi(args.kubeconfig))
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)
    (OUT / "VERSION").write_text(version + "\n")
    print(f"wrote {len(files)} schemas from {version} to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
