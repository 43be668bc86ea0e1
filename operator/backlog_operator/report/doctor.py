"""`backlog-operator doctor`: a checklist of what the operator needs, with a fix for each failure.

    backlog-operator doctor [--dsn DSN] [--schema S] [--kubeconfig PATH]
                            [--namespace NS ...] [--peering NAME] [--strict] [--plain]

Database (doctor_db.py): reachable, schema version current, the partial indexes,
expired leases, deadletters in the last hour. Kubernetes (doctor_kube.py): CRDs
installed and served, operator running and leader elected, worker pools healthy,
scalers in fallback. Exit 1 when a check fails (--strict: also on warnings).
Loaded lazily by backlog_operator.cli.
"""

from __future__ import annotations

import click

from backlog_operator import pipeline
from backlog_operator.db.cli import DSN_ENVVARS
from backlog_operator.report import checks, doctor_db, doctor_kube


def kube_checks(
    kubeconfig: str | None, namespaces: tuple[str, ...], peering: str
) -> list[checks.Check]:
    from kubernetes import client, config

    try:
        if kubeconfig:
            api = config.new_client_from_config(config_file=kubeconfig)
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.ApiClient()
    except Exception as error:  # a missing or broken kubeconfig
        return [
            checks.fail(
                "kubernetes reachable",
                f"no usable kubeconfig: {error}",
                "set KUBECONFIG or pass --kubeconfig",
            )
        ]
    with api:
        return doctor_kube.run(api, namespaces, peering)


@click.command("doctor")
@click.option("--dsn", envvar=DSN_ENVVARS, default=None, help="PostgreSQL DSN (env BACKLOG_DSN).")
@click.option("--schema", default=pipeline.DEFAULT_SCHEMA, show_default=True)
@click.option(
    "--kubeconfig", envvar="KUBECONFIG", default=None, help="Default: $KUBECONFIG, in-cluster."
)
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Check these namespaces (default: all)."
)
@click.option("--peering", default="backlog-operator", show_default=True)
@click.option(
    "--lease-grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds past its lease before a claim counts as abandoned.",
)
@click.option("--no-kube", is_flag=True, help="Database checks only.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--plain", is_flag=True, help="Plain text even on a terminal.")
def doctor(
    dsn: str | None,
    schema: str,
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    peering: str,
    lease_grace: float,
    no_kube: bool,
    strict: bool,
    plain: bool,
) -> None:
    """Check the database, the CRDs, the operator and the worker pools; print fixes."""
    found = doctor_db.run(dsn, schema, lease_grace)
    if not no_kube:
        found += kube_checks(kubeconfig, namespaces, peering)
    checks.show(found, force_plain=plain)
    raise SystemExit(checks.exit_code(found, strict))
