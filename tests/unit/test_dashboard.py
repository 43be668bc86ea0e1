"""The Grafana dashboard shipped with the chart matches what the operator exports.

Every metric a panel queries must be one the operator registers (with the suffix
prometheus-client gives it: _total for counters, _bucket for histograms), every label
it filters or groups on must exist on that metric, and the issue's panels must be
there. A renamed metric then fails here instead of leaving an empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import backlog_operator.scaletest.metrics  # noqa: F401  (registers the ScaleTest metrics)
from backlog_operator import metrics

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "helm/backlog-operator/dashboards/backlog-operator.json"
)
METRIC = re.compile(r"\b(backlog_operator_[a-z_]+)\b")
LABELS = re.compile(r"(backlog_operator_[a-z_]+)\{([^}]*)\}")
BY = re.compile(r"by \(([^)]*)\)")


def _exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every sample name /metrics can show."""
    out: dict[str, set[str]] = {}
    for collector in list(metrics.REGISTRY._collector_to_names):  # no public listing
        for family in collector.describe():
            labels = set(getattr(collector, "_labelnames", ()))
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",),
            }[family.type]
            for suffix in suffixes:
                out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _exprs() -> list[str]:
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in _dashboard()["templating"]["list"] if v.get("type") == "query"]
    return exprs


def test_every_queried_metric_is_exported() -> None:
    exported = _exported()
    used = {name for expr in _exprs() for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no backlog_operator metric"
    assert used - set(exported) == set()


def test_every_filtered_or_grouped_label_exists_on_its_metric() -> None:
    exported = _exported()
    for expr in _exprs():
        for name, selector in LABELS.findall(expr):
            for matcher in filter(None, (m.strip() for m in selector.split(","))):
                label = re.split(r"=~|!=|=", matcher)[0].strip()
                assert label in exported[name], f"{name} has no label {label!r}: {expr}"
        names = METRIC.findall(expr)
        for group in BY.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert any(label in exported[n] for n in names), f"no metric has {label!r}: {expr}"


def test_the_issues_panels_are_there_with_unique_ids() -> None:
    panels = _dashboard()["panels"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in (
        "backlog by stage",
        "desired vs current",
        "reaction",
        "query latency",
        "verdict",
    ):
        assert wanted in titles, f"no panel about {wanted!r}"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
