"""`lakegate history --suite NAME`: the metrics a suite recorded in the Deequ repository."""

from __future__ import annotations

import click

from lakegate_errors import UserError
from spark_jobs.services.session import spark_session
from spark_jobs.services.settings import load_settings


@click.command("history")
@click.option("--suite", "suite_name", default=None, help="Only runs of this suite.")
@click.option("--env", default=None, help="Configuration in conf/<env>.yaml (default: local).")
@click.option("--limit", default=50, show_default=True, help="Rows to show.")
def command(suite_name: str | None, env: str | None, limit: int) -> int:
    """Show the metrics history kept by `lakegate validate`."""
    settings = load_settings(env)
    path = settings.metrics_repository_path
    if not path.is_file():
        raise UserError(f"no metrics history at {path} yet; run `lakegate validate` first")
    with spark_session(settings, "lakegate-history") as spark:
        from checks.deequ_run import load_history

        history = load_history(spark, path, suite_name)
        history.show(limit, truncate=False)
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("history")
