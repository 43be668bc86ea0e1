"""Keep the process node registered and Ready.

Started by `devcluster.node.NodeAgent.run()` as a thread: creates Node
`local-0` if missing, then every `PERIOD` seconds renews its Lease in
`kube-node-lease` and patches the node's status (Ready, generous capacity),
so kube-controller-manager's node lifecycle controller never marks it NotReady
or taints it (which would evict the pods).
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import threading
from typing import Any

from kubernetes.client.rest import ApiException

log = logging.getLogger("devcluster.heartbeat")
PERIOD = 10.0
RETRY = 0.5
LEASE_SECONDS = 40
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "500", "ephemeral-storage": "500Gi"}
LEASE_NAMESPACE = "kube-node-lease"


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_status() -> dict[str, Any]:
    now = _now()

    def cond(kind: str, status: str, reason: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": reason,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "capacity": CAPACITY,
        "allocatable": CAPACITY,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": "localhost"},
        ],
        "nodeInfo": {
            "machineID": "devcluster",
            "systemUUID": "devcluster",
            "bootID": "devcluster",
            "kernelVersion": platform.release(),
            "osImage": "devcluster process node",
            "containerRuntimeVersion": "devcluster://0.1",
            "kubeletVersion": "v0.0.0-devcluster",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


class Heartbeat(threading.Thread):
    def __init__(
        self,
        core: Any,  # client.CoreV1Api, fed plain JSON dicts
        coord: Any,  # client.CoordinationV1Api
        node_name: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.core, self.coord, self.node_name, self.stop_event = core, coord, node_name, stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.beat()
            except Exception as exc:  # keep beating: the API server may be (re)starting
                log.warning("heartbeat failed: %s", str(exc).splitlines()[0])
                self.stop_event.wait(RETRY)
                continue
            self.stop_event.wait(PERIOD)

    def beat(self) -> None:
        self._ensure_node()
        self.core.patch_node_status(self.node_name, {"status": node_status()})
        self._renew_lease()

    def _ensure_node(self) -> None:
        try:
            self.core.read_node(self.node_name, _preload_content=False)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "devcluster.backlog.dev/process-node": "true",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": labels},
            "status": node_status(),
        }
        self.core.create_node(body, _preload_content=False)
        log.info("registered node %s", self.node_name)

    def _renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro_now(),
        }
        try:
            self.coord.patch_namespaced_lease(
                self.node_name, LEASE_NAMESPACE, {"spec": spec}, _preload_content=False
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": self.node_name, "namespace": LEASE_NAMESPACE},
                "spec": spec,
            }
            self.coord.create_namespaced_lease(LEASE_NAMESPACE, body, _preload_content=False)
