"""Unit: worker settings defaults, stage parsing, claim order, worker name, named SQL."""

import pytest
from psycopg import sql

from backlog_operator import pipeline
from backlog_operator.worker import settings as settings_module
from backlog_operator.worker import store
from backlog_operator.worker.settings import UnknownStageError, WorkerSettings


def test_every_default_is_pinned() -> None:
    s = WorkerSettings()
    assert (s.stages, s.concurrency, s.batch_size) == (pipeline.STAGES, 16, 16)
    assert (s.lease_seconds, s.heartbeat_seconds, s.effective_heartbeat_seconds) == (30, 0, 10)
    assert (s.reap_interval_seconds, s.reap_batch, s.max_retries) == (5, 500, 5)
    assert (s.backoff_base_seconds, s.backoff_cap_seconds, s.grace_seconds) == (1, 300, 20)
    assert (s.poll_interval_seconds, s.listen, s.schema) == (1, True, "upload_pipeline")
    assert (s.worker_name, s.service_time_scale, s.metrics_port, s.seed) == ("", 1, 9090, None)


def test_parse_stages() -> None:
    parse = settings_module.parse_stages
    assert parse("all") == pipeline.STAGES
    assert parse(" parsing, parsed ,parsing") == ("parsing", "parsed")
    with pytest.raises(UnknownStageError, match="'parse'"):
        parse("parse,parsed")
    with pytest.raises(UnknownStageError):
        parse(" , ")
    with pytest.raises(UnknownStageError):
        parse("all,parsing")


def test_claim_order_prefers_later_stages() -> None:
    order = settings_module.claim_order(("queued", "embedding", "parsing"))
    assert order == ("embedding", "parsing", "queued")


def test_worker_name_from_pod_name_then_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "parse-worker-7d9f-abcde")
    assert WorkerSettings().name == "parse-worker-7d9f-abcde"
    assert WorkerSettings(worker_name="explicit").name == "explicit"
    monkeypatch.delenv("POD_NAME")
    monkeypatch.setattr(settings_module.socket, "gethostname", lambda: "node-1")
    assert WorkerSettings().name == "node-1"


def test_named_queries_load_and_compose_with_any_schema_name() -> None:
    names = {"check_schema", "claim", "complete", "heartbeat", "reap", "release"}
    assert names <= set(store._SQL)
    job_store = store.JobStore('we"ird schema', "w")
    for name in names - {"check_schema"}:
        composed = job_store._query(name)
        assert isinstance(composed, sql.Composed)
        assert '"we""ird schema".upload_jobs' in composed.as_string(None)
