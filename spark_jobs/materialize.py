"""`lakegate materialize FEATURES --key user_id`: the latest row per key into the online store.

Reads a feature table (a path or a catalog table) with Spark, keeps one row per entity key (the
latest by `--timestamp`, or the only one), and writes it from the driver in bounded batches
(`toLocalIterator`, `online_store.batch_rows` rows at a time) as a feature view that replaces
the previous one whole. The model server's `predict-by-key` reads it.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from checks.row_rules import column
from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import UserError
from online_store import FeatureView, OnlineStore, open_online_store
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.job_metrics import log_job_metrics
from spark_jobs.services.table_io import read_table

_ROWS = "_lakegate_rows"
_RANK = "_lakegate_rank"


class MaterializeSpec(BaseModel):
    """What to materialize: the table, its entity key, the ordering column, the view's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str
    key: list[str] = Field(min_length=1)
    name: str | None = None
    timestamp: str | None = None
    format: str | None = None

    @property
    def view_name(self) -> str:
        """`--name`, else the table's last path segment (`out/users/features` -> `features`)."""
        return self.name or self.input.rstrip("/").rsplit("/", 1)[-1].split(".")[0]


@dataclass(frozen=True)
class MaterializeResult:
    """The feature view written and how long each step took."""

    view: FeatureView
    store: str
    seconds: dict[str, float]


def latest_per_key(df: DataFrame, key: list[str], timestamp: str | None) -> DataFrame:
    """One row per key: the latest by `timestamp` (nulls last), or the table as it is.

    Raises:
        UserError: a key or timestamp column is missing.
    """
    missing = [c for c in [*key, *([timestamp] if timestamp else [])] if c not in df.columns]
    if missing:
        raise UserError(
            f"materialize: the table has no column {', '.join(map(repr, missing))}; it has "
            f"{', '.join(df.columns)}"
        )
    if timestamp is None:
        return df
    order = Window.partitionBy(*[column(c) for c in key]).orderBy(
        column(timestamp).desc_nulls_last()
    )
    return df.withColumn(_RANK, F.rank().over(order)).filter(F.col(_RANK) == 1).drop(_RANK)


def check_unique_keys(latest: DataFrame, key: list[str], timestamp: str | None) -> None:
    """Refuse null keys and keys that still have several rows (one aggregate pass).

    Raises:
        UserError: names up to five offending keys and the fix.
    """
    null_key = functools.reduce(operator.or_, [column(c).isNull() for c in key])
    offending = (
        latest.groupBy(*[column(c) for c in key])
        .agg(F.count(F.lit(1)).alias(_ROWS))
        .filter((F.col(_ROWS) > 1) | null_key)
        .limit(5)
        .collect()
    )
    if not offending:
        return
    shown = ", ".join(
        f"{dict(zip(key, row[: len(key)], strict=True))} ({row[_ROWS]} rows)" for row in offending
    )
    if any(row[c] is None for row in offending for c in key):
        raise UserError(
            f"materialize: rows with a null key cannot be looked up: {shown}; filter them out "
            "or quarantine them with lakegate validate first"
        )
    fix = (
        f"several rows share the latest {timestamp!r}; make it unique per key"
        if timestamp
        else "pass --timestamp COLUMN to keep the latest row per key"
    )
    raise UserError(f"materialize: keys with more than one row: {shown}; {fix}")


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(tuple(row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def open_configured_store(settings: Settings) -> OnlineStore:
    """The online store `conf/<env>.yaml` names (SQLite under the state folder by default)."""
    conf = settings.online_store
    return open_online_store(conf.kind, path=settings.online_store_path, url=conf.url)


def run(spark: SparkSession, settings: Settings, spec: MaterializeSpec) -> MaterializeResult:
    """Materialize the latest row per key of `spec.input` into the configured online store."""
    started = time.perf_counter()
    table = read_table(spark, spec.input, spec.format, keep_malformed=False)
    latest = latest_per_key(table, spec.key, spec.timestamp)
    check_unique_keys(latest, spec.key, spec.timestamp)
    checked = time.perf_counter()
    columns = [(field.name, field.dataType.simpleString()) for field in latest.schema.fields]
    store = open_configured_store(settings)
    try:
        rows = latest.toLocalIterator(prefetchPartitions=True)
        view = store.write_view(
            spec.view_name,
            spec.key,
            columns,
            _batches(rows, settings.online_store.batch_rows),
            source=spec.input,
        )
        location = store.location
    finally:
        store.close()
    written = time.perf_counter()
    seconds = {"read_and_check": checked - started, "write": written - checked}
    return MaterializeResult(view, location, seconds)


def render(result: MaterializeResult, spec: MaterializeSpec) -> int:
    """Print the feature view written, where, and how long it took."""
    view, total = result.view, sum(result.seconds.values())
    click.echo(
        f"Materialized {view.rows} rows of {spec.input} as feature view {view.name!r} "
        f"(key {', '.join(view.key_columns)}) in {redact(result.store)} in {total:.1f} s"
    )
    return 0


@lakegate_command("materialize", spec=MaterializeSpec, render=render)
@click.argument("input", metavar="FEATURES")
@click.option("--key", "key", multiple=True, required=True, help="Entity key column (repeat).")
@click.option("--name", default=None, help="Feature view name [the table's last path part].")
@click.option("--timestamp", default=None, help="Keep the latest row per key by this column.")
@click.option("--format", default=None, help="Input format when not detected.")
def command(job: JobContext, spec: MaterializeSpec) -> MaterializeResult:
    """Write a feature table's latest row per key into the online store."""
    result = run(job.spark, job.settings, spec)
    log_job_metrics(
        job.settings,
        "materialize",
        rows=result.view.rows,
        seconds=result.seconds,
        params={
            "input": spec.input,
            "feature_view": result.view.name,
            "store": redact(result.store),
        },
    )
    return result


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("materialize")
