"""`lakegate sql`: run SQL in a session where every configured model is a SQL function.

    lakegate sql -e "SELECT user_id, predict_users(struct(*)) AS p FROM features" \
        --table features=out/users/features [--output out/p --format delta]
    lakegate sql --table features=out/users/features            # a shell (prompt or pipe)
    echo "SELECT count(*) FROM features;" | lakegate sql --output-format csv

With `-e`/`-f` each model in `settings.models` that the query mentions is registered as
`predict_<name>`; `--model NAME=URI` adds one. Without them statements come from standard input
(`spark_jobs.services.sql_shell`), every model is registered up front, and the views of
`tables:` in conf and `--table` are there from the first prompt. Every call is checked against
the model's signature before any task runs. Without `--output` the first `--limit` rows are
printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakegate_config.settings import Settings


@lakegate_command("sql")
@click.option("-e", "--execute", "query", default=None, help="The SQL statement to run.")
@click.option(
    "-f",
    "--file",
    "query_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the SQL statement.",
)
@click.option("--model", "models", multiple=True, help="NAME=URI: register predict_NAME too.")
@click.option("--table", "tables", multiple=True, help="NAME=PATH: a temporary view over a path.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write here.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["delta", "parquet", "csv", "json"]),
    default=None,
    help="Output table format (default: outputs.format in conf, delta).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Rows to print [-e: 20].")
@click.option(
    "--output-format",
    "print_format",
    type=click.Choice(["table", "csv", "json"]),
    default=None,
    help="How results print (shell default: table; -e default: Spark's table).",
)
def command(
    job: JobContext,
    query: str | None,
    query_file: Path | None,
    models: tuple[str, ...],
    tables: tuple[str, ...],
    output: Path | None,
    output_format: str | None,
    limit: int | None,
    print_format: str | None,
) -> None:
    """Run SQL with the configured models as predict_<name> functions (a shell without -e/-f)."""
    from lakegate_errors import UserError
    from spark_jobs.services.sql_catalog import (
        configured_views,
        models_used_by,
        parse_assignments,
        preload_for,
    )

    if query is not None and query_file is not None:
        raise UserError("give the query with one of -e QUERY or -f FILE, not both")
    extra_models = parse_assignments(models, "--model")
    settings = job.settings
    views = configured_views(settings, parse_assignments(tables, "--table"))
    if query is None and query_file is None:
        if output is not None:
            raise UserError("--output needs a query (-e or -f); the shell prints its results")
        preload_for(settings, {**settings.models, **extra_models})
        _run_shell(job.spark, settings, views, extra_models, print_format or "table", limit)
        return
    text = query if query is not None else query_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    preload_for(settings, {**models_used_by(text, settings.models), **extra_models})
    _run_one(
        job.spark,
        settings,
        views,
        extra_models,
        text.strip().rstrip(";"),
        output,
        output_format,
        limit,
        print_format,
    )


def _run_shell(
    spark: SparkSession,
    settings: Settings,
    views: dict[str, str],
    extra_models: dict[str, str],
    print_format: str,
    limit: int | None,
) -> None:
    """The shell: every model registered up front, statements from standard input."""
    from spark_jobs.services.model_refresh import prepare_sql_session
    from spark_jobs.services.sql_shell import run_shell

    catalog, lines = prepare_sql_session(spark, settings, views, extra_models)
    for line in lines:
        click.echo(line, err=True)
    history = settings.state_path / "sql_history"
    run_shell(spark, catalog, output_format=print_format, limit=limit, history_file=history)


def _run_one(
    spark: SparkSession,
    settings: Settings,
    views: dict[str, str],
    extra_models: dict[str, str],
    text: str,
    output: Path | None,
    output_format: str | None,
    limit: int | None,
    print_format: str | None,
) -> None:
    """One statement (-e/-f): the models it mentions registered, its result printed or written."""
    from pyspark.errors import AnalysisException

    from lakegate_errors import UserError
    from spark_jobs.services.sql_catalog import models_used_by, register_models, register_views
    from spark_jobs.services.sql_shell import write_rows
    from spark_jobs.services.table_io import write_table_atomically
    from udfs import run_checked_sql
    from udfs.compiled import describe_path

    register_views(spark, views)
    wanted = {**models_used_by(text, settings.models), **extra_models}
    functions = register_models(spark, settings, wanted)
    for function in functions.values():
        click.echo(describe_path(function), err=True)
    try:
        df = run_checked_sql(spark, text, functions.values())
    except AnalysisException as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserError(f"the query cannot run: {first_line}") from None
    if output is None:
        if print_format is None:
            df.show(n=limit or 20, truncate=False)
        else:
            write_rows(
                df.columns,
                df.take(limit) if limit else df.collect(),
                print_format,
                sys.stdout,
            )
        return
    output_format = output_format or settings.outputs.format
    written = write_table_atomically(
        spark, df, str(output), output_format, settings.outputs.table_properties()
    )
    click.echo(f"wrote {output_format} to {written}")


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("sql")
