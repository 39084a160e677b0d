"""`lakegate suggest --input TABLE --output suite.yaml [--sample FRACTION]`: a suite from the data.

Deequ profiles the table (or a sample of it) and suggests constraints with its default rules;
every suggestion is checked on the whole table and relaxed or dropped when it fails, so the
suite written passes on the table it was suggested from. The file is written whole (temporary
file, then rename).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from lakegate_config.redaction import redact
from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command

# `s3a://bucket/suite.yaml`, `file:///tmp/suite.yaml`: given to Hadoop as they are.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


@lakegate_command("suggest")
@click.option("--input", "source", required=True, help="Path (parquet, csv, json, delta) or table.")
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False), help="Suite file to write."
)
@click.option("--format", "fmt", default=None, help="Input format, when the suffix does not say.")
@click.option(
    "--sample", type=float, default=None,
    help="Profile this fraction of the rows (0-1]; suggestions are still checked on every row.",
)  # fmt: skip
@click.option("--suite-name", default=None, help="Suite name (default: the output file's stem).")
def command(
    job: JobContext,
    source: str,
    output: str,
    fmt: str | None,
    sample: float | None,
    suite_name: str | None,
) -> int:
    """Suggest a check suite from a table's profile (Deequ's default rules), proven on the table."""
    if sample is not None and not 0 < sample <= 1:
        raise UserError(f"--sample must be a fraction in (0, 1], got {sample}")
    from checks.suggestions import prove_suggestions, suggest_constraints, suggested_suite_yaml
    from spark_jobs.services.table_io import Storage, read_table

    spark = job.spark
    df = read_table(spark, source, fmt, keep_malformed=False)
    profiled = df.sample(fraction=sample, seed=7) if sample is not None and sample < 1 else df
    suggestions = suggest_constraints(spark, profiled)
    name = suite_name or Path(output).stem
    suggested = prove_suggestions(spark, df, name, suggestions)
    target = output if _URI.match(output) else str(Path(output).absolute())
    Storage(spark).write_text(target, suggested_suite_yaml(suggested, redact(source)))
    click.echo(
        f"{len(suggested.kept)} constraint(s) written to {output} "
        f"({len(suggestions)} suggested, {len(suggested.dropped)} dropped)"
    )
    for s in suggested.kept:
        if s.note:
            click.echo(f"  {s.kind}({s.column}): {s.note}")
    for s in suggested.dropped:
        click.echo(f"  {s.kind}({s.column}): {s.note}")
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("suggest")
