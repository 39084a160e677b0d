"""A batch job's timings and throughput, logged to MLflow beside its models.

    log_job_metrics(settings, "predict", rows=98800, seconds={"read": 1.2, "score": 3.4})

logs `read_seconds`, `score_seconds`, `total_seconds`, `rows` and `rows_per_second` (and any
`params`) to a run of the configured experiment tagged `lakegate.job=predict`, or to `run_id`
when given. Compare runs in the MLflow UI or with `mlflow.search_runs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lakegate_config.settings import Settings
from lakegate_errors import EnvironmentProblem

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("lakegate.job_metrics")


def job_metric_values(rows: int, seconds: Mapping[str, float]) -> dict[str, float]:
    """The metrics logged for a job: each step's seconds, the total, rows and rows per second.

    The total is `seconds["total"]` when given, else the sum of the steps.
    """
    steps = {name: float(value) for name, value in seconds.items() if name != "total"}
    total = float(seconds.get("total", sum(steps.values())))
    values = {f"{name}_seconds": value for name, value in steps.items()}
    values.update(
        total_seconds=total,
        rows=float(rows),
        rows_per_second=rows / total if total > 0 else 0.0,
    )
    return values


def log_job_metrics(
    settings: Settings,
    job: str,
    *,
    rows: int,
    seconds: Mapping[str, float],
    params: Mapping[str, str | int | float] | None = None,
    run_id: str | None = None,
    strict: bool = False,
) -> str | None:
    """Log a batch job's step timings, rows and rows/s to MLflow.

    Args:
        settings: the environment (tracking URI, experiment, artifact root).
        job: the job's name (`predict`, `materialize`), set as the tag `lakegate.job`.
        rows: rows the job processed (scored, written).
        seconds: seconds per step (`{"read": 1.2, "score": 3.4}`); `total` if not the sum.
        params: parameters worth seeing beside the numbers (model version, input path).
        run_id: an existing run to log into; None starts and ends a run of its own.
        strict: raise when MLflow cannot be reached; otherwise warn and return None (a job's
            outputs are already written by then and stay valid).

    Returns:
        The run id the metrics went to, or None when they could not be logged.

    Raises:
        EnvironmentProblem: the tracking store cannot be used (only when `strict`).
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in job_metric_values(rows, seconds).items()]
    try:
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        own_run = run_id is None
        if run_id is None:
            run_id = client.create_run(
                _experiment_id(client, settings),
                run_name=f"{job}-metrics",
                tags={"lakegate.job": job, "lakegate.kind": "job-metrics"},
            ).info.run_id
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag("lakegate.job", job)] if own_run else [],
        )
        if own_run:
            client.set_terminated(run_id)
    except Exception as exc:
        message = f"the job metrics of {job} could not be logged to {settings.tracking_uri}: {exc}"
        if strict:
            raise EnvironmentProblem(message) from None
        log.warning(message)
        return None
    return run_id


def _experiment_id(client: MlflowClient, settings: Settings) -> str:
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(
            settings.mlflow.experiment, artifact_location=settings.artifact_root
        )
    )
