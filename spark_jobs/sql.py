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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
from pydantic import BaseModel, ConfigDict, Field

from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakegate_config.settings import Settings


class SqlSpec(BaseModel):
    """One statement (`query` or `query_file`) or a shell, with extra models and views."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str | None = None
    query_file: Path | None = None
    models: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    output: Path | None = None
    output_format: Literal["delta", "parquet", "csv", "json"] | None = None
    limit: int | None = Field(default=None, ge=1)
    print_format: Literal["table", "csv", "json"] | None = None


@dataclass(frozen=True)
class SqlPlan:
    """The spec checked before Spark starts: the statement (None: a shell), views, models."""

    text: str | None
    views: dict[str, str]
    extra_models: dict[str, str]

    def models_to_load(self, settings: Settings) -> dict[str, str]:
        """The models the session registers: all of them for a shell, else those used."""
        from spark_jobs.services.sql_catalog import models_used_by

        if self.text is None:
            return {**settings.models, **self.extra_models}
        return {**models_used_by(self.text, settings.models), **self.extra_models}


@dataclass(frozen=True)
class SqlResult:
    """A shell's statement count, a written table, or the rows to print (in the session)."""

    statements: int | None = None
    rows: DataFrame | None = None
    written: str | None = None
    output_format: str | None = None


def plan_sql(settings: Settings, spec: SqlSpec) -> SqlPlan:
    """Check the options and read the statement, before any session starts.

    Raises:
        UserError: both -e and -f, --output without a statement, or a bad NAME=VALUE.
    """
    from spark_jobs.services.sql_catalog import configured_views, parse_assignments

    if spec.query is not None and spec.query_file is not None:
        raise UserError("give the query with one of -e QUERY or -f FILE, not both")
    extra_models = parse_assignments(spec.models, "--model")
    views = configured_views(settings, parse_assignments(spec.tables, "--table"))
    if spec.query is None and spec.query_file is None:
        if spec.output is not None:
            raise UserError("--output needs a query (-e or -f); the shell prints its results")
        return SqlPlan(None, views, extra_models)
    text = spec.query if spec.query is not None else spec.query_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    return SqlPlan(text.strip().rstrip(";"), views, extra_models)


def run(
    spark: SparkSession, settings: Settings, spec: SqlSpec, *, plan: SqlPlan | None = None
) -> SqlResult:
    """Run the statement (writing it when `spec.output` is set) or the shell on standard input."""
    plan = plan or plan_sql(settings, spec)
    if plan.text is None:
        return _run_shell(spark, settings, plan, spec)
    return _run_one(spark, settings, plan, plan.text, spec)


def render(result: SqlResult, spec: SqlSpec) -> int:
    """Print the rows (Spark's table, or `--output-format`), or where they were written."""
    from spark_jobs.services.sql_shell import write_rows

    if result.written is not None:
        click.echo(f"wrote {result.output_format} to {result.written}")
    elif result.rows is not None:
        df, limit = result.rows, spec.limit
        if spec.print_format is None:
            df.show(n=limit or 20, truncate=False)
        else:
            rows = df.take(limit) if limit else df.collect()
            write_rows(df.columns, rows, spec.print_format, sys.stdout)
    return 0


@lakegate_command("sql", spec=SqlSpec, render=render)
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
def command(job: JobContext, spec: SqlSpec) -> SqlResult:
    """Run SQL with the configured models as predict_<name> functions (a shell without -e/-f)."""
    from spark_jobs.services.sql_catalog import preload_for

    plan = plan_sql(job.settings, spec)  # bad options fail here, before Spark starts
    preload_for(job.settings, plan.models_to_load(job.settings))
    return run(job.spark, job.settings, spec, plan=plan)


def _run_shell(spark: SparkSession, settings: Settings, plan: SqlPlan, spec: SqlSpec) -> SqlResult:
    """The shell: every model registered up front, statements from standard input."""
    from spark_jobs.services.model_refresh import prepare_sql_session
    from spark_jobs.services.sql_shell import run_shell

    catalog, lines = prepare_sql_session(spark, settings, plan.views, plan.extra_models)
    for line in lines:
        click.echo(line, err=True)
    history = settings.state_path / "sql_history"
    shell = run_shell(
        spark,
        catalog,
        output_format=spec.print_format or "table",
        limit=spec.limit,
        history_file=history,
    )
    return SqlResult(statements=shell.statements)


def _run_one(
    spark: SparkSession, settings: Settings, plan: SqlPlan, text: str, spec: SqlSpec
) -> SqlResult:
    """One statement (-e/-f): the models it mentions registered, its result kept or written."""
    from pyspark.errors import AnalysisException

    from spark_jobs.services.sql_catalog import register_models, register_views
    from spark_jobs.services.table_io import write_table_atomically
    from udfs import run_checked_sql
    from udfs.compiled import describe_path

    register_views(spark, plan.views)
    functions = register_models(spark, settings, plan.models_to_load(settings))
    for function in functions.values():
        click.echo(describe_path(function), err=True)
    try:
        df = run_checked_sql(spark, text, functions.values())
    except AnalysisException as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserError(f"the query cannot run: {first_line}") from None
    if spec.output is None:
        return SqlResult(rows=df)
    output_format = spec.output_format or settings.outputs.format
    written = write_table_atomically(
        spark, df, str(spec.output), output_format, settings.outputs.table_properties()
    )
    return SqlResult(written=written, output_format=output_format)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("sql")
