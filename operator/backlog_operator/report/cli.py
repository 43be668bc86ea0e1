"""`backlog-operator report RUN`: turn a recorded ScaleTest run into report.md (or .html) + PNGs.

    backlog-operator report RUN [--compare OTHER_RUN] [--format md|html] [--dsn DSN]
                                [--out reports] [--kubeconfig PATH]

RUN is a run id (status.runId) or a ScaleTest name (its latest run). Writes
<out>/<run id>/report.md (or report.html with the charts inline) and the charts
backlog.png, replicas.png, throughput.png, latency.png. With --kubeconfig the
run's BacklogScalers are read for their stages and maxReplicas (sharper
advice). `write_report` is also called by the demo driver. Loaded lazily by
backlog_operator.cli.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import psycopg

from backlog_operator.db import migrate
from backlog_operator.db.cli import dsn_option, one_line
from backlog_operator.report import (
    advice,
    advisor,
    charts,
    document,
    load,
    model,
    sections,
    simcompare,
)


def scaler_specs(kubeconfig: str, info: model.RunInfo) -> dict[str, dict[str, Any]]:
    """The specs of the run's BacklogScalers, read from the cluster (missing ones left out)."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = config.new_client_from_config(config_file=kubeconfig)
    custom: Any = client.CustomObjectsApi(api)
    found = {}
    with api:
        for name in info.spec.get("scalers") or []:
            try:
                obj = custom.get_namespaced_custom_object(
                    "backlog.dev", "v1alpha1", info.namespace, "backlogscalers", name
                )
            except ApiException as error:
                if error.status == 404:
                    continue
                raise
            found[name] = dict(obj.get("spec") or {})
    return found


def write_report(
    dsn: str,
    run: str,
    *,
    compare_with: str | None = None,
    fmt: str = "md",
    out: Path = Path("reports"),
    scalers: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write the report of `run` under out/<run id>/; returns the report file.

    `scalers`: the run's BacklogScaler specs by name (scaler_specs), when known.
    """
    with migrate.connect(dsn) as conn:
        data = load.load(conn, run)
        other = load.load(conn, compare_with) if compare_with else None
        try:
            findings = advisor.advise(conn, data.info.schema)
        except psycopg.errors.UndefinedTable:
            findings = ()  # the pipeline schema is gone; the results remain
    folder = out / data.info.run_id
    images = charts.draw(data, folder)
    known = {name: advice.ScalerSpec.from_spec(spec) for name, spec in (scalers or {}).items()}
    try:
        sim = simcompare.simulate(data.info, scalers)
    except ValueError as error:  # a spec the simulator cannot model: say so in the report
        sim = simcompare.Comparison(None, None, {}, f"the simulator refused the run: {error}")
    blocks = sections.build(data, images, findings, known or None, other, sim)
    if fmt == "html":
        path = folder / "report.html"
        path.write_text(document.to_html(blocks, folder, f"ScaleTest {data.info.run_id}"))
    else:
        path = folder / "report.md"
        path.write_text(document.to_markdown(blocks))
    return path


@click.command("report")
@click.argument("run")
@click.option("--compare", "compare_with", metavar="OTHER_RUN", help="Add a before/after table.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@dsn_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@click.option(
    "--kubeconfig", default=None, help="Read the run's BacklogScalers for sharper advice."
)
def report(
    run: str, compare_with: str | None, fmt: str, dsn: str, out: Path, kubeconfig: str | None
) -> None:
    """Write the performance report of a ScaleTest run (RUN: run id or ScaleTest name)."""
    try:
        scalers = None
        if kubeconfig:
            with migrate.connect(dsn) as conn:
                scalers = scaler_specs(kubeconfig, load.find(conn, run))
        path = write_report(dsn, run, compare_with=compare_with, fmt=fmt, out=out, scalers=scalers)
    except load.RunNotFound as error:
        raise click.ClickException(str(error)) from None
    except psycopg.Error as error:
        raise click.ClickException(one_line(error)) from None
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"{error.name} is missing: pip install 'backlog-operator[report]'"
        ) from None
    click.echo(str(path))
