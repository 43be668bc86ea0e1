"""kopf wiring of ScaleTest: thin handlers, no logic.

Importing this module registers the handlers with kopf (the operator's entry point,
`backlog-operator run` in scaler/cli.py, imports it next to scaler.handlers):
- startup: the shared ScaleTest runtime (its own kube client);
- one daemon per ScaleTest: `daemon.run_scaletest` drives the phase machine until
  the run is terminal (a restarted operator resumes from status + database);
- delete (kopf keeps its finalizer on the object until this returns): stop the
  producers and chaos, clean up per spec.cleanup; results rows are kept;
- cleanup: stop every run's background tasks on operator shutdown.
"""

from __future__ import annotations

from typing import Any

import kopf

from backlog_operator.scaletest import daemon, kubeio
from backlog_operator.scaletest.context import Runtime

MEMO_KEY = "scaletests"


@kopf.on.startup()
async def start_scaletests(memo: kopf.Memo, **_: Any) -> None:
    memo[MEMO_KEY] = Runtime.create()


@kopf.daemon(kubeio.GROUP, kubeio.VERSION, kubeio.PLURAL, cancellation_timeout=15.0)
async def drive(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    """One loop per ScaleTest; returns once the run is Succeeded or Failed."""
    await daemon.run_scaletest(memo[MEMO_KEY], body, stopped)


@kopf.on.delete(kubeio.GROUP, kubeio.VERSION, kubeio.PLURAL)
async def finalize(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await daemon.finalize(memo[MEMO_KEY], body)


@kopf.on.cleanup()
async def stop_scaletests(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get(MEMO_KEY)
    if runtime is not None:
        await runtime.close()
