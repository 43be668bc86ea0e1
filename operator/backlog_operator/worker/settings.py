"""The reference worker's settings: one frozen dataclass with documented defaults.

Built by worker/cli.py from command-line options and read by worker/base.py;
tests/unit/test_worker_settings.py pins every default.
"""

import os
import socket
from dataclasses import dataclass

from backlog_operator import pipeline


class UnknownStageError(ValueError):
    """A stage name that is not one of pipeline.STAGES."""


def parse_stages(text: str) -> tuple[str, ...]:
    """`"parsing,parsed"` -> ("parsing", "parsed"); `"all"` -> every stage. Order is kept."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return pipeline.STAGES
    if not names:
        raise UnknownStageError("no stage given (use a comma-separated list or 'all')")
    unknown = [name for name in names if name not in pipeline.STAGES]
    if unknown:
        raise UnknownStageError(
            f"unknown stage {', '.join(map(repr, unknown))}; known: {', '.join(pipeline.STAGES)}"
        )
    return tuple(dict.fromkeys(names))


def claim_order(stages: tuple[str, ...]) -> tuple[str, ...]:
    """The order the claim query tries stages in: latest pipeline stage first.

    Finishing documents already in flight before starting new ones keeps work in
    progress (and end-to-end latency) small when one worker serves many stages.
    """
    return tuple(sorted(stages, key=pipeline.STAGES.index, reverse=True))


def default_worker_name() -> str:
    """`claimed_by`: the pod name from $POD_NAME, falling back to the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker process claims, runs and finishes jobs."""

    stages: tuple[str, ...] = pipeline.STAGES
    # handler tasks running at once in this process (simulated sleeps overlap)
    concurrency: int = 16
    # most rows one claim statement takes; completions are flushed in batches up to this size
    batch_size: int = 16
    lease_seconds: float = 30.0
    # lease extension period; 0 means lease_seconds / 3
    heartbeat_seconds: float = 0.0
    reap_interval_seconds: float = 5.0
    reap_batch: int = 500
    # a stage is retried this many times before the job goes to deadletter
    max_retries: int = 5
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    # SIGTERM: finish in-flight work within this, then release the rest
    grace_seconds: float = 20.0
    # fallback poll when nothing is ready and no NOTIFY arrives
    poll_interval_seconds: float = 1.0
    listen: bool = True
    schema: str = pipeline.DEFAULT_SCHEMA
    worker_name: str = ""
    # multiplies every simulated service time; 0 turns the simulated handlers into no-ops
    service_time_scale: float = 1.0
    # /metrics, /healthz, /readyz; 0 disables the HTTP server
    metrics_port: int = 9090
    seed: int | None = None

    @property
    def effective_heartbeat_seconds(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    @property
    def name(self) -> str:
        return self.worker_name or default_worker_name()
