"""`lakegate train CONFIG`: read a feature table with Spark, train, register, maybe promote.

Also runnable as `spark-submit spark_jobs/train.py CONFIG`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from spark_jobs.cli import run_as_script

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from spark_jobs.training import TrainConfig


def build_training_frame(df: DataFrame, config: TrainConfig) -> DataFrame:
    """Add the config's derived features (Spark SQL expressions) and keep the used columns."""
    from pyspark.sql import functions as F

    for name, expression in config.derived_features.items():
        df = df.withColumn(name, F.expr(expression))
    return df.select(*config.features, config.target)


@click.command(name="train")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--env", default=None, help="Configuration environment (conf/<env>.yaml).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON result to this file.",
)
def command(config_path: Path, env: str | None, json_path: Path | None) -> None:
    """Train the model CONFIG_PATH describes, register it, and promote it if it is better."""
    from spark_jobs.dataset_io import input_format, read_input
    from spark_jobs.errors import UserError
    from spark_jobs.session import spark_session
    from spark_jobs.settings import load_settings
    from spark_jobs.training import load_train_config, train_model

    config = load_train_config(config_path)
    settings = load_settings(env)
    with spark_session(settings, f"lakegate-train-{config.model_name}") as spark:
        source = config.input
        if input_format(source, config.format) != "table" and "://" not in source:
            source = str(settings.resolve(source))
        df = read_input(spark, source, config.format)
        missing = [
            c
            for c in (*config.features, config.target)
            if c not in df.columns and c not in config.derived_features
        ]
        if missing:
            raise UserError(
                f"model {config.model_name}: input {config.input!r} has no column "
                f"{', '.join(repr(m) for m in missing)} (columns: {', '.join(df.columns)})"
            )
        frame = build_training_frame(df, config).toPandas()
    result = train_model(frame, config, settings, source=source)
    click.echo(result.summary())
    click.echo(result.to_json())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(result.to_json() + "\n", encoding="utf-8")


if __name__ == "__main__":
    run_as_script("train")
