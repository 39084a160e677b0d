"""`lakegate predict`: keys + predictions written once, checked before writing, with a report."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from model_fixtures import train, users_frame
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.predict import REPORT_NAME

FEATURES = ["feature_1", "feature_2", "feature_3"]
MODEL = "models:/predict_users@champion"


@pytest.fixture(scope="module")
def model(settings: Settings) -> str:
    train(settings, "predict_users")
    return MODEL


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=120, seed=5)


@pytest.fixture(scope="module")
def input_path(spark: SparkSession, users: pd.DataFrame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("predict-input") / "users.parquet"
    spark.createDataFrame(users).repartition(3).write.parquet(str(path))
    return path


def _predict(input_path: Path, output: Path, *extra: str, model: str = MODEL) -> int:
    return main(
        [
            "predict",
            "--model",
            model,
            "--input",
            str(input_path),
            "--output",
            str(output),
            "--key",
            "user_id",
            *extra,
        ]
    )


@pytest.mark.slow
def test_predict_writes_keys_predictions_model_version_and_one_scoring_time(
    spark, settings, model, users, input_path, tmp_path
):
    output = tmp_path / "predictions"
    assert _predict(input_path, output) == 0
    written = spark.read.format("delta").load(str(output))
    assert written.columns == ["user_id", "prediction", "model_name", "model_version", "scored_at"]
    assert written.select("scored_at").distinct().count() == 1
    mlflow.set_tracking_uri(settings.tracking_uri)
    sklearn_model = mlflow.sklearn.load_model(model)
    expected = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "prediction": sklearn_model.predict(users[FEATURES]),
            "model_name": "predict_users",
            "model_version": "1",
        }
    )
    assertDataFrameEqual(
        written.drop("scored_at"),
        spark.createDataFrame(
            expected, "user_id long, prediction long, model_name string, model_version string"
        ),
    )


@pytest.mark.slow
def test_predict_rerun_replaces_the_output_with_an_identical_one(
    spark, model, input_path, tmp_path
):
    output = tmp_path / "predictions"
    pinned = ("--scored-at", "2026-01-02T03:04:05")
    assert _predict(input_path, output, *pinned) == 0
    first = spark.read.format("delta").load(str(output)).toPandas()
    assert _predict(input_path, output, *pinned) == 0
    second = spark.read.format("delta").load(str(output))
    assert second.count() == len(first) == 120
    assertDataFrameEqual(second, spark.createDataFrame(first, second.schema))
    staging = ("_staging-", "_journal-", "_replaced-")  # what StagedOutputs leaves while writing
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(staging)] == []


def test_predict_report_counts_rows_and_null_feature_rows(spark, model, users, tmp_path):
    with_nulls = users.copy()
    with_nulls.loc[:9, "feature_2"] = None
    path = tmp_path / "with_nulls.parquet"
    spark.createDataFrame(with_nulls).write.parquet(str(path))
    output = tmp_path / "predictions"
    assert _predict(path, output) == 0
    report = json.loads((output / REPORT_NAME).read_text())
    assert report["rows"] == 120
    assert report["null_feature_rows"] == 10
    assert report["model_version"] == "1" and report["model_uri"] == MODEL
    written = spark.read.format("delta").load(str(output))
    assert written.filter("prediction IS NULL").count() == 10


def test_missing_feature_column_exits_2_naming_model_and_column_and_writes_nothing(
    spark, model, users, tmp_path, capsys
):
    path = tmp_path / "no_feature_3.parquet"
    spark.createDataFrame(users.drop(columns=["feature_3"])).write.parquet(str(path))
    output = tmp_path / "predictions"
    assert _predict(path, output) == 2
    err = capsys.readouterr().err
    assert "predict_users" in err and "'feature_3'" in err
    assert "Traceback" not in err
    assert not output.exists()


def test_wrong_feature_type_exits_2_naming_the_column(spark, model, users, tmp_path, capsys):
    path = tmp_path / "string_feature.parquet"
    frame = users.assign(feature_2=users["feature_2"].astype(str))
    spark.createDataFrame(frame).write.parquet(str(path))
    output = tmp_path / "predictions"
    assert _predict(path, output) == 2
    assert "column 'feature_2') is string" in capsys.readouterr().err
    assert not output.exists()


def test_unknown_alias_exits_2_and_keeps_the_previous_output(
    spark, model, input_path, tmp_path, capsys
):
    output = tmp_path / "predictions"
    assert _predict(input_path, output) == 0
    before = sorted(p.name for p in output.iterdir())
    assert _predict(input_path, output, model="models:/predict_users@nope") == 2
    assert "has no alias 'nope'" in capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == before


def test_unknown_model_exits_2(model, input_path, tmp_path, capsys):
    assert _predict(input_path, tmp_path / "out", model="models:/nobody@champion") == 2
    assert "no registered model named 'nobody'" in capsys.readouterr().err


def test_missing_key_column_exits_2(model, input_path, tmp_path, capsys):
    code = main(
        [
            "predict",
            "--model",
            MODEL,
            "--input",
            str(input_path),
            "--output",
            str(tmp_path / "out"),
            "--key",
            "account_id",
        ]
    )
    assert code == 2
    assert "'account_id'" in capsys.readouterr().err


def test_predict_logs_its_timings_and_rows_per_second_to_mlflow(
    spark: SparkSession, settings: Settings, model: str, input_path: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    assert _predict(input_path, tmp_path / "timed") == 0
    report = json.loads((tmp_path / "timed" / REPORT_NAME).read_text())
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`lakegate.job` = 'predict'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = runs[0].data.metrics
    assert metrics["rows"] == report["rows"] == 120
    assert metrics["total_seconds"] == report["total_seconds"]
    assert metrics["rows_per_second"] == pytest.approx(120 / report["total_seconds"])
    assert runs[0].data.params["version"] == report["model_version"]
