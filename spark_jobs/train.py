"""`lakegate train CONFIG`: read a feature table with Spark, train, register, maybe promote.

Also runnable as `spark-submit spark_jobs/train.py CONFIG`. Besides the model, the run logs the
model's input gate (`input_gate/suite.yaml`): a check suite derived from the training data that
`lakegate predict --gate` applies before scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, ConfigDict

from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakegate_config.settings import Settings
    from spark_jobs.services.training import TrainConfig, TrainResult


def build_training_frame(df: DataFrame, config: TrainConfig) -> DataFrame:
    """Add the config's derived features (Spark SQL expressions) and keep the used columns."""
    from pyspark.sql import functions as F

    for name, expression in config.derived_features.items():
        df = df.withColumn(name, F.expr(expression))
    return df.select(*config.features, config.target)


class TrainSpec(BaseModel):
    """A training config file, and optionally the features to read instead of its input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str
    input: str | None = None


def run(
    spark: SparkSession, settings: Settings, spec: TrainSpec, *, config: TrainConfig | None = None
) -> TrainResult:
    """Read the features (`spec.input` overrides the config's), train, log, register, promote.

    Raises:
        UserError: the input lacks a feature or the target.
    """
    from checks.input_gate import derive_input_suite
    from lakegate_errors import UserError
    from spark_jobs.services.table_io import read_table
    from spark_jobs.services.training import load_train_config, train_model

    config = config or load_train_config(spec.config)
    source = spec.input or config.input
    if config.format != "table" and "://" not in source and "/" in source:
        source = str(settings.resolve(source))
    df = read_table(spark, source, config.format, keep_malformed=False)
    missing = [
        c
        for c in (*config.features, config.target)
        if c not in df.columns and c not in config.derived_features
    ]
    if missing:
        raise UserError(
            f"model {config.model_name}: input {source!r} has no column "
            f"{', '.join(repr(m) for m in missing)} (columns: {', '.join(df.columns)})"
        )
    training = build_training_frame(df, config)
    gate = derive_input_suite(
        training, list(config.features), name=f"{config.model_name}_input_gate"
    )
    return train_model(training.toPandas(), config, settings, source=source, input_gate=gate)


class TrainCommandSpec(TrainSpec):
    """`lakegate train CONFIG [--json FILE]`: a `TrainSpec` and where to write the JSON result."""

    json_path: Path | None = None


def render(result: TrainResult, spec: TrainCommandSpec) -> int:
    """Print the summary and the JSON result; write the JSON to `--json` when given."""
    click.echo(result.summary())
    click.echo(result.to_json())
    if spec.json_path is not None:
        spec.json_path.parent.mkdir(parents=True, exist_ok=True)
        spec.json_path.write_text(result.to_json() + "\n", encoding="utf-8")
    return 0


@lakegate_command("train", spec=TrainCommandSpec, render=render)
@click.argument("config", metavar="CONFIG_PATH", type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON result to this file.",
)
def command(job: JobContext, spec: TrainCommandSpec) -> TrainResult:
    """Train the model CONFIG_PATH describes, register it, and promote it if it is better."""
    from spark_jobs.services.training import load_train_config

    config = load_train_config(spec.config)  # a bad config fails here, before Spark starts
    return run(job.spark, job.settings, spec, config=config)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("train")
