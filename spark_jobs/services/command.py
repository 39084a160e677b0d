"""One decorator for every `lakegate` command: `--env`, settings, a lazy session, an exit code.

A typed command declares its spec (a frozen pydantic model whose fields are the click options'
names) and the one function that renders its result:

    @lakegate_command("history", spec=HistorySpec, render=render)
    @click.option("--suite", "suite_name", default=None)
    def command(job: JobContext, spec: HistorySpec) -> HistoryResult:
        return run(job.spark, job.settings, spec)

The options are validated into the spec (an invalid one is a usage error, exit 2, naming the
option), the body returns a frozen result (pydantic model or dataclass), and `render(result,
spec)` prints it and returns the exit code (0 when it returns None). The older form,
`@lakegate_command("name")` over `fn(job, **options) -> int | None`, still works for the
commands not converted yet.

The session is built on first use of `job.spark` (so commands that fail on their input never
start Spark) and stopped when the command returns. Errors are `lakegate_errors` subclasses;
`spark_jobs.cli.main` maps them to exit codes with `exit_code_of`.

When OpenLineage is configured (`services/lineage.py`), each job command is one OpenLineage
run: START with the datasets its options name (`--input`, `--output`), then COMPLETE on exit
code 0, else FAIL; jobs add what else they read and wrote (validate: its quality facets).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import pydantic

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
NOT_JOBS = frozenset(
    {"serve", "serve-sql", "submit", "history", "export", "check", "airflow-dag", "convert"}
)
# Options naming what a job reads and writes, across the commands.
INPUT_OPTIONS = ("source", "features", "input")
OUTPUT_OPTIONS = ("output",)


def _named(options: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The locations among `options` under `names` (set ones, as strings)."""
    return [str(options[name]) for name in names if options.get(name) is not None]


Spec = TypeVar("Spec", bound=pydantic.BaseModel)
Result = TypeVar("Result")


def lakegate_command(
    name: str,
    spec: type[Spec] | None = None,
    render: Callable[[Result, Spec], int | None] | None = None,
    **click_settings: Any,
) -> Callable[[Callable[..., Any]], click.Command]:
    """Make a function the click command `name`, with `--env`, settings and a lazy session.

    With `spec` (and `render`), the function is `fn(job: JobContext, spec: Spec) -> Result`: the
    click options are validated into `spec` (their names are its fields; fields that are no
    option keep their defaults), the result must be frozen, and `render(result, spec)` prints
    it and gives the exit code. Without, it is
    `fn(job: JobContext, **options) -> int | None` (the form of the commands not typed yet).
    Either way `conf/<env>.yaml` is loaded before anything else, the session is stopped
    afterwards, and `click_settings` go to `click.command` (for example `context_settings`).

    Raises:
        TypeError: at import, when an option is no field of the spec or a required field no
            option, or the spec is not frozen.
    """
    if (spec is None) != (render is None):
        raise TypeError(f"lakegate_command({name!r}): give both spec and render, or neither")

    def decorate(fn: Callable[..., Any]) -> click.Command:
        if spec is not None:
            _check_fields(name, spec, fn)

        @functools.wraps(fn)
        def invoke(env: str | None, **options: Any) -> int:
            parsed = None if spec is None else _parse_spec(spec, options)
            job = JobContext(load_settings(env), f"lakegate-{name}")
            inputs, outputs = _named(options, INPUT_OPTIONS), _named(options, OUTPUT_OPTIONS)
            tracking = (
                contextlib.nullcontext(None)
                if name in NOT_JOBS
                else lineage.job_run(f"lakegate.{name}", inputs, outputs)
            )
            with tracking as run:
                try:
                    if parsed is None or render is None:
                        code = int(fn(job, **options) or 0)
                    else:
                        code = int(render(_frozen(name, fn(job, parsed)), parsed) or 0)
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


def _check_fields(name: str, spec: type[pydantic.BaseModel], fn: Callable[..., Any]) -> None:
    """Every click option is a field of the frozen spec; other fields have defaults."""
    options = {p.name for p in getattr(fn, "__click_params__", [])}
    fields = spec.model_fields
    unknown = sorted(options - fields.keys())
    required = sorted(f for f in fields.keys() - options if fields[f].is_required())
    if unknown or required or not spec.model_config.get("frozen"):
        raise TypeError(
            f"lakegate_command({name!r}): {spec.__name__} must be frozen, with a field per "
            f"option; options without a field: {unknown}, required fields without an option: "
            f"{required}"
        )


def _parse_spec(spec: type[Spec], options: dict[str, Any]) -> Spec:
    """The options as `spec`; an invalid value is a usage error naming its option."""
    try:
        return spec.model_validate(options)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        context = click.get_current_context(silent=True)
        params = context.command.params if context is not None else []
        param = next((p for p in params if p.name == field), None)
        raise click.BadParameter(error["msg"], ctx=context, param=param) from None


def _frozen(name: str, result: Result) -> Result:
    """`result`, checked to be a frozen pydantic model or dataclass."""
    frozen = (
        isinstance(result, pydantic.BaseModel) and bool(result.model_config.get("frozen"))
    ) or (
        dataclasses.is_dataclass(result) and getattr(result, "__dataclass_params__").frozen  # noqa: B009
    )
    if not frozen:
        raise TypeError(f"command {name!r} returned {type(result).__name__}, not a frozen result")
    return result
