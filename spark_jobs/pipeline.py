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
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.yaml_document import load_yaml_document, parse_document
from lakegate_errors import ExitCode, LakegateError, exit_code_of
from spark_jobs.services.reporting import Progress, redact
from spark_jobs.services.settings import Settings, load_settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleData(_Strict):
    """The bundled synthetic users, generated when the pipeline's input is missing."""

    path: str
    rows: int = Field(default=100_000, gt=0)
    seed: int = 7


class ValidateStep(_Strict):
    """Check the raw table and quarantine bad rows."""

    suite: str
    input: str
    output: str


class FeaturesStep(_Strict):
    """Build the feature table (see `spark_jobs.features.FeatureConfig`)."""

    input: str
    key: list[str] = Field(min_length=1)
    definitions: dict[str, str] = Field(min_length=1)
    passthrough: list[str] = Field(default_factory=list)
    output: str
    table: str | None = "features"


class TrainStep(_Strict):
    """Train and register the model of a training config, on the given features."""

    config: str
    input: str | None = None


class PredictStep(_Strict):
    """Score the feature table with a registered model, behind its input gate."""

    model: str
    input: str
    key: list[str] = Field(default_factory=list)
    output: str
    gate: bool = True
    sample_rows: int = Field(default=5, ge=0)


STEP_TYPES: dict[str, type[_Strict]] = {
    "validate": ValidateStep,
    "features": FeaturesStep,
    "train": TrainStep,
    "predict": PredictStep,
}


class PipelineConfig(_Strict):
    """A named, ordered list of steps."""

    pipeline: str
    report: str | None = None
    sample_data: SampleData | None = None
    steps: list[dict[Literal["validate", "features", "train", "predict"], Any]] = Field(
        min_length=1
    )

    @model_validator(mode="after")
    def _one_kind_per_step(self) -> PipelineConfig:
        for i, step in enumerate(self.steps):
            if len(step) != 1:
                raise ValueError(f"step {i + 1}: write each step as a one-key mapping")
            ((kind, body),) = step.items()
            STEP_TYPES[kind].model_validate(body or {})
        return self

    def typed_steps(self) -> list[tuple[str, Any]]:
        """The steps as (kind, typed arguments)."""
        return [
            (kind, STEP_TYPES[kind].model_validate(body or {}))
            for step in self.steps
            for kind, body in step.items()
        ]


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read a pipeline config; errors name the file and line."""
    return parse_document(load_yaml_document(path), PipelineConfig)


class StepFailed(LakegateError):
    """A pipeline step stopped the pipeline; it carries the exit code of the step's error."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)  # type: ignore[misc]


def run_pipeline(
    spark: Any, settings: Settings, config: PipelineConfig, *, quiet: bool = False
) -> dict[str, Any]:
    """Run every step in order; return the pipeline report (also written to `config.report`).

    Raises:
        StepFailed: naming the step; finished steps' outputs stay in place.
    """
    from spark_jobs.features import FeatureConfig, run_features
    from spark_jobs.predict import run_batch_predict
    from spark_jobs.services.table_io import read_table
    from spark_jobs.services.training import load_train_config
    from spark_jobs.train import run_training
    from spark_jobs.validate import run_validation

    path = settings.resolve
    started = time.monotonic()
    steps = config.typed_steps()
    progress = Progress(len(steps), quiet=quiet)
    report: dict[str, Any] = {"pipeline": config.pipeline, "steps": {}}

    if config.sample_data is not None and not path(config.sample_data.path).exists():
        from spark_jobs.sample_data import write_sample

        write_sample(
            path(config.sample_data.path), config.sample_data.rows, config.sample_data.seed
        )

    def validate(step: ValidateStep) -> dict[str, Any]:
        from checks.suite import load_suite

        run = run_validation(
            spark,
            settings,
            load_suite(path(step.suite)),
            str(path(step.input)),
            str(path(step.output)),
        )
        table_wide = [
            c["constraint"]
            for c in run.report["constraints"]
            if c["status"] == "failure" and c["level"] == "error" and not c["row_level"]
        ]
        if table_wide:
            raise StepFailed(
                f"validate: error-level constraints failed on the whole table "
                f"({', '.join(table_wide)}); see {run.report['outputs']['report']}",
                ExitCode.CHECKS_FAILED,
            )
        return {
            "counts": run.report["counts"],
            "reasons": run.report["quarantine_reasons"],
            "status": run.report["status"],
            "outputs": run.report["outputs"],
        }

    def features(step: FeaturesStep) -> dict[str, Any]:
        result = run_features(
            spark,
            FeatureConfig(
                input=str(path(step.input)),
                key=step.key,
                definitions=step.definitions,
                passthrough=step.passthrough,
                output=str(path(step.output)),
                table=step.table,
            ),
            settings.outputs.format,
        )
        return result

    def train(step: TrainStep) -> dict[str, Any]:
        config_ = load_train_config(path(step.config))
        result = run_training(
            spark, settings, config_, source=str(path(step.input)) if step.input else None
        )
        return json.loads(result.to_json())

    def predict(step: PredictStep) -> dict[str, Any]:
        from dataclasses import asdict

        outcome = run_batch_predict(
            spark,
            settings,
            step.model,
            str(path(step.input)),
            str(path(step.output)),
            keys=step.key,
            gate=step.gate,
        )
        sample = read_table(spark, outcome.output).limit(step.sample_rows).toPandas()
        return {**asdict(outcome), "sample": sample.to_string(index=False)}

    runners: dict[str, Callable[[Any], dict[str, Any]]] = {
        "validate": validate,
        "features": features,
        "train": train,
        "predict": predict,
    }
    for i, (kind, step) in enumerate(steps, start=1):
        progress.step(f"step {i} {kind}")
        try:
            report["steps"][kind] = runners[kind](step)
        except StepFailed:
            progress.done()
            raise
        except LakegateError as exc:
            progress.done()
            code = exit_code_of(exc) or ExitCode.USAGE
            raise StepFailed(f"step {i} ({kind}) failed: {exc}", code) from None
    progress.done()
    report["seconds"] = round(time.monotonic() - started, 1)
    report["tracking_uri"] = redact(settings.tracking_uri)
    if config.report:
        target = path(config.report)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        report["report"] = str(target)
    return report


def pipeline_summary(report: dict[str, Any]) -> str:
    """What a person wants to know after the pipeline ran."""
    lines = [f"Pipeline {report['pipeline']}: done in {report['seconds']} s"]
    steps = report["steps"]
    if v := steps.get("validate"):
        c = v["counts"]
        why = ", ".join(f"{n} {cid}" for cid, n in v["reasons"].items()) or "none"
        lines.append(
            f"  validate  {c['rows_in']} rows in, {c['rows_valid']} valid, "
            f"{c['rows_quarantined']} quarantined ({why})"
        )
        lines.append(f"            quarantine: {v['outputs']['quarantine']}")
    if f := steps.get("features"):
        view = f" (SQL view `{f['table']}`)" if f.get("table") else ""
        lines.append(
            f"  features  {f['rows']} rows: {', '.join(f['columns'])} -> {f['output']}{view}"
        )
    if t := steps.get("train"):
        before = t["previous_champion_version"]
        verdict = "became champion" if t["promoted"] else f"champion stays version {before}"
        lines.append(
            f"  train     {t['model_name']} version {t['version']}: {t['metric']} = "
            f"{t['score']:.4f} on {t['test_rows']} held-out rows; {verdict}"
        )
    if p := steps.get("predict"):
        gated = f", {p['rows_gated']} stopped by the input gate" if p["gated"] else ""
        lines.append(
            f"  predict   {p['rows']} rows scored with {p['model_name']} version "
            f"{p['model_version']}{gated} -> {p['output']}"
        )
        lines.append("Sample predictions:")
        lines += [f"  {line}" for line in p["sample"].splitlines()]
    tracking = report.get("tracking_uri", "")
    if tracking.startswith("sqlite:"):
        lines.append(
            f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {tracking} --host 127.0.0.1"
        )
    if report.get("report"):
        lines.append(f"Report: {report['report']}")
    return "\n".join(lines)


@click.command("run")
@click.argument("pipeline_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--env", default=None, help="Configuration in conf/<env>.yaml (default: local).")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(pipeline_file: Path, env: str | None, quiet: bool) -> int:
    """Run a pipeline: validate, features, train, predict, as its config declares."""
    from spark_jobs.services.session import spark_session

    settings = load_settings(env)
    config = load_pipeline(pipeline_file)
    with spark_session(settings, f"lakegate-{config.pipeline}") as spark:
        report = run_pipeline(spark, settings, config, quiet=quiet)
    click.echo(pipeline_summary(report))
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("run")
