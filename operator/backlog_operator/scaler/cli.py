"""`backlog-operator run`: the operator process (BacklogScalers and ScaleTests).

    backlog-operator run [--namespace NS ... | --all-namespaces] [--metrics-port 8080]
                         [--health-port 8081] [--standalone | --peering NAME]
                         [--priority N] [--verbose]

Serves Prometheus metrics on --metrics-port (/metrics) and kopf's liveness probe
on --health-port (/healthz); 0 disables either. Peering (docs/decisions/0015):
by default kopf's peering is mandatory under the name `backlog-operator`
(ClusterKopfPeering with --all-namespaces, KopfPeering per namespace otherwise),
and each process gets a random priority unless --priority is given, so of several
replicas exactly one acts and the others stand by. --standalone skips peering.
Loaded lazily by backlog_operator.cli.
"""

from __future__ import annotations

import random

import click
import kopf

from backlog_operator import metrics
from backlog_operator.scaler.runtime import RunOptions


def options_from(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int,
    health_port: int,
    standalone: bool,
    peering: str,
    priority: int | None,
) -> RunOptions:
    if namespaces and all_namespaces:
        raise click.UsageError("--namespace and --all-namespaces exclude each other")
    if not namespaces and not all_namespaces:
        raise click.UsageError("give --namespace NS (repeatable) or --all-namespaces")
    if priority is None and not standalone:
        # Distinct priorities make peers active/standby instead of freezing each other.
        priority = random.randint(1, 2**31 - 1)
    return RunOptions(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        metrics_port=metrics_port,
        health_port=health_port,
        standalone=standalone,
        peering=peering,
        priority=priority,
    )


@click.command("run")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Serve this namespace.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Serve every namespace.")
@click.option("--metrics-port", default=8080, show_default=True, help="Prometheus /metrics; 0=off.")
@click.option("--health-port", default=8081, show_default=True, help="kopf /healthz; 0=off.")
@click.option("--standalone", is_flag=True, help="No peering: this process acts alone.")
@click.option(
    "--peering",
    default="backlog-operator",
    show_default=True,
    help="Name of the (Cluster)KopfPeering object shared by the replicas.",
)
@click.option(
    "--priority",
    type=int,
    default=None,
    help="Peering priority (the highest live one acts) [default: random].",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int,
    health_port: int,
    standalone: bool,
    peering: str,
    priority: int | None,
    verbose: bool,
) -> None:
    """Run the BacklogScaler operator until SIGTERM/SIGINT."""
    options = options_from(
        namespaces, all_namespaces, metrics_port, health_port, standalone, peering, priority
    )
    kopf.configure(verbose=verbose)
    # Importing registers the kopf handlers: BacklogScalers and ScaleTests, one process.
    from backlog_operator.scaler import handlers  # noqa: F401
    from backlog_operator.scaletest import handlers as scaletest_handlers  # noqa: F401

    if options.metrics_port:
        metrics.serve(options.metrics_port)
    liveness = f"http://0.0.0.0:{options.health_port}/healthz" if options.health_port else None
    kopf.run(
        clusterwide=options.all_namespaces,
        namespaces=list(options.namespaces),
        standalone=options.standalone,
        peering_name=None if options.standalone else options.peering,
        priority=options.priority,
        liveness_endpoint=liveness,
        memo=kopf.Memo(options=options),
    )
