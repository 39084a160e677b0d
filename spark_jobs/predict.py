"""`lakegate predict`: score a table with a registered model and write keys + predictions.

    lakegate predict --model models:/users@champion --input out/users/features \
        --output out/predictions --key user_id

Writes the key columns, `prediction`, `model_name`, `model_version` and `scored_at` (one
timestamp per run) through a staging folder renamed into place, so a re-run replaces the previous
output and a failure leaves none. Everything (model, alias, columns, types) is checked before
anything is written. A JSON report is written to `<output>/_lakegate_report.json` (Spark ignores
files starting with `_` when reading the output back): row counts, rows with a null or NaN
feature (their prediction is null), the model URI and version, and timings.

With `--gate`, the model's input gate (the suite derived from its training data, logged by
`lakegate train`) is applied first: rows that break it are not scored but written to
`<output>_quarantine` with their reasons, and `rows_in == rows + rows_gated` is checked.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pyspark.sql import Observation

from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.sql_catalog import preload_for

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from checks.gate import Gate
    from checks.suite import Suite
    from lakegate_config.settings import Settings
    from spark_jobs.services.table_io import StagedOutputs
    from udfs import ModelFunction

REPORT_NAME = "_lakegate_report.json"
OUTPUT_COLUMNS = ("prediction", "model_name", "model_version", "scored_at")


@dataclass(frozen=True)
class PredictReport:
    """What one batch-scoring run did; written as JSON beside the predictions."""

    model_uri: str
    model_name: str | None
    model_version: str | None
    run_id: str | None
    input: str
    output: str
    format: str
    keys: list[str]
    rows: int
    null_feature_rows: int
    scored_at: str
    load_seconds: float
    score_seconds: float
    total_seconds: float
    gated: bool = False
    rows_in: int = 0
    rows_gated: int = 0
    gate_quarantine: str | None = None
    gate_reasons: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    scoring_path: str = "udf"
    scoring_fallback_reason: str | None = None


def null_feature_flag(df: DataFrame, columns: list[str]) -> Column:
    """Return a Column that is true when any of `columns` is null (or NaN, for floats)."""
    from pyspark.sql import functions as F

    float_types = {"double", "float"}
    types = dict(df.dtypes)
    conditions = [
        F.col(c).isNull() | F.isnan(c) if types[c] in float_types else F.col(c).isNull()
        for c in columns
    ]
    flag = conditions[0]
    for condition in conditions[1:]:
        flag = flag | condition
    return flag


def check_columns(df: DataFrame, function: ModelFunction, keys: list[str]) -> None:
    """Check that the input has the key columns and every model input.

    Raises:
        UserError: a key column is missing.
        ModelUsageError: a model input is missing (the model and the column are named).
    """
    from lakegate_errors import UserError
    from udfs import ModelUsageError

    lowered = {c.lower() for c in df.columns}
    missing_keys = [k for k in keys if k.lower() not in lowered]
    if missing_keys:
        raise UserError(
            f"key column {', '.join(repr(k) for k in missing_keys)} is not in the input "
            f"(columns: {', '.join(df.columns)})"
        )
    missing = [name for name in function.input_names if name not in df.columns]
    if missing:
        raise ModelUsageError(
            f"model {function.description}: the input has no column "
            f"{', '.join(repr(m) for m in missing)} (model inputs: "
            f"{', '.join(function.input_names)}; input columns: {', '.join(df.columns)})"
        )
    clash = [c for c in OUTPUT_COLUMNS if c in keys]
    if clash:
        raise UserError(f"key column {clash[0]!r} clashes with an output column")


def scored_frame(
    df: DataFrame, function: ModelFunction, keys: list[str], scored_at: datetime
) -> DataFrame:
    """Return keys, prediction, model name and version, and the run's scoring time (UTC)."""
    from pyspark.sql import functions as F

    model = function.model
    return df.select(
        *keys,
        function(*[F.col(name) for name in function.input_names]).alias("prediction"),
        F.lit(model.model_name or model.model_uri).alias("model_name"),
        F.lit(model.model_version).cast("string").alias("model_version"),
        scored_at_column(scored_at).alias("scored_at"),
    )


def utc_instant(value: datetime) -> datetime:
    """`value` as an aware UTC datetime, to the second; a naive value is taken as UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=0)


def scored_at_column(scored_at: datetime) -> Column:
    """The scoring time as a Spark timestamp naming the same instant, whatever the session zone."""
    from pyspark.sql import functions as F

    return F.timestamp_seconds(F.lit(int(utc_instant(scored_at).timestamp())))


def load_input_gate(function: ModelFunction, settings: Settings) -> Suite:
    """The input-gate suite logged with the model's training run.

    Raises:
        ModelUsageError: the model version has no logged gate.
    """
    import mlflow
    import yaml

    from checks.input_gate import suite_from_data
    from spark_jobs.services.training import INPUT_GATE_ARTIFACT
    from udfs import ModelUsageError

    model = function.model
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=model.run_id,
            artifact_path=INPUT_GATE_ARTIFACT,
            tracking_uri=settings.tracking_uri,
        )
    except Exception:
        raise ModelUsageError(
            f"model {function.description} has no input gate ({INPUT_GATE_ARTIFACT} in run "
            f"{model.run_id}); retrain it with `lakegate train`, or predict without --gate"
        ) from None
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return suite_from_data(data, f"{model.model_uri} {INPUT_GATE_ARTIFACT}")


class PredictSpec(BaseModel):
    """What to score: a model URI, an input table, where the predictions go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    input: str
    output: str
    key: list[str] = Field(default_factory=list)
    input_format: Literal["delta", "parquet", "csv", "json", "table"] | None = None
    format: Literal["delta", "parquet", "csv", "json"] | None = None
    scored_at: datetime | None = None
    gate: bool = False

    @field_validator("scored_at")
    @classmethod
    def _scored_at_in_utc(cls, value: datetime | None) -> datetime | None:
        """An offset is converted to UTC, not dropped; a naive time is taken as UTC."""
        return None if value is None else utc_instant(value)


@dataclass
class _Scoring:
    """A prepared scoring: the frame to write, the gate split, the counters."""

    function: ModelFunction
    result: DataFrame
    observation: Observation
    split: Gate | None
    scored_at: datetime
    load_seconds: float


def _prepare(spark: SparkSession, settings: Settings, spec: PredictSpec) -> _Scoring:
    """Resolve the model, read and check the input, apply the gate, build the scored frame.

    Raises:
        ModelUsageError, UserError: a bad model, alias, column or type; nothing written.
    """
    from pyspark.sql import functions as F

    from checks.input_gate import apply_input_gate
    from spark_jobs.services.table_io import read_table
    from udfs import check_model_calls, register_model_function
    from udfs.model_function import resolve_model

    started = time.perf_counter()
    scored_at = utc_instant(spec.scored_at or datetime.now(UTC))
    resolved = resolve_model(
        spec.model, tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
    )
    df = read_table(spark, spec.input, spec.input_format, keep_malformed=False)
    function = register_model_function(
        spark,
        f"predict_{resolved.model_name or 'model'}",
        spec.model,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        compiled=settings.scoring.compiled,
    )
    check_columns(df, function, spec.key)
    split = apply_input_gate(df, load_input_gate(function, settings)) if spec.gate else None
    observation = Observation("lakegate_predict")
    observed = (split.valid if split is not None else df).observe(
        observation,
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(null_feature_flag(df, list(function.input_names)), 1).otherwise(0)).alias(
            "null_feature_rows"
        ),
    )
    result = scored_frame(observed, function, spec.key, scored_at)
    check_model_calls(result, [function])
    load_seconds = time.perf_counter() - started
    return _Scoring(function, result, observation, split, scored_at, load_seconds)


def run(spark: SparkSession, settings: Settings, spec: PredictSpec) -> PredictReport:
    """Score `spec.input` with `spec.model` and write keys + predictions to `spec.output`.

    Everything that can be wrong with the model, its alias or the columns is found before
    anything is written.

    Raises:
        ModelUsageError, UserError: a bad model, alias, column or type; nothing written.
        RowsLost: with the gate, scored + gated rows do not add up to the input.
    """
    from lakegate_config.redaction import redact
    from lakegate_errors import RowsLost
    from spark_jobs.services.table_io import StagedOutputs

    started = time.perf_counter()
    output_format = spec.format or settings.outputs.format
    outputs, name = StagedOutputs.for_table(
        spark,
        spec.output,
        uuid.uuid4().hex[:12],
        output_format,
        settings.outputs.table_properties(),
    )
    scoring = _prepare(spark, settings, spec)
    split, function = scoring.split, scoring.function
    try:
        # The scoring pass also counts, per gate rule, the rows the gate stopped.
        outputs.write_table(name, scoring.result)
        quarantine_path, reasons, rows_gated = _write_gated(outputs, name, split)
        counts = scoring.observation.get
        rows = int(counts.get("rows") or 0)
        rows_in = split.rows_in if split is not None else rows
        if rows_in != rows + rows_gated:
            raise RowsLost(
                f"{rows_in} rows in but {rows} scored + {rows_gated} gated; nothing was written"
            )
        finished = time.perf_counter()
        model = function.model
        report = PredictReport(
            model_uri=redact(spec.model),
            model_name=model.model_name,
            model_version=model.model_version,
            run_id=model.run_id,
            input=redact(spec.input),
            output=outputs.final(name),
            format=output_format,
            keys=list(spec.key),
            rows=rows,
            null_feature_rows=int(counts.get("null_feature_rows") or 0),
            scored_at=scoring.scored_at.isoformat(),
            load_seconds=round(scoring.load_seconds, 3),
            score_seconds=round(finished - started - scoring.load_seconds, 3),
            total_seconds=round(finished - started, 3),
            gated=spec.gate,
            rows_in=rows_in,
            rows_gated=rows_gated,
            gate_quarantine=quarantine_path,
            gate_reasons=reasons,
            table_versions=outputs.table_versions(),
            scoring_path=function.path,
            scoring_fallback_reason=function.fallback_reason,
        )
        outputs.add_json(f"{name}/{REPORT_NAME}", asdict(report))
        outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    finally:
        if split is not None:
            split.release()
    _log_metrics(settings, report)
    return report


def _write_gated(
    outputs: StagedOutputs, name: str, split: Gate | None
) -> tuple[str | None, dict[str, int], int]:
    """Write the rows the input gate stopped as `<name>_quarantine` (after the scored rows).

    Returns its final location, the rows blamed per rule and the rows written (None, {}, 0
    without a gate).
    """
    if split is None:
        return None, {}, 0
    from pyspark.sql import functions as F

    observation = Observation("lakegate_gate_out")
    quarantined = split.quarantine_to_write().observe(observation, F.count(F.lit(1)).alias("rows"))
    outputs.write_table(f"{name}_quarantine", quarantined)
    return outputs.final(f"{name}_quarantine"), split.reasons(), int(observation.get["rows"])


def _log_metrics(settings: Settings, report: PredictReport) -> None:
    """Log the run's rows and timings to MLflow's job-metrics experiment."""
    from spark_jobs.services.job_metrics import log_job_metrics

    log_job_metrics(
        settings,
        "predict",
        rows=report.rows,
        seconds={
            "load": report.load_seconds,
            "score": report.score_seconds,
            "total": report.total_seconds,
        },
        params={
            "model": report.model_uri,
            "version": str(report.model_version),
            "input": report.input,
        },
    )


def render(report: PredictReport, spec: PredictSpec) -> int:
    """Print the scoring path (standard error), the summary line and the JSON report."""
    gated = f", {report.rows_gated} stopped by the input gate" if report.gated else ""
    reason = f" ({report.scoring_fallback_reason})" if report.scoring_fallback_reason else ""
    click.echo(f"scoring path: {report.scoring_path}{reason}", err=True)
    click.echo(
        f"scored {report.rows} rows with {report.model_name} version {report.model_version} -> "
        f"{report.output} ({report.null_feature_rows} rows with a null feature got a null "
        f"prediction{gated})"
    )
    click.echo(json.dumps(asdict(report), sort_keys=True))
    return 0


@lakegate_command("predict", spec=PredictSpec, render=render)
@click.option("--model", required=True, help="models:/name@alias or /version.")
@click.option("--input", required=True, help="A parquet/csv/json path or a table.")
@click.option(
    "--input-format",
    type=click.Choice(["delta", "parquet", "csv", "json", "table"]),
    default=None,
    help="How to read the input when its suffix does not tell.",
)
@click.option("--output", required=True, help="Where the predictions table goes.")
@click.option(
    "--format",
    type=click.Choice(["delta", "parquet", "csv", "json"]),
    default=None,
    help="Output table format (default: outputs.format in conf, delta).",
)
@click.option("--key", multiple=True, help="A key column to carry over (repeatable).")
@click.option(
    "--scored-at",
    type=click.DateTime(
        formats=[
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y-%m-%d %H:%M:%S%z",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
        ]
    ),
    default=None,
    help="Pin the scoring time, for a byte-identical re-run; an offset (+02:00, Z) is converted "
    "to UTC, a time without one is taken as UTC; default: now.",
)
@click.option("--gate", is_flag=True, help="Apply the model's input gate before scoring.")
def command(job: JobContext, spec: PredictSpec) -> PredictReport:
    """Score INPUT with MODEL and write keys, predictions, model version and scoring time."""
    preload_for(job.settings, {"model": spec.model})
    return run(job.spark, job.settings, spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("predict")
