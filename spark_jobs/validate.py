"""`lakegate validate SUITE --input TABLE --output DIR`: check a table, split it, report.

Also runnable as `spark-submit spark_jobs/validate.py SUITE --input ... --output ...`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from checks.anomalies import (
    AnomalyResult,
    anomaly_analyzers,
    any_failed,
    current_metrics,
    evaluate_anomalies,
    worsened_status,
)
from checks.deequ_run import ConstraintResult, VerificationOutcome
from checks.gate import Gate, apply_suite
from checks.gate import check_filters as check_filters  # moved; stream.py imports it here
from checks.suite import Level, Suite
from checks.suite_formats import load_suite
from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import ExitCode, RowsLost
from spark_jobs.services import lineage
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.html_report import (
    SAMPLE_ROWS,
    HistoryCharts,
    history_charts,
    history_records,
    render_report_html,
)
from spark_jobs.services.report_samples import (
    OBSERVED_SAMPLES_MAX_ROWS,
    Samples,
    observed_samples,
    read_back_samples,
    sample_aggregates,
)
from spark_jobs.services.reporting import Progress, validation_summary
from spark_jobs.services.table_io import FORMATS, MALFORMED_COLUMN, StagedOutputs, read_pinned


class ValidateSpec(BaseModel):
    """What to validate: a suite file, an input table and the output folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    input: str
    output: str
    format: str | None = None
    keep_history: bool = True
    html_report: bool = True
    schema_name: str | None = None  # a data contract's schema object
    allow_unexecutable: bool = False  # a data contract's rules that cannot run are skipped


@dataclass(frozen=True)
class RowCounts:
    """Rows in, valid and quarantined (in == valid + quarantined, or nothing is committed)."""

    rows_in: int
    rows_valid: int
    rows_quarantined: int


@dataclass(frozen=True)
class ValidationOutputs:
    """Where a validation wrote, and the Delta version of each table."""

    valid: str
    quarantine: str
    report: str
    html_report: str | None
    format: str
    table_versions: dict[str, int]
    metrics_repository: str | None


@dataclass(frozen=True)
class ValidationResult:
    """One validation, as written to report.json (`to_report`)."""

    suite: str
    suite_file: str
    run_id: str
    started_at: str
    finished_at: str
    duration_seconds: float
    input: str
    status: str
    exit_code: ExitCode
    counts: RowCounts
    quarantine_reasons: dict[str, int]
    constraints: tuple[ConstraintResult, ...]
    outputs: ValidationOutputs
    anomalies: tuple[AnomalyResult, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def table_wide_failures(self) -> list[str]:
        """Error-level constraints and anomaly checks that failed on the whole table.

        These blame no row to quarantine, so a pipeline stops on them (exit 1).
        """
        constraints = [
            c.constraint
            for c in self.constraints
            if c.status == "failure" and c.level is Level.ERROR and not c.blames_rows
        ]
        anomalies = [
            f"anomaly {a.entry.label}"
            for a in self.anomalies
            if a.status == "failure" and a.entry.level is Level.ERROR
        ]
        return constraints + anomalies

    def to_report(self) -> dict[str, Any]:
        """The report.json document."""
        from dataclasses import asdict

        report = {
            "suite": self.suite,
            "suite_file": self.suite_file,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds,
            "input": self.input,
            "status": self.status,
            "exit_code": int(self.exit_code),
            "counts": asdict(self.counts),
            "quarantine_reasons": dict(self.quarantine_reasons),
            "constraints": [c.as_dict() for c in self.constraints],
            "outputs": asdict(self.outputs),
        }
        if self.anomalies:
            report["anomalies"] = [a.as_dict() for a in self.anomalies]
        return report | self.extra


def run(
    spark: SparkSession,
    settings: Settings,
    spec: ValidateSpec,
    *,
    suite: Suite | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Validate `spec.input` against the suite, write valid/quarantine/report under `spec.output`.

    Raises:
        SuiteError, InputError: before anything is written.
        RowsLost: the outputs do not add up to the input; nothing is committed.
    """
    suite = suite or load_suite(
        spec.suite, schema_name=spec.schema_name, allow_unexecutable=spec.allow_unexecutable
    )
    progress = progress or Progress(4, quiet=True)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    clock = time.monotonic()

    progress.step(f"reading {redact(spec.input)}")
    df, input_version = read_pinned(spark, spec.input, spec.format)  # one Delta snapshot
    data = df.drop(MALFORMED_COLUMN)  # the input's own columns, as the valid output has them
    outputs = StagedOutputs(
        spark, spec.output, run_id, settings.outputs.format, settings.outputs.table_properties()
    )
    outputs.check_columns("valid", data.columns)
    repository = settings.metrics_repository_path if spec.keep_history else None
    gate = apply_suite(
        spark,
        df,
        suite,
        repository=repository,
        tags={"suite": suite.name, "run_id": run_id},
        malformed_column=MALFORMED_COLUMN if MALFORMED_COLUMN in df.columns else None,
        extra_analyzers=anomaly_analyzers(spark, suite.anomalies),
        reference_reader=read_reference,
    )
    judge = partial(_judge, spark, gate, suite, spec, run_id, settings.metrics_repository_path)
    judged, counts, samples = _write_split(gate, outputs, suite, progress, judge, spec.html_report)
    progress.step("reports")
    try:
        outcome, anomalies = judged.outcome, judged.anomalies
        status, exit_code = _verdict(outcome, anomalies)
        result = ValidationResult(
            suite=suite.name,
            suite_file=str(suite.path),
            run_id=run_id,
            started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            duration_seconds=round(time.monotonic() - clock, 3),
            input=redact(spec.input),
            status=status,
            exit_code=exit_code,
            counts=counts,
            quarantine_reasons=gate.reasons(),
            constraints=tuple(outcome.results),
            outputs=ValidationOutputs(
                valid=outputs.final("valid"),
                quarantine=outputs.final("quarantine"),
                report=outputs.final("report.json"),
                html_report=outputs.final("report.html") if spec.html_report else None,
                format=outputs.format,
                table_versions=outputs.table_versions(),
                metrics_repository=str(repository) if repository else None,
            ),
            anomalies=tuple(anomalies),
            extra=_extra(suite, input_version),
        )
        _stage_reports(outputs, result, judged.charts, samples)
        gate.save_metrics()
    except BaseException:
        outputs.abort()
        raise
    outputs.commit()
    lineage.record_validation(spec.input, result.to_report())
    progress.done()
    return result


def read_reference(spark: SparkSession, table: str) -> DataFrame:
    """An `isContainedInTable` reference table: `FORMAT:PATH`, or a path or table as `--input`.

    FORMAT is one of table_io's (`delta:/data/users`, `parquet:/data/users`); without it the
    format is told from the path as for `--input`, and a name is a catalog table. A Delta table
    is read at its current version, so every scan of one run sees the same keys.

    Raises:
        InputError: the table is missing or unreadable.
    """
    scheme, colon, location = table.partition(":")
    if colon and scheme in FORMATS and location:
        return read_pinned(spark, location, scheme, keep_malformed=False)[0]
    return read_pinned(spark, table, keep_malformed=False)[0]


def _extra(suite: Suite, input_version: int | None) -> dict[str, Any]:
    """report.json's optional keys: the suite's skipped rules, the Delta input's version read."""
    extra: dict[str, Any] = {"skipped": list(suite.skipped)} if suite.skipped else {}
    if input_version is not None:
        extra["input_version"] = input_version
    return extra


@dataclass(frozen=True)
class _Judged:
    """What `run` works out while the quarantine is written."""

    outcome: VerificationOutcome
    anomalies: list[AnomalyResult]
    charts: HistoryCharts | None


def _judge(
    spark: SparkSession,
    gate: Gate,
    suite: Suite,
    spec: ValidateSpec,
    run_id: str,
    history_path: Path,
) -> _Judged:
    """Deequ's verdict, the anomalies and report.html's charts: all the metrics decide."""
    outcome = gate.verdict()  # `run` saves the metrics once every output is written
    current = current_metrics(spark, suite.anomalies, gate.analyzer_context)
    anomalies = evaluate_anomalies(
        spark, suite.anomalies, current, history_path, suite.name, run_id=run_id
    )
    if not spec.html_report:
        return _Judged(outcome, anomalies, None)
    history = history_records(spark, history_path, suite.name)
    if spec.keep_history:
        history += gate.metric_records()
    drawn = {
        "run_id": run_id,
        "anomalies": [a.as_dict() for a in anomalies],
        "finished_at": datetime.now(UTC).isoformat(),
    }
    return _Judged(outcome, anomalies, history_charts(drawn, history))


def _stage_reports(
    outputs: StagedOutputs,
    result: ValidationResult,
    charts: HistoryCharts | None,
    samples: Samples | None,
) -> None:
    """Stage report.json and, given `charts`, report.html (with quarantine samples)."""
    report = result.to_report()
    outputs.add_json("report.json", report)
    if charts is not None:
        if samples is None:
            written = outputs.read_written("quarantine")
            samples = read_back_samples(written, result.quarantine_reasons, SAMPLE_ROWS)
        outputs.add_text("report.html", render_report_html(report, [], samples, charts=charts))


def _verdict(outcome: VerificationOutcome, anomalies: list[AnomalyResult]) -> tuple[str, ExitCode]:
    """The run's status and exit code: Deequ's verdict, worsened by anomalies found."""
    status = worsened_status(outcome.status, anomalies)
    failing = outcome.failed(Level.ERROR) or any_failed(anomalies, Level.ERROR)
    return status, ExitCode.CHECKS_FAILED if failing else ExitCode.OK


def _write_split(
    gate: Gate,
    outputs: StagedOutputs,
    suite: Suite,
    progress: Progress,
    judge: Callable[[], _Judged],
    sample: bool,
) -> tuple[_Judged, RowCounts, Samples | None]:
    """Write valid rows (the pass that computes every metric), then the quarantine; judge.

    The quarantine is written from a second thread while `judge` runs: Deequ's verdict and the
    report's history need only the metrics, which the valid write observed. With `sample`, the
    quarantine's write also observes report.html's samples, unless the table is too large
    (then None: `_stage_reports` reads them back).

    Raises:
        RowsLost: valid + quarantined != rows in; both tables are restored.
    """
    progress.step(f"writing valid rows, {len(suite.constraints)} constraint metrics observed")
    valid_obs, quarantine_obs = Observation("valid"), Observation("quarantine")
    try:
        outputs.write_table("valid", gate.valid.observe(valid_obs, F.count(F.lit(1)).alias("rows")))
        progress.step(f"quarantining {gate.rows_to_quarantine} rows; Deequ's verdict")
        to_write = gate.quarantine_to_write()
        observe_samples = sample and gate.rows_in <= OBSERVED_SAMPLES_MAX_ROWS
        reasons = list(gate.reasons()) if observe_samples else []
        quarantine = to_write.observe(
            quarantine_obs,
            F.count(F.lit(1)).alias("rows"),
            *sample_aggregates(to_write.schema, reasons, SAMPLE_ROWS),
        )
        # Leaving the pool waits for the writer, so `abort` never runs beside it.
        with ThreadPoolExecutor(1, thread_name_prefix="lakegate-quarantine") as pool:
            writing = pool.submit(outputs.write_table, "quarantine", quarantine)
            judged = judge()
        writing.result()
    except BaseException:
        outputs.abort()
        raise
    finally:
        gate.release()
    quarantined = quarantine_obs.get  # a copy of the JVM's map, one py4j call per entry
    counts = RowCounts(gate.rows_in, int(valid_obs.get["rows"]), int(quarantined["rows"]))
    if counts.rows_in != counts.rows_valid + counts.rows_quarantined:
        outputs.abort()
        raise RowsLost(
            f"{counts.rows_in} rows in but {counts.rows_valid} valid + "
            f"{counts.rows_quarantined} quarantined; nothing was written"
        )
    samples = observed_samples(quarantined, reasons, SAMPLE_ROWS) if observe_samples else None
    return judged, counts, samples


class ValidateCommandSpec(ValidateSpec):
    """`lakegate validate SUITE_FILE --input ... --output ...`: a `ValidateSpec` and `--quiet`.

    `--no-history` and `--no-html-report` clear `keep_history` and `html_report`.
    """

    quiet: bool = False


def render(result: ValidationResult, spec: ValidateCommandSpec) -> int:
    """Print the summary; the exit code is the verdict's (1 when an error-level check failed)."""
    click.echo(validation_summary(result.to_report()))
    return int(result.exit_code)


@lakegate_command("validate", spec=ValidateCommandSpec, render=render)
@click.argument("suite", metavar="SUITE_FILE", type=click.Path(dir_okay=False))
@click.option("--input", required=True, help="Path (parquet, csv, json, delta) or table.")
@click.option("--output", required=True, help="Folder for valid/, quarantine/ and report.json.")
@click.option("--format", default=None, help="Input format, when the suffix does not say.")
@click.option(
    "--no-history", "keep_history", flag_value=False, default=True,
    help="Do not append metrics to the repository.",
)  # fmt: skip
@click.option(
    "--no-html-report", "html_report", flag_value=False, default=True,
    help="Write report.json only, not report.html.",
)  # fmt: skip
@click.option("--schema-name", default=None, help="A data contract's schema object to check.")
@click.option(
    "--allow-unexecutable", is_flag=True,
    help="Skip a data contract's rules that cannot run (listed in report.json); else refuse.",
)  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(job: JobContext, spec: ValidateCommandSpec) -> ValidationResult:
    """Check a table against a suite or ODCS v3 contract; split it into valid and quarantined."""
    # A bad suite or contract fails here, before Spark starts.
    suite = load_suite(
        spec.suite, schema_name=spec.schema_name, allow_unexecutable=spec.allow_unexecutable
    )
    return run(job.spark, job.settings, spec, suite=suite, progress=Progress(4, quiet=spec.quiet))


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("validate")
