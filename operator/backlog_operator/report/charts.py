"""PNG charts of a recorded run: backlog per stage, replicas per pool, throughput, latency.

`draw(data, folder)` writes the charts it has data for and returns
document.Image blocks for them. matplotlib (the optional `report` extra) is
imported here, inside the function, with the non-interactive Agg backend.
Called by report/cli.py.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

from backlog_operator import pipeline
from backlog_operator.report import document, model


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _phases(ax: Any, data: model.RunData) -> None:
    """Shade the load window, mark the end of the drain."""
    end = data.info.offset(data.info.load_finished_at)
    if end is not None:
        ax.axvspan(0, end, color="tab:orange", alpha=0.08, label="load")
    drained = data.info.offset(data.info.drain_finished_at)
    if drained is not None:
        ax.axvline(drained, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("seconds from the load's start")
    ax.grid(alpha=0.3)


def _save(plt: Any, fig: Any, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def draw(data: model.RunData, folder: Path) -> list[document.Image]:
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    images: list[document.Image] = []
    if data.stage_samples:
        images.append(_backlog(plt, data, folder))
    if data.scaler_samples:
        images.append(_replicas(plt, data, folder))
    if len(data.samples) >= 2:
        images.append(_throughput(plt, data, folder))
    if data.latency:
        images.append(_latency(plt, data, folder))
    return images


def _backlog(plt: Any, data: model.RunData, folder: Path) -> document.Image:
    series: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for s in data.stage_samples:
        series[s.stage].append((s.at, s.ready + s.in_flight))
    fig, ax = plt.subplots(figsize=(10, 4))
    order = [s for s in pipeline.STAGES if s in series] + sorted(set(series) - set(pipeline.STAGES))
    for stage in order:
        points = series[stage]
        if any(v for _, v in points):
            ax.plot(
                [t for t, _ in points], [v for _, v in points], label=stage, drawstyle="steps-post"
            )
    _phases(ax, data)
    ax.set_ylabel("jobs ready + in flight")
    ax.set_title(f"Backlog per stage: {data.info.run_id}")
    ax.legend(fontsize="small", ncol=2)
    return document.Image(_save(plt, fig, folder, "backlog.png"), "backlog per stage")


def _replicas(plt: Any, data: model.RunData, folder: Path) -> document.Image:
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for scaler in data.scalers:
        mine = [s for s in data.scaler_samples if s.scaler == scaler]
        color = next(colors)
        current = [(s.at, s.current) for s in mine if s.current is not None]
        desired = [(s.at, s.desired) for s in mine if s.desired is not None]
        if current:
            xs, ys = zip(*current, strict=True)
            ax.plot(xs, ys, color=color, label=f"{scaler} current", drawstyle="steps-post")
        if desired:
            xs, ys = zip(*desired, strict=True)
            ax.plot(
                xs,
                ys,
                color=color,
                linestyle="--",
                label=f"{scaler} desired",
                drawstyle="steps-post",
            )
    _phases(ax, data)
    ax.set_ylabel("replicas")
    ax.set_title("Replicas per pool (solid: current, dashed: desired)")
    ax.legend(fontsize="small", ncol=2)
    return document.Image(_save(plt, fig, folder, "replicas.png"), "replicas per pool")


def _throughput(plt: Any, data: model.RunData, folder: Path) -> document.Image:
    times, done, made = [], [], []
    for before, after in itertools.pairwise(data.samples):
        dt = after.at - before.at
        if dt <= 0 or after.phase != before.phase:
            continue  # the counters restart per part (baseline, load)
        times.append(after.at)
        done.append(max(0, after.completed - before.completed) / dt)
        made.append(max(0, after.produced - before.produced) / dt)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(times, made, label="produced / s", alpha=0.7)
    ax.plot(times, done, label="completed / s")
    _phases(ax, data)
    ax.set_ylabel("jobs per second")
    ax.set_title("Throughput")
    ax.legend(fontsize="small")
    return document.Image(_save(plt, fig, folder, "throughput.png"), "throughput over time")


def _latency(plt: Any, data: model.RunData, folder: Path) -> document.Image:
    fig, ax = plt.subplots(figsize=(10, 4))
    at = [p.at for p in data.latency]
    for label in ("p50", "p95", "p99"):
        ax.plot(at, [getattr(p, label) for p in data.latency], marker=".", label=label)
    _phases(ax, data)
    ax.set_ylabel("end-to-end seconds")
    source = "jobs" if data.latency_source == "jobs" else "events (first claim to finalized)"
    ax.set_title(f"End-to-end latency percentiles per {data.bucket_seconds:g} s (from {source})")
    ax.legend(fontsize="small")
    return document.Image(_save(plt, fig, folder, "latency.png"), "latency percentiles over time")
