"""Write self-contained kubeconfig files (credentials embedded as base64 data).

Called by `devcluster.cluster` (admin, controller-manager and node kubeconfigs)
and by `devcluster.node` (a per-pod kubeconfig holding the pod's service-account
token). Embedded data keeps a copied kubeconfig working wherever it is moved.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _document(server: str, ca_data: str, user: dict[str, str], name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {"server": server, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": name}}],
        "current-context": "devcluster",
        "preferences": {},
    }


def _write(path: Path, doc: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def write_cert_kubeconfig(
    path: Path, server: str, ca_cert: Path, cert: Path, key: Path, user: str
) -> Path:
    """A kubeconfig authenticating with a client certificate."""
    creds = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    return _write(path, _document(server, _b64(ca_cert), creds, user))


def write_token_kubeconfig(path: Path, server: str, ca_data: str, token: str, user: str) -> Path:
    """A kubeconfig authenticating with a bearer token; `ca_data` is base64 PEM."""
    return _write(path, _document(server, ca_data, {"token": token}, user))
