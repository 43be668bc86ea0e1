"""Unit tests of the scaler's pure wiring: pause detection, subscriptions, CLI options,
metric names."""

from __future__ import annotations

import click
import pytest
from prometheus_client import generate_latest

from backlog_operator import metrics
from backlog_operator.api.backlogscaler import parse_backlogscaler
from backlog_operator.scaler import cli, loop

SPEC = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
    "database": {"dsnSecretRef": {"name": "db"}},
    "source": {"stages": ["parsing"]},
    "pollIntervalSeconds": 2,
    "listen": False,
    "policy": {"upstreamStages": ["queued"]},
}


def test_paused_by_annotation_or_spec() -> None:
    spec = parse_backlogscaler(SPEC)
    assert loop.paused_by({"metadata": {}}, spec) is None
    assert loop.paused_by({"metadata": {"annotations": {"backlog.dev/paused": "True"}}}, spec) == (
        "annotation"
    )
    assert loop.paused_by({"metadata": {"annotations": {"backlog.dev/paused": "no"}}}, spec) is None
    paused = parse_backlogscaler({**SPEC, "paused": True})
    assert loop.paused_by({"metadata": {}}, paused) == "spec"


def test_subscription_follows_the_spec() -> None:
    sub = loop.subscription_for(parse_backlogscaler(SPEC))
    assert sub.stages == ("parsing",)
    assert sub.upstream_stages == ("queued",)
    assert sub.poll_interval_s == 2.0
    assert sub.listen is False
    assert (sub.schema, sub.table) == ("upload_pipeline", "upload_jobs")


def test_run_options() -> None:
    opts = cli.options_from(("a", "b"), False, 9090, 0, False, "peers", None)
    assert opts.namespaces == ("a", "b")
    assert opts.priority is not None and opts.priority > 0  # random: active/standby peers
    assert cli.options_from((), True, 0, 0, True, "x", None).priority is None
    assert cli.options_from((), True, 0, 0, False, "x", 7).priority == 7
    with pytest.raises(click.UsageError):
        cli.options_from(("a",), True, 0, 0, True, "x", None)
    with pytest.raises(click.UsageError):
        cli.options_from((), False, 0, 0, True, "x", None)


def test_metric_names_are_prefixed_and_forgotten_per_scaler() -> None:
    metrics.record_backlog("ns", "s1", "parsing", 5, 2)
    metrics.record_replicas("ns", "s1", 3, 1)
    metrics.count_scale("ns", "s1", 1, 3)
    text = generate_latest(metrics.REGISTRY).decode()
    names = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert names and all(n.startswith("backlog_operator_") for n in names)
    labels = 'namespace="ns",scaler="s1",stage="parsing",state="ready"'
    assert f"backlog_operator_backlog_jobs{{{labels}}} 5.0" in text
    metrics.forget_scaler("ns", "s1")
    assert 'scaler="s1"' not in generate_latest(metrics.REGISTRY).decode()
