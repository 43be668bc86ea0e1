"""`--plot FILE.png`: backlog and replicas over time, every policy on one chart.

Called by sim.cli only. matplotlib is an optional extra (`pip install
'backlog-operator[report]'`), imported here lazily so the simulator runs without it.
Returns PNG bytes; the CLI writes the file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from backlog_operator.sim.results import PolicyResult

MISSING = "--plot needs matplotlib: pip install 'backlog-operator[report]'"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def render_png(results: Mapping[str, PolicyResult], title: str = "") -> bytes:
    """Two stacked panels sharing the time axis: backlog (ready jobs), then replicas."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers and in CI
        from matplotlib import pyplot
    except ImportError:
        raise PlotUnavailable(MISSING) from None
    figure, (top, bottom) = pyplot.subplots(2, 1, sharex=True, figsize=(11, 6.5))
    for name, result in results.items():
        seconds = range(len(result.series.backlog))
        top.plot(seconds, result.series.backlog, label=name, linewidth=1)
        bottom.plot(seconds, result.series.replicas, label=name, linewidth=1)
    first = next(iter(results.values()), None)
    if first is not None:
        twin = top.twinx()
        twin.plot(first.series.arrivals, color="0.8", linewidth=0.6, zorder=0)
        twin.set_ylabel("arrivals / s", color="0.5")
    top.set_ylabel("backlog (ready jobs)")
    bottom.set_ylabel("replicas (pods)")
    bottom.set_xlabel("seconds")
    top.legend(loc="upper left")
    if title:
        top.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()
