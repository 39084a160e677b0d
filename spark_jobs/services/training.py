"""Train, evaluate, log, register and promote a scikit-learn model described by a job config.

The functions take a pandas frame and `Settings`; reading the feature table is the job's part
(`spark_jobs.train`). A new model version gets the alias `challenger`; `champion` moves to it when
its score is at least the current champion's (higher is better for every supported metric); the
comparison and the move hold a registry-wide lock, so concurrent trains keep the best champion.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakegate_config.settings import Settings
from lakegate_config.yaml_document import load_yaml_document, parse_document
from lakegate_errors import EnvironmentProblem, UserError

_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

CHAMPION = "champion"
INPUT_GATE_ARTIFACT = "input_gate/suite.yaml"
CHALLENGER = "challenger"
# Promotion compares and sets under a lock: a registered model of this suffix while held.
PROMOTION_LOCK_SUFFIX = ".lakegate-promotion-lock"
PROMOTION_LOCK_WAIT_SECONDS = 60
STALE_PROMOTION_LOCK_SECONDS = 300
_LOCK_DESCRIPTION = (
    "held by lakegate train while it compares and moves the champion alias; removed after "
    f"(safe to delete when no train runs; older than {STALE_PROMOTION_LOCK_SECONDS} s it is "
    "removed by the next train)"
)
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}
# Every metric here is "higher is better", which promotion relies on.
METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1"),
    "regression": ("r2",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EstimatorConfig(_Strict):
    """A scikit-learn class by dotted path and the keyword arguments it is built with."""

    class_path: str = Field(alias="class", pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """A training job: where the features are, what to fit, how to judge it."""

    model_name: str = Field(pattern=r"^[A-Za-z_][\w]*$")
    input: str
    format: Literal["delta", "parquet", "csv", "json", "table"] | None = None
    features: list[str] = Field(min_length=1)
    derived_features: dict[str, str] = Field(default_factory=dict)
    target: str
    task: Literal["classification", "regression"]
    estimator: EstimatorConfig
    preprocessing: list[EstimatorConfig] = Field(default_factory=list)
    test_fraction: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 42
    metric: str | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    skops_trusted_types: list[str] = Field(default_factory=list)

    @field_validator("features")
    @classmethod
    def _distinct(cls, features: list[str]) -> list[str]:
        if len(set(features)) != len(features):
            raise ValueError("features must be distinct")
        return features

    @model_validator(mode="after")
    def _metric_fits_task(self) -> TrainConfig:
        if self.metric is not None and self.metric not in METRICS[self.task]:
            raise ValueError(
                f"metric {self.metric!r} does not fit task {self.task}; "
                f"use one of {', '.join(METRICS[self.task])}"
            )
        if self.target in self.features:
            raise ValueError(f"the target {self.target!r} is also listed as a feature")
        return self

    @property
    def metric_name(self) -> str:
        """The configured metric, else the task's default."""
        return self.metric or DEFAULT_METRIC[self.task]


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training job config; errors name the file and line.

    Raises:
        DocumentError: the file is missing, not YAML, or a field is wrong.

    """
    return parse_document(load_yaml_document(path), TrainConfig)


@dataclass(frozen=True)
class FittedModel:
    """A fitted pipeline, its score on the held-out rows, and the rows it saw."""

    pipeline: Pipeline
    metric: str
    score: float
    train_rows: int
    test_rows: int
    example: pd.DataFrame
    signature: Any


@dataclass(frozen=True)
class TrainResult:
    """What a training run did; printed as a summary and as JSON."""

    model_name: str
    version: str
    run_id: str
    model_uri: str
    metric: str
    score: float
    previous_champion_version: str | None
    previous_champion_score: float | None
    promoted: bool
    aliases: list[str]
    rows: int
    train_rows: int
    test_rows: int
    seconds: float

    def to_json(self) -> str:
        """Return the result as one JSON object."""
        return json.dumps(asdict(self), sort_keys=True)

    def summary(self) -> str:
        """Return a few human lines about the run and the promotion decision."""
        before = (
            f"version {self.previous_champion_version} "
            f"({self.metric}={self.previous_champion_score:.4f})"
            if self.previous_champion_version is not None
            and self.previous_champion_score is not None
            else "none"
        )
        decision = (
            f"champion -> version {self.version}"
            if self.promoted
            else f"champion stays version {self.previous_champion_version}"
        )
        return (
            f"model {self.model_name} version {self.version}: {self.metric}={self.score:.4f} "
            f"on {self.test_rows} held-out rows ({self.train_rows} trained)\n"
            f"previous champion: {before}; {decision}\n"
            f"aliases of version {self.version}: {', '.join(self.aliases)}"
        )


def _import_class(class_path: str) -> type:
    module_name, _, class_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, class_name)
    except (ImportError, AttributeError):
        raise UserError(f"estimator class {class_path!r} cannot be imported") from None
    if not isinstance(found, type):
        raise UserError(f"{class_path!r} is not a class")
    return found


def _instantiate(config: EstimatorConfig) -> Any:
    cls = _import_class(config.class_path)
    try:
        return cls(**config.params)
    except TypeError as exc:
        raise UserError(f"{config.class_path}: bad params {config.params} ({exc})") from None


def build_pipeline(config: TrainConfig) -> Pipeline:
    """Build the configured preprocessing steps and estimator as one scikit-learn pipeline.

    Raises:
        UserError: a class cannot be imported or rejects its params.

    """
    from sklearn.pipeline import Pipeline

    steps = [
        (f"step_{i}_{step.class_path.rsplit('.', 1)[1].lower()}", _instantiate(step))
        for i, step in enumerate(config.preprocessing)
    ]
    steps.append(("estimator", _instantiate(config.estimator)))
    return Pipeline(steps)


def _score(metric: str, truth: Any, predicted: Any) -> float:
    from sklearn import metrics

    scorers = {
        "accuracy": metrics.accuracy_score,
        "balanced_accuracy": metrics.balanced_accuracy_score,
        "f1": lambda t, p: metrics.f1_score(t, p, average="weighted"),
        "r2": metrics.r2_score,
    }
    return float(scorers[metric](truth, predicted))


def fit_and_evaluate(frame: pd.DataFrame, config: TrainConfig) -> FittedModel:
    """Split, fit the configured pipeline, and score it on the held-out rows.

    Raises:
        UserError: a feature or the target is missing, or there are too few rows.

    """
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.model_selection import train_test_split

    missing = [c for c in (*config.features, config.target) if c not in frame.columns]
    if missing:
        raise UserError(
            f"model {config.model_name}: input {config.input!r} has no column "
            f"{', '.join(repr(m) for m in missing)} (columns: {', '.join(frame.columns)})"
        )
    frame = frame.dropna(subset=[*config.features, config.target])
    if len(frame) < 4:
        raise UserError(f"model {config.model_name}: {len(frame)} complete rows are too few")
    features = frame[list(config.features)]
    target = frame[config.target]
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=config.test_fraction, random_state=config.seed
    )
    pipeline = build_pipeline(config)
    try:
        pipeline.fit(x_train, y_train)
    except ValueError as exc:
        raise UserError(f"model {config.model_name}: fitting failed: {exc}") from None
    score = _score(config.metric_name, y_test, pipeline.predict(x_test))
    example = x_train.head(5)
    with warnings.catch_warnings():  # integer class labels: MLflow's hint is about inputs
        warnings.simplefilter("ignore", UserWarning)
        prediction = pd.DataFrame({"prediction": pipeline.predict(example)})
        signature = infer_signature(example, prediction)
    return FittedModel(
        pipeline=pipeline,
        metric=config.metric_name,
        score=score,
        train_rows=len(x_train),
        test_rows=len(x_test),
        example=example,
        signature=signature,
    )


def _trusted_types(pipeline: Pipeline, configured: list[str]) -> list[str] | None:
    """Types skops must trust to load the pipeline: the configured ones plus scikit-learn's own."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    trusted = sorted({*configured, *(t for t in untrusted if t.startswith("sklearn."))})
    return trusted or None


def pinned_requirements() -> list[str]:
    """Pin the serving requirements from this environment.

    Stating them skips MLflow's requirement inference, which re-imports the model in a
    subprocess and costs seconds per logged model.
    """
    from importlib.metadata import version

    packages = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")
    return [f"{name}=={version(name)}" for name in packages]


def _experiment_id(config: TrainConfig, settings: Settings) -> str:
    import mlflow

    name = config.experiment or settings.mlflow.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=settings.artifact_root)


def champion_score(client: Any, model_name: str, metric: str) -> tuple[str | None, float | None]:
    """Return the champion's version and its run's `metric`, or (None, None) without one."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model_name)
    except MlflowException:
        return None, None
    version = (registered.aliases or {}).get(CHAMPION)
    if version is None:
        return None, None
    run_id = client.get_model_version(model_name, str(version)).run_id
    value = client.get_run(run_id).data.metrics.get(metric) if run_id else None
    return str(version), value


@contextmanager
def promotion_lock(client: Any, model_name: str) -> Iterator[None]:
    """Hold the registry-wide lock on `model_name`'s promotion (any MLflow registry).

    The lock is a registered model of its own, `<model>.lakegate-promotion-lock`: creating a
    name is atomic in every registry store (sqlite, PostgreSQL, a tracking server), and only one
    creator succeeds. A lock older than `STALE_PROMOTION_LOCK_SECONDS` was left by a process that
    died while holding it and is removed.

    Raises:
        EnvironmentProblem: the registry cannot be used, or the lock stayed taken too long.
    """
    from mlflow.exceptions import MlflowException

    lock = f"{model_name}{PROMOTION_LOCK_SUFFIX}"
    deadline = time.monotonic() + PROMOTION_LOCK_WAIT_SECONDS
    while True:
        try:
            client.create_registered_model(lock, description=_LOCK_DESCRIPTION)
            break
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise EnvironmentProblem(
                    f"the model registry cannot lock {model_name}'s promotion: {exc}"
                ) from None
        _remove_if_stale(client, lock)
        if time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"another train of {model_name} held the promotion lock (registered model "
                f"{lock!r}) for over {PROMOTION_LOCK_WAIT_SECONDS} s; run again, or delete that "
                "registered model if no train is running"
            )
        time.sleep(random.uniform(0.02, 0.1))
    try:
        yield
    finally:
        client.delete_registered_model(lock)


def _remove_if_stale(client: Any, lock: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        created = client.get_registered_model(lock).creation_timestamp
        if time.time() * 1000 - created > STALE_PROMOTION_LOCK_SECONDS * 1000:
            client.delete_registered_model(lock)
    except MlflowException:  # released meanwhile
        return


def promote(
    client: Any, model_name: str, version: str, score: float, metric: str
) -> tuple[bool, str | None, float | None]:
    """Move `champion` to `version` when `score` is at least the champion's `metric`.

    The comparison and the move happen under `promotion_lock`, so concurrent trains of one
    model leave the best of them champion.

    Returns:
        Whether it moved, and the champion's version and score it was compared with.
    """
    with promotion_lock(client, model_name):
        previous_version, previous_score = champion_score(client, model_name, metric)
        promoted = previous_version is None or previous_score is None or score >= previous_score
        if promoted:
            client.set_registered_model_alias(model_name, CHAMPION, version)
    return promoted, previous_version, previous_score


def _log_run(
    fitted: FittedModel,
    config: TrainConfig,
    experiment_id: str,
    source: str,
    rows: int,
    input_gate: dict[str, Any] | None,
) -> tuple[str, str]:
    """Log one training run: parameters, metrics, metadata and the model.

    Returns:
        The run's id and the logged model's URI.
    """
    import mlflow
    import mlflow.sklearn

    metadata = {
        "data_source": source,
        "rows": rows,
        "train_rows": fitted.train_rows,
        "test_rows": fitted.test_rows,
        "features": list(config.features),
        "derived_features": dict(config.derived_features),
        "target": config.target,
        "task": config.task,
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"train-{config.model_name}"
    ) as run:
        mlflow.log_params(
            {
                "estimator": config.estimator.class_path,
                **{f"estimator.{k}": v for k, v in config.estimator.params.items()},
                "preprocessing": ",".join(s.class_path for s in config.preprocessing) or "none",
                "features": ",".join(config.features),
                "target": config.target,
                "task": config.task,
                "test_fraction": config.test_fraction,
                "seed": config.seed,
            }
        )
        mlflow.log_metrics(
            {
                fitted.metric: fitted.score,
                "rows": rows,
                "train_rows": fitted.train_rows,
                "test_rows": fitted.test_rows,
            }
        )
        mlflow.set_tags({"lakegate.data_source": source, "lakegate.job": "train"})
        mlflow.log_dict(metadata, "training_metadata.json")
        if input_gate is not None:
            mlflow.log_dict(input_gate, INPUT_GATE_ARTIFACT)
        info = mlflow.sklearn.log_model(
            fitted.pipeline,
            name="model",
            signature=fitted.signature,
            input_example=fitted.example,
            skops_trusted_types=_trusted_types(fitted.pipeline, config.skops_trusted_types),
            pip_requirements=pinned_requirements(),
        )
    return run.info.run_id, info.model_uri


def log_register_promote(
    fitted: FittedModel,
    config: TrainConfig,
    settings: Settings,
    *,
    source: str,
    rows: int,
    started: float | None = None,
    input_gate: dict[str, Any] | None = None,
) -> TrainResult:
    """Log the run and model, register a version as `challenger`, promote it if good enough.

    `input_gate`, a suite derived from the training data, is logged as `input_gate/suite.yaml`.

    Raises:
        EnvironmentProblem: the tracking store cannot be reached.
    """
    import mlflow
    from mlflow import MlflowClient

    started = started if started is not None else time.perf_counter()
    tracking_uri = config.tracking_uri or settings.tracking_uri
    registry_uri = settings.registry_uri if config.tracking_uri is None else config.tracking_uri
    with mlflow_stores(tracking_uri, registry_uri):
        try:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            experiment_id = _experiment_id(config, settings)
        except Exception as exc:
            raise EnvironmentProblem(
                f"the MLflow store {tracking_uri} cannot be used: {exc}"
            ) from None
        run_id, model_uri = _log_run(fitted, config, experiment_id, source, rows, input_gate)
        version = mlflow.register_model(model_uri, config.model_name)
    client.set_registered_model_alias(config.model_name, CHALLENGER, version.version)
    promoted, previous_version, previous_score = promote(
        client, config.model_name, str(version.version), fitted.score, fitted.metric
    )
    aliases = sorted(client.get_model_version(config.model_name, version.version).aliases)
    return TrainResult(
        model_name=config.model_name,
        version=str(version.version),
        run_id=run_id,
        model_uri=f"models:/{config.model_name}/{version.version}",
        metric=fitted.metric,
        score=fitted.score,
        previous_champion_version=previous_version,
        previous_champion_score=previous_score,
        promoted=promoted,
        aliases=aliases,
        rows=rows,
        train_rows=fitted.train_rows,
        test_rows=fitted.test_rows,
        seconds=round(time.perf_counter() - started, 3),
    )


@contextmanager
def mlflow_stores(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at these stores, and the process left as it was.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI (and the registry's), which
    outranks conf/ in `Settings`: without the restore, every later command in the same process
    (a notebook, a test run) would use this training's store.
    """
    import mlflow

    with mlflow_uris_kept():
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri)
        yield


@contextmanager
def mlflow_uris_kept() -> Iterator[None]:
    """MLflow's process-wide URIs (module globals and MLFLOW_* variables) restored on exit."""
    from mlflow.tracking._model_registry import utils as registry_globals
    from mlflow.tracking._tracking_service import utils as tracking_globals

    saved = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    saved_globals = (tracking_globals._tracking_uri, registry_globals._registry_uri)
    try:
        yield
    finally:
        # mlflow keeps the URIs in module globals as well as in the environment
        tracking_globals._tracking_uri, registry_globals._registry_uri = saved_globals
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def train_model(
    frame: pd.DataFrame,
    config: TrainConfig,
    settings: Settings,
    *,
    source: str,
    input_gate: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit, evaluate, log, register and (maybe) promote; the whole training step."""
    started = time.perf_counter()
    fitted = fit_and_evaluate(frame, config)
    return log_register_promote(
        fitted,
        config,
        settings,
        source=source,
        rows=len(frame),
        started=started,
        input_gate=input_gate,
    )
