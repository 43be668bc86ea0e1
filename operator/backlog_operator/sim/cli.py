"""`backlog-operator simulate`: the simulator's thin shell (the only module that reads files).

Loaded lazily by backlog_operator.cli. Reads the trace and YAML files, builds the
controllers, runs sim.run.compare, prints the table and writes --json / --plot.
Every bad input is a one-line click error naming the flag and, where there is one,
the line or field; never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from backlog_operator.sim import keda, keda_spec, results, run, traces
from backlog_operator.sim.engine import Controller
from backlog_operator.sim.ours import HUB_DEBOUNCE_S, OursController
from backlog_operator.sim.service import SYNTAX, ServiceTime, parse_service_time

KEDA_DEFAULT = "keda-default"


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"{path}: cannot read: {error}", param_hint=flag) from None


def _yaml(path: Path, flag: str) -> Any:
    try:
        return yaml.safe_load(_read(path, flag))
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise click.BadParameter(
            f"{path}: line {line}: {error.problem or 'invalid YAML'}", param_hint=flag
        ) from None
    except yaml.YAMLError as error:
        raise click.BadParameter(f"{path}: invalid YAML: {error}", param_hint=flag) from None


def load_trace(path: Path) -> traces.Trace:
    """The --trace file, or a BadParameter naming its line."""
    try:
        return traces.parse_trace(_read(path, "--trace"))
    except traces.TraceError as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--trace") from None


def load_scaler(path: Path | None, debounce_s: float) -> OursController:
    """The --scaler BacklogScaler YAML (a manifest or a bare spec); CRD defaults without it."""
    spec: Any = {}
    if path is not None:
        doc = _yaml(path, "--scaler")
        if isinstance(doc, dict) and ("kind" in doc or "spec" in doc):
            if doc.get("kind", "BacklogScaler") != "BacklogScaler":
                raise click.BadParameter(
                    f"{path}: kind: expected BacklogScaler, got {doc['kind']!r}",
                    param_hint="--scaler",
                )
            spec = doc.get("spec", {})
        else:
            spec = doc if doc is not None else {}
        if not isinstance(spec, dict):
            raise click.BadParameter(f"{path}: spec: must be a mapping", param_hint="--scaler")
    try:
        return OursController.from_spec(spec, debounce_s=debounce_s)
    except ValueError as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--scaler") from None


def load_compare(value: str, ours: OursController) -> keda.KedaController:
    """`keda-default` (the scaler's bounds, target backlogPerReplica) or a ScaledObject YAML."""
    if value == KEDA_DEFAULT:
        c = ours.config
        return keda.KedaController(
            keda.KedaConfig(
                target_value=c.policy.backlog_per_replica,
                activation_value=float(c.policy.activation_backlog),
                min_replicas=c.min_replicas,
                max_replicas=c.max_replicas,
            )
        )
    path = Path(value)
    if not path.exists():
        raise click.BadParameter(
            f"expected {KEDA_DEFAULT!r} or a ScaledObject YAML file, got {value!r}",
            param_hint="--compare",
        )
    try:
        config = keda_spec.parse_scaled_object(_yaml(path, "--compare"))
    except ValueError as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--compare") from None
    return keda.KedaController(config, name=path.stem)


def _service(_ctx: click.Context, _param: click.Parameter, value: str) -> ServiceTime:
    try:
        return parse_service_time(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("simulate")
@click.option(
    "--trace",
    "trace_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Arrival trace CSV: header 'second,arrivals', one row per second from 0.",
)
@click.option(
    "--scaler",
    "scaler_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BacklogScaler YAML (manifest or bare spec); its spec is the policy. "
    "Default: the CRD's defaults.",
)
@click.option(
    "--service-time",
    default="1.0:Exponential",
    show_default=True,
    callback=_service,
    help=f"Service time per job: {SYNTAX}. Examples: 1.0 | 0.5:Constant | 2:LogNormal:cv=0.5",
)
@click.option(
    "--startup-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Delay from pod creation to ready.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the job sizes.")
@click.option(
    "--compare",
    "compare",
    metavar="keda-default|FILE",
    help="Also run KEDA + HPA defaults ('keda-default': the scaler's min/max replicas, "
    "target = backlogPerReplica) or a ScaledObject-like YAML.",
)
@click.option(
    "--debounce-seconds",
    type=click.FloatRange(min=0.001),
    default=HUB_DEBOUNCE_S,
    show_default=True,
    help="Delay from a NOTIFY (arrival) to the operator's reading, when listen is on.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Write {"policies": {name: metrics}} here.',
)
@click.option(
    "--series/--no-series",
    default=False,
    show_default=True,
    help="Also write per-second arrivals/backlog/replicas under 'series' in --json.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of backlog and replicas over time (needs the 'report' extra).",
)
def simulate(
    trace_path: Path,
    scaler_path: Path | None,
    service_time: ServiceTime,
    startup_seconds: float,
    seed: int,
    compare: str | None,
    debounce_seconds: float,
    json_path: Path | None,
    series: bool,
    plot_path: Path | None,
) -> None:
    """Replay an arrival trace through the operator's policy in virtual time.

    With --compare, the same jobs also go through a model of KEDA + HPA defaults, and
    the table shows both side by side with the ratio.
    """
    trace = load_trace(trace_path)
    ours = load_scaler(scaler_path, debounce_seconds)
    controllers: list[Controller] = [ours]
    if compare:
        controllers.append(load_compare(compare, ours))
    settings = run.RunSettings(service=service_time, startup_s=startup_seconds, seed=seed)
    outcome = run.compare(trace, controllers, settings)
    click.echo(
        f"trace {trace_path.name}: {trace.total:,} jobs over {trace.seconds:,} s; "
        f"service {service_time}; startup {startup_seconds:g} s; seed {seed}"
    )
    click.echo(results.table(outcome))
    if json_path is not None:
        doc = results.to_json(outcome, series=series)
        _write(json_path, json.dumps(doc, indent=2).encode() + b"\n", "--json")
    if plot_path is not None:
        from backlog_operator.sim import plot  # matplotlib stays out of every other path

        try:
            png = plot.render_png(outcome, title=trace_path.name)
        except plot.PlotUnavailable as error:
            raise click.ClickException(str(error)) from None
        _write(plot_path, png, "--plot")


def _write(path: Path, data: bytes, flag: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise click.BadParameter(f"{path}: cannot write: {error}", param_hint=flag) from None
