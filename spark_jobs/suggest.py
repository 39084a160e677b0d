"""`lakegate suggest --input TABLE --output suite.yaml [--sample FRACTION]`: a suite from the data.

Deequ profiles the table (or a sample of it) and suggests constraints with its default rules;
every suggestion is checked on the whole table and relaxed or dropped when it fails, so the
suite written passes on the table it was suggested from. The file is written whole (temporary
file, then rename).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, ConfigDict

from lakegate_config.redaction import redact
from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from checks.suggestions import SuggestedSuite
    from lakegate_config.settings import Settings

# `s3a://bucket/suite.yaml`, `file:///tmp/suite.yaml`: given to Hadoop as they are.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


class SuggestSpec(BaseModel):
    """The table to profile, the suite file to write, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    output: str
    format: str | None = None
    sample: float | None = None
    suite_name: str | None = None


@dataclass(frozen=True)
class SuggestResult:
    """The suite written: where, what was suggested, kept and dropped."""

    output: str
    suggested: int
    suite: SuggestedSuite


def check_sample(spec: SuggestSpec) -> None:
    """Refuse a `--sample` outside (0, 1].

    Raises:
        UserError: the fraction is out of range.
    """
    if spec.sample is not None and not 0 < spec.sample <= 1:
        raise UserError(f"--sample must be a fraction in (0, 1], got {spec.sample}")


def run(spark: SparkSession, settings: Settings, spec: SuggestSpec) -> SuggestResult:
    """Suggest constraints from the (sampled) profile, prove them on every row, write the suite.

    Raises:
        UserError: the sample fraction is out of range, or the input cannot be read.
    """
    from checks.suggestions import prove_suggestions, suggest_constraints, suggested_suite_yaml
    from spark_jobs.services.table_io import Storage, read_table

    check_sample(spec)
    sample, output = spec.sample, spec.output
    df = read_table(spark, spec.source, spec.format, keep_malformed=False)
    profiled = df.sample(fraction=sample, seed=7) if sample is not None and sample < 1 else df
    suggestions = suggest_constraints(spark, profiled)
    name = spec.suite_name or Path(output).stem
    suggested = prove_suggestions(spark, df, name, suggestions)
    target = output if _URI.match(output) else str(Path(output).absolute())
    Storage(spark).write_text(target, suggested_suite_yaml(suggested, redact(spec.source)))
    return SuggestResult(output, len(suggestions), suggested)


def render(result: SuggestResult, spec: SuggestSpec) -> int:
    """Print how many constraints were written, and the note of each changed or dropped one."""
    suite = result.suite
    click.echo(
        f"{len(suite.kept)} constraint(s) written to {result.output} "
        f"({result.suggested} suggested, {len(suite.dropped)} dropped)"
    )
    for s in suite.kept:
        if s.note:
            click.echo(f"  {s.kind}({s.column}): {s.note}")
    for s in suite.dropped:
        click.echo(f"  {s.kind}({s.column}): {s.note}")
    return 0


@lakegate_command("suggest", spec=SuggestSpec, render=render)
@click.option("--input", "source", required=True, help="Path (parquet, csv, json, delta) or table.")
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False), help="Suite file to write."
)
@click.option("--format", default=None, help="Input format, when the suffix does not say.")
@click.option(
    "--sample", type=float, default=None,
    help="Profile this fraction of the rows (0-1]; suggestions are still checked on every row.",
)  # fmt: skip
@click.option("--suite-name", default=None, help="Suite name (default: the output file's stem).")
def command(job: JobContext, spec: SuggestSpec) -> SuggestResult:
    """Suggest a check suite from a table's profile (Deequ's default rules), proven on the table."""
    check_sample(spec)  # a bad fraction fails here, before Spark starts
    return run(job.spark, job.settings, spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("suggest")
