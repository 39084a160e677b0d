"""`lakegate history --suite NAME`: the metrics a suite recorded in the Deequ repository."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, ConfigDict

from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import DataFrame, SparkSession

    from lakegate_config.settings import Settings


class HistorySpec(BaseModel):
    """Which runs to show, and how many rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite_name: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class HistoryResult:
    """The saved metrics, newest first (a DataFrame of the command's session)."""

    metrics: DataFrame
    limit: int


def saved_history(settings: Settings) -> Path:
    """The metrics repository, checked to hold at least one run (no Spark needed).

    Raises:
        UserError: nothing has been saved there yet.
    """
    from checks.deequ_run import history_files

    path = settings.metrics_repository_path
    if not history_files(path):
        raise UserError(f"no metrics history at {path} yet; run `lakegate validate` first")
    return path


def run(spark: SparkSession, settings: Settings, spec: HistorySpec) -> HistoryResult:
    """The metrics history at `settings.metrics_repository_path`, optionally for one suite.

    Raises:
        UserError: nothing has been saved there yet.
    """
    from checks.deequ_run import load_history

    path = saved_history(settings)
    return HistoryResult(load_history(spark, path, spec.suite_name), spec.limit)


def render(result: HistoryResult, spec: HistorySpec) -> int:
    """Print the first `limit` rows as a table."""
    result.metrics.show(result.limit, truncate=False)
    return 0


@lakegate_command("history", spec=HistorySpec, render=render)
@click.option("--suite", "suite_name", default=None, help="Only runs of this suite.")
@click.option("--limit", default=50, show_default=True, help="Rows to show.")
def command(job: JobContext, spec: HistorySpec) -> HistoryResult:
    """Show the metrics history kept by `lakegate validate`."""
    saved_history(job.settings)  # no history fails here, before Spark starts
    return run(job.spark, job.settings, spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("history")
