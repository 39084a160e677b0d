"""`lakegate sql`: run SQL in a session where every configured model is a SQL function.

    lakegate sql -e "SELECT user_id, predict_users(struct(*)) AS p FROM features" \
        --table features=data/users_features.parquet [--output out/p --format delta]

Each model in `settings.models` that the query mentions is registered as `predict_<name>`;
`--model NAME=URI` adds one. Every call is checked against the model's signature before any task
runs. Without `--output` the first `--limit` rows are printed.
"""

from __future__ import annotations

from pathlib import Path

import click

from spark_jobs.cli import run_as_script


@click.command(name="sql")
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
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--env", default=None, help="Configuration environment (conf/<env>.yaml).")
def command(
    query: str | None,
    query_file: Path | None,
    models: tuple[str, ...],
    tables: tuple[str, ...],
    output: Path | None,
    output_format: str | None,
    limit: int,
    env: str | None,
) -> None:
    """Run one SQL statement with the configured models as predict_<name> functions."""
    from pyspark.errors import AnalysisException

    from lakegate_errors import UserError
    from spark_jobs.services.session import spark_session
    from spark_jobs.services.settings import load_settings
    from spark_jobs.services.sql_catalog import (
        models_used_by,
        parse_assignments,
        register_models,
        register_views,
    )
    from spark_jobs.services.table_io import write_table_atomically
    from udfs import run_checked_sql
    from udfs.compiled import describe_path

    if (query is None) == (query_file is None):
        raise UserError("give the query with exactly one of -e QUERY or -f FILE")
    text = query if query is not None else query_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    text = text.strip().rstrip(";")
    extra_models = parse_assignments(models, "--model")
    views = parse_assignments(tables, "--table")
    settings = load_settings(env)
    with spark_session(settings, "lakegate-sql") as spark:
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
            df.show(n=limit, truncate=False)
            return
        output_format = output_format or settings.outputs.format
        written = write_table_atomically(spark, df, str(output), output_format)
        click.echo(f"wrote {output_format} to {written}")


if __name__ == "__main__":
    run_as_script("sql")
