"""The `lakegate` command: one subcommand per job, user errors as messages and exit codes."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import click

from lakegate_config.redaction import redact
from lakegate_errors import ExitCode, LakegateError, RowsLost, exit_code_of

# Subcommand name -> module that defines `command`; imported only when used, so that
# `lakegate validate` never pays for importing MLflow.
SUBCOMMANDS = {
    "validate": "spark_jobs.validate",
    "history": "spark_jobs.history",
    "train": "spark_jobs.train",
    "predict": "spark_jobs.predict",
    "sql": "spark_jobs.sql",
    "serve-sql": "spark_jobs.serve_sql",
    "run": "spark_jobs.pipeline",
    "features": "spark_jobs.features",
    "sample-data": "spark_jobs.sample_data",
    "submit": "spark_jobs.submit",
    "serve": "spark_jobs.serve",
    "materialize": "spark_jobs.materialize",
    "convert": "spark_jobs.convert",
    "contract": "spark_jobs.contract",
    "suggest": "spark_jobs.suggest",
    "stream": "spark_jobs.stream",
    "airflow-dag": "spark_jobs.airflow_dag",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand name, without importing any."""
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return one subcommand."""
        module_name = SUBCOMMANDS.get(cmd_name)
        if module_name is None:
            return None
        command: click.Command = importlib.import_module(module_name).command
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="lakegate")
def cli() -> None:
    """Lakegate: data-quality gates with PyDeequ, and MLflow models as Spark SQL functions."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (used by the console script and by spark-submit)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("lakegate: aborted", err=True)
        return ExitCode.USAGE
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except RowsLost as exc:
        click.echo(f"lakegate: rows lost: {redact(str(exc))}", err=True)
        return ExitCode.ROWS_LOST
    except LakegateError as exc:
        click.echo(f"lakegate: error: {redact(str(exc))}", err=True)
        return int(exit_code_of(exc) or ExitCode.USAGE)
    except Exception:
        traceback.print_exc()
        click.echo(
            "lakegate: internal error (a bug; please report it with the trace above)", err=True
        )
        return ExitCode.INTERNAL
    return int(result or 0)


def run_as_script(subcommand: str) -> None:
    """Entry for `spark-submit spark_jobs/<job>.py ARGS`: same arguments as the subcommand."""
    sys.exit(main([subcommand, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
