"""Pure parts of the report: pool and replica advice, before/after deltas, Markdown/HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from backlog_operator.report import advice, advisor, compare, document, model


def _run(
    results: dict, spec: dict | None = None, samples: tuple = (), stages: tuple = ()
) -> model.RunData:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    info = model.RunInfo(
        "r-1",
        "ns",
        "r",
        "Live",
        "Spike",
        "upload_pipeline",
        spec or {},
        "Succeeded",
        "Passed",
        None,
        None,
        None,
        None,
        t,
        None,
        None,
        t,
        None,
        None,
        None,
        None,
        results,
    )
    return model.RunData(info, stages=stages, scaler_samples=samples)


def _stage(stage: str, completions: int, service_total: float) -> model.StageStat:
    return model.StageStat("load", stage, completions, 0, *([None] * 8), service_total, None, None)


def _flat(scaler: str, desired: int, n: int = 10) -> tuple[model.ScalerSample, ...]:
    return tuple(model.ScalerSample(float(i), scaler, desired, desired) for i in range(n))


SPEC = {"embed": advice.ScalerSpec(("embedding",), 0, 4)}


def test_capped_scaler_with_long_waits_is_told_to_raise_max_replicas() -> None:
    data = _run(
        {"queueWaitP95Seconds": 12.0}, {"slo": {"p95QueueWaitSeconds": 10}}, _flat("embed", 4)
    )
    (note,) = advice.scaler_advice(data, SPEC)
    assert note.startswith("embed: desired replicas sat at maxReplicas=4 for 100% of the load")
    assert "raise maxReplicas (e.g. to 8)" in note


def test_capped_scaler_with_short_waits_is_told_the_cap_was_enough() -> None:
    data = _run(
        {"queueWaitP95Seconds": 0.1}, {"slo": {"p95QueueWaitSeconds": 10}}, _flat("embed", 4)
    )
    (note,) = advice.scaler_advice(data, SPEC)
    assert "the cap was enough" in note and "raise" not in note


def test_scaler_below_its_max_and_a_quick_reaction_give_no_advice() -> None:
    data = _run(
        {"queueWaitP95Seconds": 30.0, "timeToFirstScaleSeconds": 2.0}, {}, _flat("embed", 2)
    )
    assert advice.scaler_advice(data, SPEC) == ()


def test_slow_first_scale_up_suggests_listen_only_when_jobs_waited() -> None:
    data = _run({"timeToFirstScaleSeconds": 31.0, "queueWaitP95Seconds": 20.0})
    (note,) = advice.scaler_advice(data)
    assert "31.0 s" in note and "listen: true" in note
    quiet = _run({"timeToFirstScaleSeconds": 31.0, "queueWaitP95Seconds": 0.5})
    assert advice.scaler_advice(quiet) == ()


def test_pool_size_by_littles_law_per_scaler() -> None:
    stages = (_stage("embedding", 100, 50.0), _stage("parsing", 100, 10.0))
    spec = {"load": {"peakRatePerSecond": 20, "loadFactor": 2}}
    data = _run({"throughputPerSecond": 8.0}, spec, stages=stages)
    (embed,) = advice.pool_advice(data, SPEC)
    # 0.5 s x 8/s = 4 busy -> 5 slots at 0.8; peak 40/s -> 20 busy -> 25 slots.
    assert (embed.mean_service_seconds, embed.busy_mean, embed.slots_mean, embed.slots_peak) == (
        0.5,
        4.0,
        5,
        25,
    )
    per_stage = {p.name: p for p in advice.pool_advice(data)}
    assert set(per_stage) == {"embedding", "parsing"} and per_stage["parsing"].slots_mean == 1


def test_compare_direction_aware_verdicts() -> None:
    before = _run({"throughputPerSecond": 10.0, "drainSeconds": 20.0, "jobs": 100})
    after = _run({"throughputPerSecond": 8.0, "drainSeconds": 10.0, "jobs": 120})
    deltas = {d.name: d for d in compare.compare(before, after)}
    assert deltas["throughput"].verdict == "worse" and deltas["throughput"].relative == -0.2
    assert deltas["drain"].verdict == "better" and deltas["drain"].change == -10.0
    assert deltas["jobs"].verdict == "-"
    assert deltas["end-to-end p95"].change is None


def test_access_paths_name_the_indexes_of_bitmap_scans() -> None:
    plan = [
        {
            "Plan": {
                "Node Type": "Bitmap Heap Scan",
                "Relation Name": "upload_jobs",
                "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "upload_jobs_ready"}],
            }
        }
    ]
    assert advisor.access_paths(plan) == ("Bitmap Heap Scan using upload_jobs_ready",)


def test_markdown_and_html(tmp_path: Path) -> None:
    (tmp_path / "c.png").write_bytes(b"\x89PNG fake")
    blocks = [
        document.Heading(2, "Title"),
        document.Para("a `code` | b"),
        document.Table(("x", "y"), (("1", "a|b"),)),
        document.Image("c.png", "chart"),
    ]
    md = document.to_markdown(blocks)
    assert "## Title" in md and "| 1 | a\\|b |" in md and "![chart](c.png)" in md
    html = document.to_html(blocks, tmp_path, "t")
    assert "<h2>Title</h2>" in html and "<code>code</code>" in html
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in html
