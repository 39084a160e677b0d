"""`lakegate history --suite NAME`: the metrics a suite recorded in the Deequ repository."""

from __future__ import annotations

import click

from lakegate_errors import UserError
from spark_jobs.services.command import JobContext, lakegate_command


@lakegate_command("history")
@click.option("--suite", "suite_name", default=None, help="Only runs of this suite.")
@click.option("--limit", default=50, show_default=True, help="Rows to show.")
def command(job: JobContext, suite_name: str | None, limit: int) -> int:
    """Show the metrics history kept by `lakegate validate`."""
    from checks.deequ_run import history_files, load_history

    path = job.settings.metrics_repository_path
    if not history_files(path):
        raise UserError(f"no metrics history at {path} yet; run `lakegate validate` first")
    load_history(job.spark, path, suite_name).show(limit, truncate=False)
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("history")
