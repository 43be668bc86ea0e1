"""`backlog-operator worker`: run the reference worker (or a subclass) on some stages.

Registered in backlog_operator/cli.py SUBCOMMANDS. Bad input (wrong DSN, unknown
stage, missing schema) ends with a one-line error and exit status 1; SIGTERM and
SIGINT start the graceful drain and the process exits 0. A connection lost after
start-up (a database restart) is retried with backoff instead of exiting.
"""

import asyncio
import contextlib
import functools
import importlib
import logging
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import click
import psycopg

from backlog_operator.worker import logs, metrics
from backlog_operator.worker.base import BaseWorker
from backlog_operator.worker.metrics import WorkerMetrics
from backlog_operator.worker.settings import UnknownStageError, WorkerSettings, parse_stages
from backlog_operator.worker.store import SchemaMissingError

log = logging.getLogger(__name__)
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_CAP_SECONDS = 30.0
_F = TypeVar("_F", bound=Callable[..., Any])


def _stages(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return parse_stages(value)
    except UnknownStageError as error:
        raise click.BadParameter(str(error)) from None


def _worker_class(ctx: click.Context, param: click.Parameter, value: str) -> type[BaseWorker]:
    module_name, _, attribute = value.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise click.BadParameter(f"cannot load {value!r}: {error}") from None
    if not (isinstance(found, type) and issubclass(found, BaseWorker)):
        raise click.BadParameter(f"{value!r} is not a BaseWorker subclass")
    return found


_early_signals: list[int] = []


def _remember_signal(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


async def _serve(make: Callable[[WorkerMetrics | None], BaseWorker], port: int) -> None:
    """Run workers until a signal; after a lost connection, reconnect with backoff.

    Only once the first worker got going: bad input at start-up still fails at once.
    Claims held when the connection broke come back through lease expiry.
    """
    current = [make(None)]
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        current[0].stop()

    server = None
    if port > 0:
        server = metrics.serve(
            port,
            current[0].metrics.registry,
            lambda: current[0].healthy,
            lambda: current[0].ready,
        )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    if _early_signals:  # SIGTERM during start-up: nothing claimed yet, stop right away
        stop()
    delay, connected_once = RECONNECT_FIRST_SECONDS, False
    try:
        while True:
            worker = current[0]
            try:
                await worker.run()
                return
            except psycopg.OperationalError as error:
                connected_once = connected_once or worker.started
                if not connected_once or stopping.is_set():
                    raise
                if worker.started:
                    delay = RECONNECT_FIRST_SECONDS
                fields = {"error": _first_line(error), "retry_in_seconds": delay}
                log.warning("database connection lost; reconnecting", extra={"fields": fields})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return
            delay = min(delay * 2, RECONNECT_CAP_SECONDS)
            current[0] = make(worker.metrics)
    finally:
        if server is not None:
            server.shutdown()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


_DEFAULTS = WorkerSettings()


def _setting(
    flag: str, field: str, kind: click.ParamType, help: str | None = None
) -> Callable[[_F], _F]:
    """An option that sets WorkerSettings.`field`, with that field's default."""
    default = getattr(_DEFAULTS, field)
    return click.option(flag, field, type=kind, default=default, show_default=True, help=help)


@click.command()
@click.option(
    "--dsn",
    envvar=["BACKLOG_DSN", "DATABASE_URL"],
    required=True,
    help="PostgreSQL DSN (or $BACKLOG_DSN / $DATABASE_URL).",
)
@click.option(
    "--stages",
    "stages",
    default="all",
    callback=_stages,
    show_default=True,
    help="Comma-separated stages to work on, or 'all'.",
)
@_setting(
    "--concurrency", "concurrency", click.IntRange(1), "Jobs handled at once by this process."
)
@_setting("--batch-size", "batch_size", click.IntRange(1), "Most rows per claim statement.")
@_setting("--lease-seconds", "lease_seconds", click.FloatRange(0.1))
@_setting("--max-retries", "max_retries", click.IntRange(0))
@_setting(
    "--grace-seconds",
    "grace_seconds",
    click.FloatRange(0),
    "SIGTERM: time given to in-flight jobs before they are released.",
)
@_setting(
    "--poll-interval",
    "poll_interval_seconds",
    click.FloatRange(0.01),
    "Seconds between claims when idle (LISTEN wakes earlier).",
)
@_setting("--reap-interval", "reap_interval_seconds", click.FloatRange(0.1))
@_setting("--backoff-base", "backoff_base_seconds", click.FloatRange(0))
@_setting("--backoff-cap", "backoff_cap_seconds", click.FloatRange(0))
@_setting(
    "--service-time-scale",
    "service_time_scale",
    click.FloatRange(0),
    "Multiplies simulated service times; 0 makes them no-ops.",
)
@_setting("--schema", "schema", click.STRING)
@click.option(
    "--name",
    "worker_name",
    envvar="POD_NAME",
    default="",
    help="claimed_by value [default: $POD_NAME, else the host name].",
)
@_setting(
    "--metrics-port",
    "metrics_port",
    click.IntRange(0, 65535),
    "/metrics, /healthz, /readyz; 0 disables.",
)
@click.option("--no-listen", is_flag=True, help="Poll only; no LISTEN/NOTIFY wake-ups.")
@click.option(
    "--worker-class",
    default="backlog_operator.worker.base:BaseWorker",
    callback=_worker_class,
    show_default=True,
    help="module:Class of a BaseWorker subclass.",
)
@click.option("--seed", type=int, default=None, help="Seed for simulated times and jitter.")
@click.option("--log-level", default="INFO", show_default=True)
def worker(
    dsn: str, no_listen: bool, worker_class: type[BaseWorker], log_level: str, **fields: Any
) -> None:
    """Claim jobs of some stages, run their handlers, and advance them."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _remember_signal)
    settings = WorkerSettings(listen=not no_listen, **fields)
    logs.configure(log_level, worker=settings.name)
    try:
        asyncio.run(_serve(functools.partial(worker_class, dsn, settings), settings.metrics_port))
    except SchemaMissingError as error:
        raise click.ClickException(str(error)) from None
    except psycopg.Error as error:
        raise click.ClickException(f"database error: {_first_line(error)}") from None
