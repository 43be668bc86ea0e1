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
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Jobs handled at once by this process.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Most rows per claim statement.",
)
@click.option("--lease-seconds", type=click.FloatRange(0.1), default=30.0, show_default=True)
@click.option("--max-retries", type=click.IntRange(0), default=5, show_default=True)
@click.option(
    "--grace-seconds",
    type=click.FloatRange(0),
    default=20.0,
    show_default=True,
    help="SIGTERM: time given to in-flight jobs before they are released.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="Seconds between claims when idle (LISTEN wakes earlier).",
)
@click.option("--reap-interval", type=click.FloatRange(0.1), default=5.0, show_default=True)
@click.option("--backoff-base", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--backoff-cap", type=click.FloatRange(0), default=300.0, show_default=True)
@click.option(
    "--service-time-scale",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Multiplies simulated service times; 0 makes them no-ops.",
)
@click.option("--schema", default="upload_pipeline", show_default=True)
@click.option(
    "--name",
    "worker_name",
    envvar="POD_NAME",
    default="",
    help="claimed_by value [default: $POD_NAME, else the host name].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9090,
    show_default=True,
    help="/metrics, /healthz, /readyz; 0 disables.",
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
    dsn: str,
    stages: tuple[str, ...],
    concurrency: int,
    batch_size: int,
    lease_seconds: float,
    max_retries: int,
    grace_seconds: float,
    poll_interval: float,
    reap_interval: float,
    backoff_base: float,
    backoff_cap: float,
    service_time_scale: float,
    schema: str,
    worker_name: str,
    metrics_port: int,
    no_listen: bool,
    worker_class: type[BaseWorker],
    seed: int | None,
    log_level: str,
) -> None:
    """Claim jobs of some stages, run their handlers, and advance them."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _remember_signal)
    settings = WorkerSettings(
        stages=stages,
        concurrency=concurrency,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        max_retries=max_retries,
        grace_seconds=grace_seconds,
        poll_interval_seconds=poll_interval,
        reap_interval_seconds=reap_interval,
        backoff_base_seconds=backoff_base,
        backoff_cap_seconds=backoff_cap,
        service_time_scale=service_time_scale,
        schema=schema,
        worker_name=worker_name,
        metrics_port=metrics_port,
        listen=not no_listen,
        seed=seed,
    )
    logs.configure(log_level, worker=settings.name)
    try:
        asyncio.run(_serve(functools.partial(worker_class, dsn, settings), metrics_port))
    except SchemaMissingError as error:
        raise click.ClickException(str(error)) from None
    except psycopg.Error as error:
        raise click.ClickException(f"database error: {_first_line(error)}") from None
