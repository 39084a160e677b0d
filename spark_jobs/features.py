"""`lakegate features CONFIG`: a feature table keyed by the entity id, from named definitions.

Each feature is a Spark SQL expression over the input (`feature_3: feature_1 * feature_1`),
as the seeds' feature store registers features as functions. The table is written whole or
not at all (a Delta overwrite by default) and can be registered as a view for SQL.
"""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from checks.yaml_document import load_yaml_document, parse_document
from lakegate_errors import UserError
from spark_jobs.services.session import spark_session
from spark_jobs.services.settings import load_settings
from spark_jobs.services.table_io import read_table, write_table_atomically


class FeatureConfig(BaseModel):
    """Where the entities come from, how features are computed, where the table goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str
    format: str | None = None
    key: list[str] = Field(min_length=1)
    definitions: dict[str, str] = Field(min_length=1)
    passthrough: list[str] = Field(default_factory=list)
    output: str
    table: str | None = "features"


def load_feature_config(path: str | Path) -> FeatureConfig:
    """Read a feature job config; errors name the file and line."""
    return parse_document(load_yaml_document(path), FeatureConfig)


def build_features(
    df: DataFrame, key: list[str], definitions: dict[str, str], passthrough: list[str] = ()
) -> DataFrame:
    """Select the key, every defined feature and the passthrough columns (such as labels).

    Raises:
        UserError: a key or passthrough column is missing, or a definition does not analyse.
    """
    missing = [c for c in [*key, *passthrough] if c not in df.columns]
    if missing:
        raise UserError(
            f"features: the input has no column {', '.join(map(repr, missing))}; it has "
            f"{', '.join(df.columns)}"
        )
    columns = [F.col(c) for c in key]
    for name, expression in definitions.items():
        try:
            column = F.expr(expression).alias(name)
            df.select(column).schema  # noqa: B018  (analyse now, name the feature on error)
        except (AnalysisException, ParseException) as exc:
            reason = str(exc).splitlines()[0]
            raise UserError(
                f"feature {name!r} = {expression!r} is not valid here: {reason}"
            ) from None
        columns.append(column)
    columns += [F.col(c) for c in passthrough if c not in definitions]
    return df.select(*columns)


def run_features(
    spark: SparkSession, config: FeatureConfig, output_format: str = "delta"
) -> dict[str, object]:
    """Build and write the feature table; register it as a view when `table` is set."""
    source = read_table(spark, config.input, config.format)
    features = build_features(source, config.key, config.definitions, config.passthrough)
    counted = Observation("lakegate_features")
    observed = features.observe(counted, F.count(F.lit(1)).alias("rows"))
    output = write_table_atomically(spark, observed, config.output, output_format)
    if config.table:
        read_table(spark, output, output_format).createOrReplaceTempView(config.table)
    return {
        "output": output,
        "table": config.table,
        "rows": int(counted.get["rows"]),
        "columns": features.columns,
    }


@click.command("features")
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--env", default=None, help="Configuration in conf/<env>.yaml (default: local).")
def command(config_file: Path, env: str | None) -> int:
    """Build a feature table from named Spark SQL feature definitions."""
    settings = load_settings(env)
    config = load_feature_config(config_file)
    with spark_session(settings, "lakegate-features") as spark:
        result = run_features(spark, config, settings.outputs.format)
    click.echo(
        f"Wrote {result['rows']} rows with {', '.join(result['columns'])} to {result['output']}"
    )
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("features")
