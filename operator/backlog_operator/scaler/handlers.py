"""kopf wiring of the BacklogScaler operator: thin handlers, no logic.

Imported by scaler.cli before kopf.run, which registers the handlers:
- startup: tune kopf's settings and build the shared Runtime (kube client, hubs);
- one daemon per BacklogScaler: `scaler.loop.run_scaler` until deletion, shutdown
  or a peering pause (kopf stops daemons while a peer with priority runs);
- cleanup: stop the hubs and close the database pools.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from backlog_operator.kube import scalers
from backlog_operator.scaler import loop
from backlog_operator.scaler.runtime import RunOptions, Runtime

logger = logging.getLogger(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings (see docs/decisions/0015) and the shared runtime."""
    options: RunOptions = memo.get("options") or RunOptions()
    settings.posting.reporting_component = "backlog-operator"
    settings.posting.level = logging.WARNING  # our own Events go through kube/events
    settings.peering.stealth = True  # keep-alives every ~50 s are noise in the logs
    settings.peering.name = options.peering
    # Watches: reconnect before a silent connection can hide changes for long.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # Daemons exit at once on cancellation; no persisted progress is needed for them.
    settings.background.instant_exit_timeout = 0.5
    settings.persistence.finalizer = "backlog.dev/kopf-finalizer"
    memo["runtime"] = Runtime.create(options)


# kopf first sets `stopped` and waits cancellation_backoff for a graceful exit (the loop
# checks every second), then cancels; after cancellation_timeout it gives up.
@kopf.daemon(
    scalers.GROUP,
    scalers.VERSION,
    scalers.PLURAL,
    cancellation_backoff=3.0,
    cancellation_timeout=5.0,
)
async def scale(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    """One long-lived loop per BacklogScaler (a live body: spec changes apply next tick)."""
    await loop.run_scaler(memo["runtime"], body, stopped)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.close()
