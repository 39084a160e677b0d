"""A stream's session keeps a bounded history of Spark's executions, jobs and stages.

Spark's status store keeps 1,000 SQL executions, jobs and stages by default (with the UI off
too); a stream runs some 20 of each per batch, so a long stream held about 40 MB of driver heap
in them. Both stream commands build their session from `stream_io.stream_settings`, which puts
`stream.spark_conf` (conf/<env>.yaml, typed in `lakegate_config.settings`) over `spark.conf`.

No JVM: the commands are run up to the moment they ask for their session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakegate_config.settings import ScoringSettings, Settings, load_settings
from spark_jobs.services.command import JobContext
from spark_jobs.services.session import spark_conf
from spark_jobs.services.stream_io import stream_settings
from spark_jobs.stream import StreamValidateSpec, validate_command
from spark_jobs.stream_predict import StreamPredictSpec
from spark_jobs.stream_predict import command as predict_command

RETENTION = ("spark.sql.ui.retainedExecutions", "spark.ui.retainedJobs", "spark.ui.retainedStages")
BOUND = 100


class SessionAsked(Exception):
    """Raised where a command would build its session."""


class RecordingJob(JobContext):
    """A command's context that records the settings its session would be built from."""

    asked_with: Settings | None = None

    @property
    def spark(self) -> SparkSession:
        self.asked_with = self.settings
        raise SessionAsked


def retention(settings: Settings) -> dict[str, int]:
    """The status store's bounds in the Spark configuration a session gets from `settings`."""
    conf = spark_conf(settings)
    return {key: int(conf[key]) for key in RETENTION if key in conf}


@pytest.mark.parametrize("env", ["local", "cluster", "test"])
def test_a_stream_session_keeps_at_most_100_executions_jobs_and_stages(env: str) -> None:
    settings = load_settings(env)
    assert retention(settings) == {}  # other commands keep Spark's defaults
    bounded = retention(stream_settings(settings))
    assert bounded == dict.fromkeys(RETENTION, BOUND)


def test_the_stream_bounds_come_from_the_conf_and_win_over_spark_conf() -> None:
    settings = load_settings("test")
    spark = settings.spark.model_copy(
        update={"conf": {**settings.spark.conf, "spark.ui.retainedJobs": 1000}}
    )
    stream = settings.stream.model_copy(
        update={"spark_conf": {**settings.stream.spark_conf, "spark.ui.retainedJobs": 20}}
    )
    changed = settings.model_copy(update={"spark": spark, "stream": stream})
    assert retention(stream_settings(changed))["spark.ui.retainedJobs"] == 20
    assert spark_conf(stream_settings(changed))["spark.sql.shuffle.partitions"] == "2"


def _ask(command: Any, spec: Any) -> Settings:
    """Run a stream command's body until it asks for its session; the settings it asked with."""
    settings = load_settings("test").model_copy(update={"scoring": ScoringSettings(compiled=False)})
    job = RecordingJob(settings, "lakegate-test")
    with pytest.raises(SessionAsked):
        command.callback.__wrapped__(job, spec)
    assert job.asked_with is not None
    return job.asked_with


def test_both_stream_commands_build_their_session_with_the_bound(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: s\nchecks:\n  - name: c\n    constraints:\n      - isComplete: id\n")
    common = {
        "source": f"parquet:{tmp_path}",
        "output": str(tmp_path / "out"),
        "checkpoint": str(tmp_path / "ck"),
    }
    validate = _ask(validate_command, StreamValidateSpec(suite=str(suite), **common))
    predict = _ask(predict_command, StreamPredictSpec(model="models:/m@champion", **common))
    for settings in (validate, predict):
        assert retention(settings) == dict.fromkeys(RETENTION, BOUND)
