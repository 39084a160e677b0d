"""`lakegate sql`: configured and ad-hoc models as functions, views over paths, staged output."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from model_fixtures import train, users_frame
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main

FEATURES = ["feature_1", "feature_2", "feature_3"]
QUERY = "SELECT user_id, predict_sqlusers(feature_1, feature_2, feature_3) AS p FROM features"


@pytest.fixture(scope="module")
def model(settings: Settings) -> str:
    train(settings, "sqlusers")
    return "models:/sqlusers@champion"


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=60, seed=3)


@pytest.fixture(scope="module")
def features_path(spark: SparkSession, users: pd.DataFrame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sql-input") / "features.parquet"
    spark.createDataFrame(users).write.parquet(str(path))
    return path


def _sql(*args: str) -> int:
    return main(["sql", *args])


def _model_predictions(spark, settings, model, users):
    """What the model itself predicts for `users`, as the query's rows."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    expected = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "p": mlflow.sklearn.load_model(model).predict(users[FEATURES]),
        }
    )
    return spark.createDataFrame(expected, "user_id long, p long")


def test_sql_writes_predictions_equal_to_the_model(
    spark, settings, model, users, features_path, tmp_path
):
    output = tmp_path / "out"
    args = ("-e", QUERY, "--model", f"sqlusers={model}", "--table", f"features={features_path}")
    assert _sql(*args, "--output", str(output), "--format", "parquet") == 0
    written = spark.read.parquet(str(output))
    assertDataFrameEqual(written, _model_predictions(spark, settings, model, users))
    # A re-run overwrites instead of appending.
    assert _sql(*args, "--output", str(output), "--format", "parquet") == 0
    assert spark.read.parquet(str(output)).count() == 60


def test_sql_from_file_prints_a_bounded_table(model, features_path, tmp_path, capsys):
    query_file = tmp_path / "query.sql"
    query_file.write_text(QUERY + " ORDER BY user_id;\n")
    args = ["-f", str(query_file), "--model", f"sqlusers={model}"]
    assert _sql(*args, "--table", f"features={features_path}", "--limit", "3") == 0
    out = capsys.readouterr().out
    assert "user_id" in out and "only showing top 3 rows" in out


def test_sql_swapped_arguments_exit_2_with_the_message(model, features_path, capsys):
    query = "SELECT predict_sqlusers(feature_2, feature_1, feature_3) FROM features"
    code = _sql("-e", query, "--model", f"sqlusers={model}", "--table", f"features={features_path}")
    assert code == 2
    err = capsys.readouterr().err
    assert "argument 1 is column 'feature_2'" in err and "Traceback" not in err


def test_sql_csv_output_holds_the_models_predictions_under_a_header(
    spark, settings, model, users, features_path, tmp_path
):
    output = tmp_path / "csv_out"
    args = ["-e", QUERY, "--model", f"sqlusers={model}", "--table", f"features={features_path}"]
    assert _sql(*args, "--output", str(output), "--format", "csv") == 0
    parts = sorted(output.glob("part-*.csv"))
    assert parts and all(p.read_text().splitlines()[0] == "user_id,p" for p in parts)
    written = spark.read.option("header", "true").schema("user_id long, p long").csv(str(output))
    assertDataFrameEqual(written, _model_predictions(spark, settings, model, users))


def test_sql_bad_query_exits_2(capsys):
    assert _sql("-e", "SELEC nothing") == 2
    assert "the query cannot run" in capsys.readouterr().err


def test_sql_refuses_both_query_sources(tmp_path, capsys):
    query_file = tmp_path / "q.sql"
    query_file.write_text("SELECT 1")
    assert _sql("-e", "SELECT 1", "-f", str(query_file)) == 2
    assert "one of -e QUERY or -f FILE, not both" in capsys.readouterr().err


def test_sql_view_over_missing_path_exits_2(tmp_path, capsys):
    assert _sql("-e", "SELECT 1", "--table", f"t={tmp_path / 'absent.parquet'}") == 2
    assert "absent.parquet" in capsys.readouterr().err


def test_users_frame_feature_3_is_feature_1_squared():
    frame = users_frame(rows=5)
    assert (frame["feature_3"] == frame["feature_1"] ** 2).all()
