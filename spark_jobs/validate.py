"""`lakegate validate SUITE --input TABLE --output DIR`: check a table, split it, report.

Also runnable as `spark-submit spark_jobs/validate.py SUITE --input ... --output ...`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from checks.gate import apply_suite
from checks.suite import Level, Suite, SuiteError, check_against_schema, load_suite
from lakegate_errors import ExitCode, RowsLost
from spark_jobs.services.reporting import Progress, redact, validation_summary
from spark_jobs.services.session import spark_session
from spark_jobs.services.settings import Settings, load_settings
from spark_jobs.services.table_io import MALFORMED_COLUMN, StagedOutputs, read_table


@dataclass(frozen=True)
class ValidationRun:
    """The result of one validation: the report (as written) and the exit code."""

    report: dict[str, Any]
    exit_code: ExitCode


def check_filters(df: DataFrame, suite: Suite) -> None:
    """Reject `where` filters that do not analyse against the table (no Spark job runs).

    Raises:
        SuiteError: naming the suite line and the filter.
    """
    for c in suite.constraints:
        if c.args.where:
            try:
                df.where(c.args.where).schema  # noqa: B018
            except AnalysisException as exc:
                reason = str(exc).splitlines()[0]
                raise SuiteError(
                    f"{suite.path}:{c.line}: check {c.check!r}, constraint {c.index + 1} "
                    f"({c.kind}): where {c.args.where!r} is not a valid filter here: {reason}"
                ) from None


def run_validation(
    spark: SparkSession,
    settings: Settings,
    suite: Suite,
    source: str,
    output: str,
    *,
    fmt: str | None = None,
    keep_history: bool = True,
    progress: Progress | None = None,
) -> ValidationRun:
    """Validate `source` against `suite`, write valid/quarantine/report under `output`.

    Raises:
        SuiteError, InputError: before anything is written.
        RowsLost: the outputs do not add up to the input; nothing is committed.
    """
    progress = progress or Progress(4, quiet=True)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    clock = time.monotonic()

    progress.step(f"reading {redact(source)}")
    df = read_table(spark, source, fmt)
    check_against_schema(suite, df.drop(MALFORMED_COLUMN).schema)
    check_filters(df, suite)

    repository = settings.metrics_repository_path if keep_history else None
    malformed = MALFORMED_COLUMN if MALFORMED_COLUMN in df.columns else None
    gate = apply_suite(
        spark,
        df,
        suite,
        repository=repository,
        tags={"suite": suite.name, "run_id": run_id},
        malformed_column=malformed,
    )
    progress.step(f"writing valid rows, {len(suite.constraints)} constraint metrics observed")
    outputs = StagedOutputs(spark, output, run_id, settings.outputs.format)
    valid_obs, quarantine_obs = Observation("valid"), Observation("quarantine")
    try:
        outputs.write_table("valid", gate.valid.observe(valid_obs, F.count(F.lit(1)).alias("rows")))
        progress.step(f"writing {gate.rows_to_quarantine} quarantined rows; Deequ's verdict")
        outputs.write_table(
            "quarantine",
            gate.quarantine_to_write().observe(quarantine_obs, F.count(F.lit(1)).alias("rows")),
        )
        outcome = gate.verdict()
    except BaseException:
        outputs.abort()
        raise
    finally:
        gate.release()

    rows_in = gate.rows_in
    rows_valid = int(valid_obs.get["rows"])
    rows_quarantined = int(quarantine_obs.get["rows"])
    if rows_in != rows_valid + rows_quarantined:
        outputs.abort()
        raise RowsLost(
            f"{rows_in} rows in but {rows_valid} valid + {rows_quarantined} quarantined; "
            "nothing was written"
        )
    exit_code = ExitCode.CHECKS_FAILED if outcome.failed(Level.ERROR) else ExitCode.OK
    report = {
        "suite": suite.name,
        "suite_file": str(suite.path),
        "run_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "duration_seconds": round(time.monotonic() - clock, 3),
        "input": redact(source),
        "status": outcome.status,
        "exit_code": int(exit_code),
        "counts": {
            "rows_in": rows_in,
            "rows_valid": rows_valid,
            "rows_quarantined": rows_quarantined,
        },
        "quarantine_reasons": gate.reasons(),
        "constraints": [r.as_dict() for r in outcome.results],
        "outputs": {
            "valid": outputs.final("valid"),
            "quarantine": outputs.final("quarantine"),
            "report": outputs.final("report.json"),
            "format": outputs.format,
            "table_versions": outputs.table_versions(),
            "metrics_repository": str(repository) if repository else None,
        },
    }
    outputs.add_json("report.json", report)
    outputs.commit()
    progress.done()
    return ValidationRun(report, exit_code)


@click.command("validate")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "source", required=True, help="Path (parquet, csv, json, delta) or table.")
@click.option("--output", required=True, help="Folder for valid/, quarantine/ and report.json.")
@click.option("--format", "fmt", default=None, help="Input format, when the suffix does not say.")
@click.option("--env", default=None, help="Configuration in conf/<env>.yaml (default: local).")
@click.option("--no-history", is_flag=True, help="Do not append metrics to the repository.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(
    suite_file: Path,
    source: str,
    output: str,
    fmt: str | None,
    env: str | None,
    no_history: bool,
    quiet: bool,
) -> int:
    """Check a table against a suite; split it into valid and quarantined rows."""
    settings = load_settings(env)
    suite = load_suite(suite_file)  # a bad suite fails here, before Spark starts
    with spark_session(settings, f"lakegate-validate-{suite.name}") as spark:
        run = run_validation(
            spark,
            settings,
            suite,
            source,
            output,
            fmt=fmt,
            keep_history=not no_history,
            progress=Progress(4, quiet=quiet),
        )
    click.echo(validation_summary(run.report))
    return int(run.exit_code)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("validate")
