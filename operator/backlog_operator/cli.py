"""The `backlog-operator` command line: one click group, subcommands loaded lazily.

Each subcommand lives next to the code it drives (for example `db/cli.py`) and
is imported only when invoked, so `backlog-operator worker` never imports kopf.
"""

import importlib

import click

# subcommand name -> "module:attribute" of a click.Command
SUBCOMMANDS: dict[str, str] = {
    "db": "backlog_operator.db.cli:db",
    "worker": "backlog_operator.worker.cli:worker",
    "run": "backlog_operator.scaler.cli:run",
    "simulate": "backlog_operator.sim.cli:simulate",
    "report": "backlog_operator.report.cli:report",
    "doctor": "backlog_operator.report.doctor:doctor",
    "stats": "backlog_operator.report.stats:stats",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            raise click.ClickException(f"'{cmd_name}' is not available in this build") from None
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="backlog-operator")
def main() -> None:
    """Scale PostgreSQL job-pipeline workers to their backlog, and load-test the pipeline."""
