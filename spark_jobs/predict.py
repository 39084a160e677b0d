"""`lakegate predict`: score a table with a registered model and write keys + predictions.

    lakegate predict --model models:/users@champion --input data/users_features.parquet \
        --output out/predictions --key user_id

Writes the key columns, `prediction`, `model_name`, `model_version` and `scored_at` (one
timestamp per run) through a staging folder renamed into place, so a re-run replaces the previous
output and a failure leaves none. Everything (model, alias, columns, types) is checked before
anything is written. A JSON report is written to `<output>/_lakegate_report.json` (Spark ignores
files starting with `_` when reading the output back): row counts, rows with a null or NaN
feature (their prediction is null), the model URI and version, and timings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spark_jobs.cli import run_as_script

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

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
    from spark_jobs.errors import UserError
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
        F.lit(scored_at.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp").alias("scored_at"),
    )


@click.command(name="predict")
@click.option("--model", "model_uri", required=True, help="models:/name@alias or /version.")
@click.option("--input", "source", required=True, help="A parquet/csv/json path or a table.")
@click.option(
    "--input-format",
    type=click.Choice(["parquet", "csv", "json", "table"]),
    default=None,
    help="How to read the input when its suffix does not tell.",
)
@click.option("--output", type=click.Path(path_type=Path), required=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["parquet", "csv", "json"]),
    default="parquet",
    show_default=True,
)
@click.option("--key", "keys", multiple=True, help="A key column to carry over (repeatable).")
@click.option(
    "--scored-at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    default=None,
    help="Pin the scoring time (UTC), for a byte-identical re-run; default: now.",
)
@click.option("--env", default=None, help="Configuration environment (conf/<env>.yaml).")
def command(
    model_uri: str,
    source: str,
    input_format: str | None,
    output: Path,
    output_format: str,
    keys: tuple[str, ...],
    scored_at: datetime | None,
    env: str | None,
) -> None:
    """Score INPUT with MODEL and write keys, predictions, model version and scoring time."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from spark_jobs.dataset_io import read_input, write_atomically
    from spark_jobs.session import spark_session
    from spark_jobs.settings import load_settings
    from udfs import check_model_calls, register_model_function
    from udfs.model_function import resolve_model

    started = time.perf_counter()
    scored_at = (scored_at or datetime.now(UTC)).replace(tzinfo=None, microsecond=0)
    settings = load_settings(env)
    resolved = resolve_model(
        model_uri, tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
    )
    function_name = f"predict_{resolved.model_name or 'model'}"
    with spark_session(settings, "lakegate-predict") as spark:
        df = read_input(spark, source, input_format)
        function = register_model_function(
            spark,
            function_name,
            model_uri,
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.registry_uri,
        )
        loaded = time.perf_counter()
        check_columns(df, function, list(keys))
        observation = Observation("lakegate_predict")
        observed = df.observe(
            observation,
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(null_feature_flag(df, list(function.input_names)), 1).otherwise(0)).alias(
                "null_feature_rows"
            ),
        )
        result = scored_frame(observed, function, list(keys), scored_at)
        check_model_calls(result, [function])
        written = write_atomically(result, output, output_format)  # type: ignore[arg-type]
        counts = observation.get
    finished = time.perf_counter()
    report = PredictReport(
        model_uri=model_uri,
        model_name=function.model.model_name,
        model_version=function.model.model_version,
        run_id=function.model.run_id,
        input=source,
        output=str(written),
        format=output_format,
        keys=list(keys),
        rows=int(counts.get("rows") or 0),
        null_feature_rows=int(counts.get("null_feature_rows") or 0),
        scored_at=scored_at.isoformat(),
        load_seconds=round(loaded - started, 3),
        score_seconds=round(finished - loaded, 3),
        total_seconds=round(finished - started, 3),
    )
    report_json = json.dumps(asdict(report), sort_keys=True)
    (written / REPORT_NAME).write_text(report_json + "\n", encoding="utf-8")
    click.echo(
        f"scored {report.rows} rows with {function.description} -> {written} "
        f"({report.null_feature_rows} rows with a null feature got a null prediction)"
    )
    click.echo(report_json)


if __name__ == "__main__":
    run_as_script("predict")
