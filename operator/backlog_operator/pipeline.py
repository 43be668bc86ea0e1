"""The upload pipeline's stage and state model, shared by every part of the project.

Mirrors the CHECK constraints in db/migrations: stages run in this order, and a
job's state moves queued -> working -> done | retryable | deadletter.
"""

from typing import Final

STAGES: Final[tuple[str, ...]] = (
    "queued",
    "job_validated",
    "parsing",
    "parsed",
    "parse_validated",
    "chunking",
    "chunks_buffered",
    "chunked",
    "embedding",
    "embeddings_buffered",
    "embedded",
)
STATES: Final[tuple[str, ...]] = ("queued", "working", "retryable", "done", "deadletter")
ACTIVE_STATES: Final[tuple[str, ...]] = ("queued", "working", "retryable")
EVENT_TYPES: Final[tuple[str, ...]] = ("stage_started", "stage_done", "retry", "error", "finalized")

DEFAULT_SCHEMA: Final = "upload_pipeline"
DEFAULT_TABLE: Final = "upload_jobs"


def next_stage(stage: str) -> str | None:
    """The stage after `stage`, or None when `stage` is the last one (the job is then done)."""
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def ready_channel(schema: str = DEFAULT_SCHEMA) -> str:
    """The LISTEN/NOTIFY channel the schema's trigger notifies (payload: the stage name)."""
    return f"{schema}_jobs_ready"
