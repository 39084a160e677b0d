"""`lakegate run PIPELINE`: validate -> features -> train -> predict, as declared in config.

Each step is also a job of its own; here they share one session. A step that fails stops the
pipeline with its message and exit code; the outputs of the steps before it were committed and
stay valid. The validate step lets the pipeline go on when its failures were row-level (those
rows are in quarantine) and stops it when an error-level table-wide constraint failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_config.yaml_document import load_yaml_document, parse_document
from lakegate_errors import ChecksFailed, ExitCode, LakegateError, UserError, exit_code_of
from spark_jobs.features import FeaturesResult, FeaturesSpec
from spark_jobs.predict import PredictReport, PredictSpec
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.reporting import Progress
from spark_jobs.services.training import TrainResult
from spark_jobs.train import TrainSpec
from spark_jobs.validate import ValidateSpec, ValidationResult

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleData(_Strict):
    """The bundled synthetic users, generated when the pipeline's input is missing."""

    path: str
    rows: int = Field(default=100_000, gt=0)
    seed: int = 7


# Each step kind says which job command line runs it alone with the same meaning
# (`job_command`: job name and arguments), or None when none does; such a step runs alone as
# `lakegate run PIPELINE --step KIND` (`step_command`). `lakegate airflow-dag` builds its tasks
# from these.
JobCommand = tuple[str, list[str]]


class ValidateStep(ValidateSpec):
    """Validate as a pipeline step."""

    kind: Literal["validate"] = "validate"

    def job_command(self) -> JobCommand | None:
        """None: the pipeline's gate is not `lakegate validate`'s.

        `lakegate validate` exits 1 when any error-level check failed, quarantined rows
        included; the pipeline goes on then and stops only for a table-wide failure.
        """
        return None


class FeaturesStep(FeaturesSpec):
    """Features as a pipeline step."""

    kind: Literal["features"] = "features"

    def job_command(self) -> JobCommand | None:
        """None: the step's definitions are inline; `lakegate features` reads them from a file."""
        return None


class TrainStep(TrainSpec):
    """Train as a pipeline step."""

    kind: Literal["train"] = "train"

    def job_command(self) -> JobCommand | None:
        """`train CONFIG`, unless the step reads another input (`lakegate train` has no --input)."""
        return None if self.input is not None else ("train", [self.config])


class PredictStep(PredictSpec):
    """Predict as a pipeline step: behind the input gate by default, with sample rows shown."""

    kind: Literal["predict"] = "predict"
    gate: bool = True
    sample_rows: int = Field(default=5, ge=0)

    def job_command(self) -> JobCommand | None:
        """`predict --model ... --input ... --output ...` with the step's options."""
        if self.scored_at is not None and self.scored_at.microsecond:
            return None  # --scored-at takes whole seconds
        args = ["--model", self.model, "--input", self.input, "--output", self.output]
        for key in self.key:
            args += ["--key", key]
        if self.input_format is not None:
            args += ["--input-format", self.input_format]
        if self.format is not None:
            args += ["--format", self.format]
        if self.scored_at is not None:
            args += ["--scored-at", self.scored_at.strftime("%Y-%m-%dT%H:%M:%S%z")]
        return "predict", args + (["--gate"] if self.gate else [])


# A step is the spec of the job it runs, told apart by `kind` (written as the step's one key).
Step = Annotated[ValidateStep | FeaturesStep | TrainStep | PredictStep, Field(discriminator="kind")]
_STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
# Fields holding paths, resolved against the project root before a step runs.
PATH_FIELDS = {
    "validate": ("suite", "input", "output"),
    "features": ("input", "output"),
    "train": ("config", "input"),
    "predict": ("input", "output"),
}


class PipelineConfig(_Strict):
    """A named, ordered list of steps, each the spec of the job it runs."""

    pipeline: str
    report: str | None = None
    # For schedulers (`lakegate airflow-dag`): retries of a step that failed for a reason a retry
    # may cure (not exit 1, 2 or 3), and the wait before each.
    retries: int = Field(default=0, ge=0)
    retry_delay_seconds: int = Field(default=300, ge=0)
    sample_data: SampleData | None = None
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _kind_from_the_key(cls, steps: Any) -> Any:
        """`- validate: {...}` (one key, the job's name) becomes the spec with `kind: validate`."""
        if not isinstance(steps, list):
            return steps
        typed = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or len(step) != 1:
                raise ValueError(f"step {i + 1}: write each step as a one-key mapping")
            ((kind, body),) = step.items()
            body = {} if body is None else body
            if not isinstance(body, dict) or "kind" in body:
                raise ValueError(f"step {i + 1} ({kind}): write the step's settings as a mapping")
            typed.append({"kind": kind, **body})
        return typed

    def typed_steps(self) -> list[tuple[str, Step]]:
        """The steps as (kind, the job's spec)."""
        return [(step.kind, step) for step in self.steps]


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read a pipeline config; errors name the file and line."""
    return parse_document(load_yaml_document(path), PipelineConfig)


def step_of(config: PipelineConfig, kind: str) -> Step:
    """The pipeline's one step of `kind`.

    Raises:
        UserError: no step, or several, of that kind.
    """
    found = [spec for k, spec in config.typed_steps() if k == kind]
    if len(found) != 1:
        kinds = ", ".join(k for k, _ in config.typed_steps())
        how_many = "no" if not found else "more than one"
        raise UserError(f"pipeline {config.pipeline} has {how_many} {kind!r} step (steps: {kinds})")
    return found[0]


def with_step_spec(config: PipelineConfig, kind: str, spec_json: str) -> PipelineConfig:
    """The pipeline with its `kind` step's settings replaced by `spec_json` (a JSON object).

    Raises:
        UserError: no such step, or the JSON is not valid settings for it.
    """
    replaced = step_of(config, kind)
    try:
        data = json.loads(spec_json)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        new = _STEP_ADAPTER.validate_python({**data, "kind": kind})
    except (ValueError, ValidationError) as exc:
        raise UserError(f"--step-spec is not valid settings for a {kind} step: {exc}") from None
    steps = [new if spec is replaced else spec for spec in config.steps]
    return config.model_copy(update={"steps": steps})


def step_command(
    pipeline_file: Path, settings: Settings, config: PipelineConfig, kind: str
) -> JobCommand:
    """The job and arguments that run the `kind` step alone, its paths resolved.

    The job's own command line when the step has one with the same meaning, else `run
    PIPELINE --step KIND --step-spec JSON` (the step's settings in the arguments, so a scheduler
    can render templates such as `{{ ds }}` in them).
    """
    spec: Step = _resolved(settings, kind, step_of(config, kind))
    if (own := spec.job_command()) is not None:
        return own
    body = json.dumps(spec.model_dump(mode="json", exclude={"kind"}, exclude_defaults=True))
    return "run", [str(pipeline_file.resolve()), "--step", kind, "--step-spec", body]


class StepFailed(LakegateError):
    """A pipeline step stopped the pipeline; it carries the exit code of the step's error."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)  # type: ignore[misc]


@dataclass(frozen=True)
class PipelineResult:
    """What each step returned, and the pipeline's own facts."""

    pipeline: str
    seconds: float
    tracking_uri: str
    validate: ValidationResult | None = None
    features: FeaturesResult | None = None
    train: TrainResult | None = None
    predict: PredictReport | None = None
    sample: str = ""
    report: str | None = None

    def to_report(self) -> dict[str, Any]:
        """The pipeline report (JSON-ready)."""
        steps: dict[str, Any] = {}
        if self.validate is not None:
            full = self.validate.to_report()
            steps["validate"] = {
                "counts": full["counts"],
                "reasons": full["quarantine_reasons"],
                "status": full["status"],
                "outputs": full["outputs"],
            }
        if self.features is not None:
            steps["features"] = asdict(self.features)
        if self.train is not None:
            steps["train"] = asdict(self.train)
        if self.predict is not None:
            steps["predict"] = {**asdict(self.predict), "sample": self.sample}
        return {
            "pipeline": self.pipeline,
            "steps": steps,
            "seconds": self.seconds,
            "tracking_uri": self.tracking_uri,
        }


def _resolved(settings: Settings, kind: str, spec: Any) -> Any:
    updates = {
        name: str(settings.resolve(value))
        for name in PATH_FIELDS[kind]
        if (value := getattr(spec, name)) is not None
    }
    return spec.model_copy(update=updates)


def _run_validate(spark: SparkSession, settings: Settings, spec: ValidateStep) -> Any:
    """Validate; a table-wide error-level failure stops the pipeline (row failures do not)."""
    from spark_jobs import validate

    result = validate.run(spark, settings, spec)
    if table_wide := result.table_wide_failures():
        raise ChecksFailed(
            f"validate: error-level constraints failed on the whole table "
            f"({', '.join(table_wide)}); see {result.outputs.report}"
        )
    return result


def _run_features(spark: SparkSession, settings: Settings, spec: FeaturesStep) -> Any:
    from spark_jobs import features

    return features.run(spark, settings, spec)


def _run_train(spark: SparkSession, settings: Settings, spec: TrainStep) -> Any:
    from spark_jobs import train

    return train.run(spark, settings, spec)


def _run_predict(spark: SparkSession, settings: Settings, spec: PredictStep) -> Any:
    from spark_jobs import predict

    return predict.run(spark, settings, PredictSpec(**spec.model_dump(exclude=_STEP_ONLY)))


_STEP_ONLY = {"kind", "sample_rows"}
# One runner per kind of step.
RUNNERS: dict[str, Callable[[SparkSession, Settings, Any], Any]] = {
    "validate": _run_validate,
    "features": _run_features,
    "train": _run_train,
    "predict": _run_predict,
}


def run(
    spark: SparkSession,
    settings: Settings,
    spec: PipelineConfig,
    *,
    quiet: bool = False,
    only: str | None = None,
) -> PipelineResult:
    """Run every step of the pipeline `spec` in order (or the `only` step of that kind).

    A whole run also writes the result to `spec.report`; a single step does not.

    Raises:
        StepFailed: naming the step; finished steps' outputs stay in place.
    """
    from spark_jobs.services.table_io import read_table

    started = time.monotonic()
    steps = spec.typed_steps()
    if only is not None:
        chosen = step_of(spec, only)
    progress = Progress(len(steps) if only is None else 1, quiet=quiet)
    if spec.sample_data is not None and not settings.resolve(spec.sample_data.path).exists():
        from spark_jobs.sample_data import write_sample

        sample = spec.sample_data
        write_sample(settings.resolve(sample.path), sample.rows, sample.seed)
    results: dict[str, Any] = {}
    for i, (kind, step) in enumerate(steps, start=1):
        if only is not None and step is not chosen:
            continue
        progress.step(f"step {i} {kind}")
        try:
            results[kind] = RUNNERS[kind](spark, settings, _resolved(settings, kind, step))
        except StepFailed:
            progress.done()
            raise
        except LakegateError as exc:
            progress.done()
            code = exit_code_of(exc) or ExitCode.USAGE
            raise StepFailed(f"step {i} ({kind}) failed: {exc}", code) from None
    progress.done()
    sample_text = ""
    if (predicted := results.get("predict")) is not None:
        rows = next(s.sample_rows for _, s in steps if isinstance(s, PredictStep))
        sample_text = (
            read_table(spark, predicted.output).limit(rows).toPandas().to_string(index=False)
        )
    result = PipelineResult(
        pipeline=spec.pipeline,
        seconds=round(time.monotonic() - started, 1),
        tracking_uri=redact(settings.tracking_uri),
        sample=sample_text,
        report=str(settings.resolve(spec.report)) if spec.report and not only else None,
        **results,
    )
    if result.report:
        target = Path(result.report)
        target.parent.mkdir(parents=True, exist_ok=True)
        report = json.dumps(result.to_report(), indent=2, default=str)
        target.write_text(report + "\n", encoding="utf-8")
    return result


# `run`'s name before the command was typed (the pipeline tests call it so).
run_pipeline = run


def pipeline_summary(result: PipelineResult) -> str:
    """What a person wants to know after the pipeline ran."""
    lines = [f"Pipeline {result.pipeline}: done in {result.seconds} s"]
    if (v := result.validate) is not None:
        c = v.counts
        why = ", ".join(f"{n} {cid}" for cid, n in v.quarantine_reasons.items()) or "none"
        lines.append(
            f"  validate  {c.rows_in} rows in, {c.rows_valid} valid, "
            f"{c.rows_quarantined} quarantined ({why})"
        )
        lines.append(f"            quarantine: {v.outputs.quarantine}")
    if (f := result.features) is not None:
        view = f" (SQL view `{f.table}`)" if f.table else ""
        lines.append(f"  features  {f.rows} rows: {', '.join(f.columns)} -> {f.output}{view}")
    if (t := result.train) is not None:
        before = t.previous_champion_version
        verdict = "became champion" if t.promoted else f"champion stays version {before}"
        lines.append(
            f"  train     {t.model_name} version {t.version}: {t.metric} = "
            f"{t.score:.4f} on {t.test_rows} held-out rows; {verdict}"
        )
    if (p := result.predict) is not None:
        gated = f", {p.rows_gated} stopped by the input gate" if p.gated else ""
        lines.append(
            f"  predict   {p.rows} rows scored with {p.model_name} version "
            f"{p.model_version}{gated} -> {p.output}"
        )
        lines.append("Sample predictions:")
        lines += [f"  {line}" for line in result.sample.splitlines()]
    if result.tracking_uri.startswith("sqlite:"):
        lines.append(
            f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {result.tracking_uri} "
            "--host 127.0.0.1"
        )
    if result.report:
        lines.append(f"Report: {result.report}")
    return "\n".join(lines)


class PipelineCommandSpec(BaseModel):
    """`lakegate run PIPELINE_FILE [--step KIND [--step-spec JSON]] [--quiet]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline_file: Path
    quiet: bool = False
    step: str | None = None
    step_spec: str | None = None


def render(result: PipelineResult, spec: PipelineCommandSpec) -> int:
    """Print what each step did (`pipeline_summary`)."""
    click.echo(pipeline_summary(result))
    return 0


@lakegate_command("run", spec=PipelineCommandSpec, render=render)
@click.argument("pipeline_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option(
    "--step", default=None, metavar="KIND",
    help="Run only the step of this kind (validate, features, train, predict); the steps "
    "before it must have written its input.",
)  # fmt: skip
@click.option(
    "--step-spec", default=None, metavar="JSON",
    help="With --step: the step's settings as a JSON object, instead of the file's "
    "(what `lakegate airflow-dag` passes, so Airflow renders templates in them).",
)  # fmt: skip
def command(job: JobContext, spec: PipelineCommandSpec) -> PipelineResult:
    """Run a pipeline: validate, features, train, predict, as its config declares."""
    config = load_pipeline(spec.pipeline_file)  # a bad config fails here, before Spark starts
    if spec.step_spec is not None and spec.step is None:
        raise UserError("--step-spec needs --step KIND")
    if spec.step is not None:
        step_of(config, spec.step)
        if spec.step_spec is not None:
            config = with_step_spec(config, spec.step, spec.step_spec)
    return run(job.spark, job.settings, config, quiet=spec.quiet, only=spec.step)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("run")
