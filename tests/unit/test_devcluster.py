"""Unit tests for the pure parts of devcluster: PKI contents, pod command and env
resolution (podenv), process records (procs). No cluster needed."""

from __future__ import annotations

import base64
import ipaddress
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from devcluster import procs
from devcluster.pki import ensure_pki
from devcluster.podenv import ContainerConfigError, entrypoint, expand, launch_spec


def test_pki_serving_cert_names_and_admin_group(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    serving = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")} <= ips
    admin = x509.load_pem_x509_certificate(pki.client_cert("admin").read_bytes())
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    kcm = x509.load_pem_x509_certificate(pki.client_cert("controller-manager").read_bytes())
    cn = kcm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "system:kube-controller-manager"
    # Signed by our CA, and a second call keeps the same files.
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    serving.verify_directly_issued_by(ca)
    assert ensure_pki(tmp_path).serving_cert.read_bytes() == pki.serving_cert.read_bytes()


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


@pytest.mark.parametrize(
    ("image", "mapped"),
    [
        ("ghcr.io/acme/backlog-operator:0.1", ("backlog-operator",)),
        ("backlog-operator", ("backlog-operator",)),
        ("localhost:5000/backlog-operator@sha256:abc", ("backlog-operator",)),
        ("python:3.11", None),
        ("acme/not-backlog-operator-x:1", None),
    ],
)
def test_image_entrypoint_mapping(image: str, mapped: tuple[str, ...] | None) -> None:
    assert entrypoint(image) == mapped


def _pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
        "spec": {"nodeName": "local-0", "containers": [{"name": "c", **container}]},
    }


def _lookup(kind: str, ns: str, name: str) -> dict[str, Any] | None:
    objects = {
        ("secret", "ns", "db"): {"data": {"dsn": base64.b64encode(b"postgres://x").decode()}},
        ("configmap", "ns", "cfg"): {"data": {"level": "debug"}},
    }
    return objects.get((kind, ns, name))


def test_launch_spec_resolves_every_env_source() -> None:
    container = {
        "image": "ghcr.io/acme/backlog-operator:1",
        "args": ["run", "--ns=$(NS)"],
        "env": [
            {"name": "PLAIN", "value": "v"},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "DSN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "dsn"}}},
            {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "COMBO", "value": "$(PLAIN)+$(NS)"},
        ],
    }
    spec = launch_spec(_pod(container), _lookup, {"PATH": "/venv/bin", "PLAIN": "base"})
    assert spec.argv == ("backlog-operator", "run", "--ns=ns")
    assert spec.env["PATH"] == "/venv/bin" and spec.env["PLAIN"] == "v"
    assert spec.env["IP"] == "127.0.0.1" and spec.env["APP"] == "x"
    assert spec.env["DSN"] == "postgres://x" and spec.env["LVL"] == "debug"
    assert spec.env["COMBO"] == "v+ns" and spec.env["HOSTNAME"] == "p"


def test_missing_secret_and_unknown_image_are_config_errors() -> None:
    missing = {
        "command": ["x"],
        "env": [{"name": "D", "valueFrom": {"secretKeyRef": {"name": "no", "key": "k"}}}],
    }
    with pytest.raises(ContainerConfigError, match="not found"):
        launch_spec(_pod(missing), _lookup, {})
    optional = {
        "command": ["x"],
        "env": [
            {
                "name": "D",
                "valueFrom": {"secretKeyRef": {"name": "no", "key": "k", "optional": True}},
            }
        ],
    }
    assert "D" not in launch_spec(_pod(optional), _lookup, {}).env
    with pytest.raises(ContainerConfigError, match="no local entrypoint"):
        launch_spec(_pod({"image": "python:3.11"}), _lookup, {})


def test_proc_record_only_matches_the_same_process(tmp_path: Path) -> None:
    proc, rec = procs.spawn(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log"
    )
    try:
        assert procs.is_running(rec)
        other = procs.ProcRecord(rec.name, rec.pid, rec.start_ticks + 1, rec.argv)
        assert not procs.is_running(other), "a different start time is another process"
        assert not procs.signal_group(other, signal.SIGTERM)
        assert proc.poll() is None, "the mismatching record must not signal it"
        procs.stop(rec, grace=5)
        assert proc.poll() is not None  # procs.stop reaped it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not procs.is_running(rec)


def test_cluster_stop_signals_only_processes_whose_record_still_matches(tmp_path: Path) -> None:
    from devcluster.cluster import ClusterState, LocalCluster, Ports

    ours, ours_rec = procs.spawn("etcd", ["sleep", "60"], tmp_path / "a.log")
    other, other_rec = procs.spawn("kube-apiserver", ["sleep", "61"], tmp_path / "b.log")
    # A stale record: same pid and start time, but the command line differs, as
    # when a recorded pid now belongs to someone else's process.
    stale = procs.ProcRecord(other_rec.name, other_rec.pid, other_rec.start_ticks, ("etcd",))
    cluster = LocalCluster(tmp_path, bin_dir=tmp_path)
    (tmp_path / "state.json").write_text(
        json.dumps(ClusterState(Ports(1, 2, 3, 4), (ours_rec, stale)).to_json())
    )
    try:
        assert cluster.running() is None, "a partial cluster is not a running one"
        assert cluster.stop()
        assert ours.poll() is not None and not procs.is_running(ours_rec)
        assert other.poll() is None, "a process we cannot prove is ours is left alone"
        state = cluster.load_state()
        assert state is not None and state.procs == () and state.ports == Ports(1, 2, 3, 4)
        assert not cluster.stop(), "nothing left to stop"
    finally:
        for p in (ours, other):
            if p.poll() is None:
                p.kill()
                p.wait()
