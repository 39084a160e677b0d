"""One decorator for every `lakegate` command: `--env`, settings, a lazy session, an exit code.

    @lakegate_command("validate")
    @click.argument("suite_file")
    def command(job: JobContext, suite_file: str) -> int:
        suite = load_suite(suite_file)          # bad input fails here, before Spark starts
        result = run(job.spark, job.settings, ValidateSpec(...))
        ...

The session is built on first use of `job.spark` (so commands that fail on their input never
start Spark) and stopped when the command returns. Errors are `lakegate_errors` subclasses;
`spark_jobs.cli.main` maps them to exit codes with `exit_code_of`.

When OpenLineage is configured (`services/lineage.py`), each job command is one OpenLineage
run: START with the datasets its options name (`--input`, `--output`), then COMPLETE on exit
code 0, else FAIL; jobs add what else they read and wrote (validate: its quality facets).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import click

from lakegate_config.settings import Settings, load_settings
from spark_jobs.services import lineage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class JobContext:
    """What a command gets: its settings now, and a SparkSession when it first asks for one."""

    def __init__(self, settings: Settings, app_name: str) -> None:
        self.settings = settings
        self.app_name = app_name
        self._spark: SparkSession | None = None
        self._owned = False

    @property
    def spark(self) -> SparkSession:
        """The session, built from the settings on first use (or the active one, in a notebook)."""
        if self._spark is None:
            from pyspark.sql import SparkSession

            from spark_jobs.services.session import get_session

            self._owned = SparkSession.getActiveSession() is None
            self._spark = get_session(self.settings, self.app_name)
        return self._spark

    def close(self) -> None:
        """Stop the session if this command built it."""
        if self._spark is not None and self._owned:
            from spark_jobs.services.session import stop_session

            stop_session(self._spark)
        self._spark = None


# Commands that are servers or launchers, not jobs: no lineage run of their own (a submitted
# job emits its own events where it runs).
NOT_JOBS = frozenset({"serve", "serve-sql", "submit", "history"})
# Options naming what a job reads and writes, across the commands.
INPUT_OPTIONS = ("source", "features")
OUTPUT_OPTIONS = ("output",)


def _named(options: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The locations among `options` under `names` (set ones, as strings)."""
    return [str(options[name]) for name in names if options.get(name) is not None]


def lakegate_command(
    name: str, **click_settings: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """Make `fn(job: JobContext, **options) -> int | None` the click command `name`.

    Adds `--env`, loads `conf/<env>.yaml` before anything else, stops the session afterwards,
    and returns the function's exit code (0 when it returns None). `click_settings` go to
    `click.command` (for example `context_settings`).
    """

    def decorate(fn: Callable[..., Any]) -> click.Command:
        @functools.wraps(fn)
        def invoke(env: str | None, **options: Any) -> int:
            job = JobContext(load_settings(env), f"lakegate-{name}")
            inputs, outputs = _named(options, INPUT_OPTIONS), _named(options, OUTPUT_OPTIONS)
            tracking = (
                contextlib.nullcontext(None)
                if name in NOT_JOBS
                else lineage.job_run(f"lakegate.{name}", inputs, outputs)
            )
            with tracking as run:
                try:
                    code = int(fn(job, **options) or 0)
                finally:
                    job.close()
                lineage.finish(run, code)
            return code

        option = click.option(
            "--env", default=None, help="Configuration in conf/<env>.yaml (default: local)."
        )
        make_command = cast(
            Callable[[Callable[..., Any]], click.Command], click.command(name, **click_settings)
        )
        return make_command(option(invoke))

    return decorate
