"""`lakegate features CONFIG`: a feature table keyed by the entity id, from named definitions.

Each feature is a Spark SQL expression over the input (`feature_3: feature_1 * feature_1`),
as the seeds' feature store registers features as functions. The table is written whole or
not at all (a Delta overwrite by default) and can be registered as a view for SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakegate_config.settings import Settings
from lakegate_config.yaml_document import load_yaml_document, parse_document
from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.table_io import read_table, write_table_atomically


class FeaturesSpec(BaseModel):
    """Where the entities come from, how features are computed, where the table goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str
    format: str | None = None
    key: list[str] = Field(min_length=1)
    definitions: dict[str, str] = Field(min_length=1)
    passthrough: list[str] = Field(default_factory=list)
    output: str
    table: str | None = "features"


def load_features_spec(path: str | Path) -> FeaturesSpec:
    """Read a feature job config; errors name the file and line."""
    return parse_document(load_yaml_document(path), FeaturesSpec)


def build_features(
    df: DataFrame,
    key: Sequence[str],
    definitions: Mapping[str, str],
    passthrough: Sequence[str] = (),
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


@dataclass(frozen=True)
class FeaturesResult:
    """The feature table written: where, its view name, rows and columns."""

    output: str
    table: str | None
    rows: int
    columns: tuple[str, ...]


def run(spark: SparkSession, settings: Settings, spec: FeaturesSpec) -> FeaturesResult:
    """Build and write the feature table; register it as a view when `table` is set."""
    source = read_table(spark, spec.input, spec.format)
    features = build_features(source, spec.key, spec.definitions, spec.passthrough)
    counted = Observation("lakegate_features")
    observed = features.observe(counted, F.count(F.lit(1)).alias("rows"))
    output_format = settings.outputs.format
    output = write_table_atomically(
        spark, observed, spec.output, output_format, settings.outputs.table_properties()
    )
    if spec.table:
        read_table(spark, output, output_format).createOrReplaceTempView(spec.table)
    return FeaturesResult(output, spec.table, int(counted.get["rows"]), tuple(features.columns))


class FeaturesCommandSpec(BaseModel):
    """`lakegate features CONFIG`: the feature job config file (a `FeaturesSpec` in YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_file: Path


def render(result: FeaturesResult, spec: FeaturesCommandSpec) -> int:
    """Print the rows and columns written."""
    click.echo(f"Wrote {result.rows} rows with {', '.join(result.columns)} to {result.output}")
    return 0


@lakegate_command("features", spec=FeaturesCommandSpec, render=render)
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
def command(job: JobContext, spec: FeaturesCommandSpec) -> FeaturesResult:
    """Build a feature table from named Spark SQL feature definitions."""
    features = load_features_spec(spec.config_file)  # a bad config fails here, before Spark
    return run(job.spark, job.settings, features)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("features")
