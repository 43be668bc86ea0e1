"""Pure parts of sources/: rate arithmetic, per-scaler aggregation, DSN scrubbing, parsing."""

from __future__ import annotations

import pytest

from backlog_operator.sources import dsn as dsnlib
from backlog_operator.sources import flow
from backlog_operator.sources.queries import IncompleteReading, StageRow, parse_rows
from backlog_operator.sources.subscriber import Subscription


def row(stage: str, **kw: object) -> StageRow:
    values: dict[str, object] = {
        "ready": 0,
        "in_flight": 0,
        "waiting": 0,
        "oldest_ready_s": None,
        "completions": 0,
        "failures": 0,
        "service_time_s": None,
    }
    values.update(kw)
    return StageRow(stage=stage, **values)  # type: ignore[arg-type]


def test_query_stages_adds_the_stage_before_each() -> None:
    assert flow.query_stages(["parsed", "chunking"]) == (
        "parsing",
        "parsed",
        "parse_validated",
        "chunking",
    )
    assert flow.query_stages(["queued"]) == ("queued",)


def test_arrivals_are_the_previous_stage_completions() -> None:
    rows = {
        "job_validated": row("job_validated", completions=30),
        "parsing": row("parsing", ready=5, completions=12, service_time_s=2.0),
    }
    readings, _ = flow.stage_readings(rows, at=100.0, window_s=60.0, memory=flow.FlowMemory())
    assert readings["parsing"].arrival_rate_per_s == pytest.approx(0.5)
    assert readings["parsing"].completion_rate_per_s == pytest.approx(0.2)
    assert readings["parsing"].service_time_s == 2.0


def test_first_stage_arrivals_by_conservation() -> None:
    memory = flow.FlowMemory()
    first = {"queued": row("queued", ready=10, completions=0)}
    readings, memory = flow.stage_readings(first, at=0.0, window_s=60.0, memory=memory)
    assert readings["queued"].arrival_rate_per_s == 0.0  # no history: steady state
    # 30 s later: 60 more active rows and 6 completions in the window.
    later = {"queued": row("queued", ready=70, completions=6)}
    readings, memory = flow.stage_readings(later, at=30.0, window_s=60.0, memory=memory)
    assert readings["queued"].arrival_rate_per_s == pytest.approx(6 / 60 + 60 / 30)
    # Samples older than the window are forgotten.
    _, memory = flow.stage_readings(later, at=200.0, window_s=60.0, memory=memory)
    assert [s.at for s in memory.samples] == [200.0]


def test_service_time_survives_an_idle_window() -> None:
    busy = {"parsing": row("parsing", completions=3, service_time_s=1.5)}
    _, memory = flow.stage_readings(busy, at=0.0, window_s=60.0, memory=flow.FlowMemory())
    idle = {"parsing": row("parsing")}
    readings, _ = flow.stage_readings(idle, at=90.0, window_s=60.0, memory=memory)
    assert readings["parsing"].service_time_s == 1.5


def test_signals_sum_stages_and_weight_service_time_by_completions() -> None:
    rows = {
        "parsing": row("parsing", ready=4, in_flight=2, oldest_ready_s=30.0, completions=60,
                       service_time_s=1.0),
        "parsed": row("parsed", ready=1, oldest_ready_s=5.0, completions=20, service_time_s=3.0),
        "job_validated": row("job_validated", completions=6),
        "queued": row("queued"),
    }  # fmt: skip
    readings, _ = flow.stage_readings(rows, at=1.0, window_s=60.0, memory=flow.FlowMemory())
    signals = flow.signals_for(readings, ("parsing", "parsed"), ("job_validated",))
    assert signals.ok
    assert (signals.ready, signals.in_flight) == (5, 2)
    assert signals.oldest_ready_seconds == 30.0
    assert signals.completion_rate_per_s == pytest.approx(80 / 60)
    assert signals.arrival_rate_per_s == pytest.approx((6 + 60) / 60)
    assert signals.service_time_s == pytest.approx((60 * 1.0 + 20 * 3.0) / 80)
    assert signals.upstream_arrival_rate_per_s == pytest.approx(0.0)


def test_nothing_ready_means_no_oldest_age() -> None:
    rows = {"parsing": row("parsing", in_flight=3, oldest_ready_s=None), "job_validated": row(
        "job_validated")}  # fmt: skip
    readings, _ = flow.stage_readings(rows, at=1.0, window_s=60.0, memory=flow.FlowMemory())
    signals = flow.signals_for(readings, ("parsing",))
    assert signals.oldest_ready_seconds is None and signals.upstream_arrival_rate_per_s is None


def test_null_counts_or_missing_stages_are_incomplete() -> None:
    good = ("parsing", 1, 0, 0, 2.0, 0, 0, None, 0.0)
    assert parse_rows([good], ("parsing",))["parsing"].ready == 1
    with pytest.raises(IncompleteReading):
        parse_rows([("parsing", None, 0, 0, None, 0, 0, None, 0.0)], ("parsing",))
    with pytest.raises(IncompleteReading):
        parse_rows([good], ("parsing", "parsed"))


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://app:hunter2pw@db.example:5432/uploads", "hunter2pw"),
        ("host=db user=app password=hunter2pw dbname=uploads", "hunter2pw"),
        ("host=db user=app password='hunter 2pw' dbname=uploads", "hunter 2pw"),
    ],
)
def test_scrub_removes_dsn_and_password(dsn: str, secret: str) -> None:
    text = f"connection to {dsn} failed; password {secret} rejected"
    scrubbed = dsnlib.scrub(text, dsn)
    assert secret not in scrubbed and dsn not in scrubbed
    assert "<redacted>" in scrubbed


def test_scrub_without_the_dsn_still_hides_url_and_keyword_passwords() -> None:
    text = "postgresql://u:topsecret@h/db and password=alsosecret"
    scrubbed = dsnlib.scrub(text)
    assert "topsecret" not in scrubbed and "alsosecret" not in scrubbed


def test_dsn_id_is_stable_and_reveals_nothing() -> None:
    dsn = "postgresql://app:pw123@db/uploads"
    assert dsnlib.dsn_id(dsn) == dsnlib.dsn_id(dsn)
    assert dsnlib.dsn_id(dsn).startswith("db-") and "pw123" not in dsnlib.dsn_id(dsn)
    assert dsnlib.dsn_id(dsn) != dsnlib.dsn_id(dsn + "2")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stages": ()},
        {"stages": ("frobnicate",)},
        {"stages": ("parsing",), "schema": 'x"; DROP'},
        {"stages": ("parsing",), "table": "Jobs"},
        {"stages": ("parsing",), "poll_interval_s": 0},
    ],
)
def test_subscription_refuses_what_the_crd_refuses(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Subscription(**kwargs)  # type: ignore[arg-type]
