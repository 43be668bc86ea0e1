"""What every scaler of one operator process shares: options, API client, hubs.

`RunOptions` is what `backlog-operator run` was given; `Runtime` is built once by
the startup handler (scaler.handlers) and handed to every per-scaler loop through
kopf's memo. `Runtime.close()` stops the signal hubs (and their pools).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kubernetes import client

from backlog_operator import metrics
from backlog_operator.kube import client as kube_client
from backlog_operator.kube.scale import ScaleClient
from backlog_operator.sources.hub import HubSettings, SignalHubs


@dataclass(frozen=True)
class RunOptions:
    """`backlog-operator run` options (defaults documented in scaler.cli)."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    metrics_port: int = 8080
    health_port: int = 8081
    standalone: bool = False
    peering: str = "backlog-operator"
    priority: int | None = None
    # Status is re-patched at least this often even if nothing else changed, so
    # status.lastReadingTime shows the scaler is alive without a patch per tick.
    status_heartbeat_s: float = 30.0
    # Re-read the target's /scale at least this often (and always before patching it).
    scale_refresh_s: float = 10.0
    # Re-read the DSN Secret this often (a rotated DSN is picked up without restart).
    secret_refresh_s: float = 60.0


def _observe_query(db: str, seconds: float, error: str | None) -> None:
    metrics.observe_source_query(db, seconds)
    if error is not None:
        kind = "timeout" if "timeout" in error.lower() else "query"
        metrics.count_source_error(db, kind)


@dataclass(frozen=True)
class Runtime:
    """Shared services. Threads: kube calls are blocking and run via asyncio.to_thread."""

    options: RunOptions
    api: client.ApiClient
    scales: ScaleClient
    hubs: SignalHubs
    # Bounds concurrent blocking kube calls so 200 scalers do not queue on the thread pool.
    kube_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))

    @classmethod
    def create(cls, options: RunOptions, hub_settings: HubSettings | None = None) -> Runtime:
        api = kube_client.load_api_client()
        hubs = SignalHubs(hub_settings or HubSettings(), observer=_observe_query)
        metrics.register_hub_stats(hubs.stats)
        return cls(options=options, api=api, scales=ScaleClient(api), hubs=hubs)

    async def close(self) -> None:
        await self.hubs.close()
        await asyncio.to_thread(self.api.close)
