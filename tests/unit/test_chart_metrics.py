"""Every metric the Helm chart's alerts and Grafana dashboard query is one the operator
exports (operator/backlog_operator/metrics.py and scaletest/metrics.py), so a renamed
metric cannot leave a silent alert or an empty panel behind. kubeconform cannot check
PrometheusRule offline (no schema for the Prometheus Operator's CRDs): this does the
part that matters to us."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import backlog_operator.scaletest.metrics  # noqa: F401  (registers the ScaleTest metrics)
from backlog_operator import metrics

CHART = Path(__file__).resolve().parents[2] / "helm" / "backlog-operator"
METRIC = re.compile(r"\bbacklog_operator_[a-z0-9_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
# Queried by the chart but not exported yet (strict: an exported entry fails the test).
PENDING: set[str] = set()


def exported() -> set[str]:
    return {family.name for family in metrics.REGISTRY.collect()}


def base_name(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample.removesuffix(suffix)
    return sample


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((CHART / "dashboards" / "backlog-operator.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v.get("query", "") for v in dashboard["templating"]["list"]]
    return exprs


@pytest.mark.parametrize(
    "source",
    ["templates/prometheusrule.yaml", "dashboards/backlog-operator.json"],
)
def test_queried_metrics_are_exported(source: str) -> None:
    used = {base_name(m) for m in METRIC.findall((CHART / source).read_text())}
    assert used, f"no backlog_operator_ metric found in {source}"
    missing = used - exported()
    assert missing <= PENDING, f"{source} queries metrics the operator does not export: {missing}"
    assert not PENDING & exported(), "exported now: remove it from PENDING"


def test_dashboard_covers_the_issue_panels() -> None:
    """Backlog by stage, desired vs current replicas, reaction and query latency, verdicts."""
    joined = "\n".join(dashboard_exprs())
    for needle in (
        "backlog_operator_backlog_jobs",
        "backlog_operator_desired_replicas",
        "backlog_operator_current_replicas",
        "backlog_operator_reconcile_lag_seconds_bucket",
        "backlog_operator_source_query_seconds_bucket",
        "backlog_operator_scaletest_runs_total",
    ):
        assert needle in joined, needle
    # Counters are queried through their exposed _total series.
    for name in re.findall(r"\b(backlog_operator_[a-z_]+)\b", joined):
        family = base_name(name)
        kinds = {f.name: f.type for f in metrics.REGISTRY.collect()}
        if kinds.get(family) == "counter":
            assert name.endswith("_total"), f"counter {family} queried as {name}"
