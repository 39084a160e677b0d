"""Model functions in Spark SQL: exact predictions, binding, call checks, nulls, other flavors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pytest
from model_fixtures import train, users_frame
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from udfs import (
    ModelFunction,
    ModelUsageError,
    check_model_calls,
    register_model_function,
    run_checked_sql,
)

FEATURES = ["feature_1", "feature_2", "feature_3"]


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=240, seed=11)


@pytest.fixture(scope="module")
def features_view(spark: SparkSession, users: pd.DataFrame) -> Iterator[str]:
    spark.createDataFrame(users).repartition(4).createOrReplaceTempView("udf_features")
    yield "udf_features"
    spark.catalog.dropTempView("udf_features")


@pytest.fixture(scope="module")
def classifier(spark: SparkSession, settings: Settings) -> ModelFunction:
    train(settings, "udf_classifier", "classification")
    return register_model_function(
        spark,
        "predict_udf_classifier",
        "models:/udf_classifier@champion",
        tracking_uri=settings.tracking_uri,
        compiled=False,  # these tests pin the pandas UDF down; tests/test_compiled_scoring.py
    )


@pytest.fixture(scope="module")
def regressor(spark: SparkSession, settings: Settings) -> ModelFunction:
    train(settings, "udf_regressor", "regression")
    return register_model_function(
        spark,
        "predict_udf_regressor",
        "models:/udf_regressor/1",
        tracking_uri=settings.tracking_uri,
        compiled=False,  # these tests pin the pandas UDF down; tests/test_compiled_scoring.py
    )


def _sklearn_predictions(settings: Settings, uri: str, users: pd.DataFrame) -> pd.DataFrame:
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.sklearn.load_model(uri)
    return pd.DataFrame({"user_id": users["user_id"], "p": model.predict(users[FEATURES])})


def _expected(spark: SparkSession, frame: pd.DataFrame, ddl: str) -> DataFrame:
    return spark.createDataFrame(frame, ddl)


@pytest.mark.slow
def test_sql_classifier_predictions_equal_sklearn_predict_on_four_partitions(
    spark, settings, users, features_view, classifier
):
    actual = run_checked_sql(
        spark,
        "SELECT user_id, predict_udf_classifier(feature_1, feature_2, feature_3) AS p "
        "FROM udf_features",
    )
    assert spark.table(features_view).rdd.getNumPartitions() == 4
    expected = _sklearn_predictions(settings, "models:/udf_classifier@champion", users)
    assert expected["p"].nunique() == 2  # both classes occur, so a constant would fail
    assertDataFrameEqual(actual, _expected(spark, expected, "user_id long, p long"))


def test_sql_regressor_predictions_equal_sklearn_predict_exactly(
    spark, settings, users, features_view, regressor
):
    actual = run_checked_sql(
        spark,
        "SELECT user_id, predict_udf_regressor(feature_1, feature_2, feature_3) AS p "
        "FROM udf_features",
    )
    expected = _sklearn_predictions(settings, "models:/udf_regressor/1", users)
    assertDataFrameEqual(
        actual, _expected(spark, expected, "user_id long, p double"), rtol=0, atol=0
    )


def test_struct_of_all_columns_binds_by_name_and_ignores_the_key(spark, features_view, classifier):
    # The view's columns are user_id first and two unused columns: position would be wrong.
    by_struct = run_checked_sql(
        spark, "SELECT user_id, predict_udf_classifier(struct(*)) AS p FROM udf_features"
    )
    by_position = spark.sql(
        "SELECT user_id, predict_udf_classifier(feature_1, feature_2, feature_3) AS p "
        "FROM udf_features"
    )
    assertDataFrameEqual(by_struct, by_position)


def test_struct_with_reordered_fields_binds_by_name(spark, features_view, classifier):
    reordered = run_checked_sql(
        spark,
        "SELECT user_id, predict_udf_classifier(struct(feature_3, feature_2, feature_1)) AS p "
        "FROM udf_features",
    )
    by_position = spark.sql(
        "SELECT user_id, predict_udf_classifier(feature_1, feature_2, feature_3) AS p "
        "FROM udf_features"
    )
    assertDataFrameEqual(reordered, by_position)


def test_swapped_columns_are_refused_before_any_task_runs(spark, features_view, classifier):
    with pytest.raises(ModelUsageError) as error:
        run_checked_sql(
            spark,
            "SELECT predict_udf_classifier(feature_2, feature_1, feature_3) FROM udf_features",
        )
    message = str(error.value)
    assert "predict_udf_classifier: argument 1 is column 'feature_2'" in message
    assert "model's input 1 is 'feature_1'" in message
    assert "feature_1, feature_2, feature_3" in message


def test_swapped_columns_through_the_dataframe_api_are_refused(spark, features_view, classifier):
    df = spark.table(features_view).select(
        classifier(F.col("feature_1"), F.col("feature_3"), F.col("feature_2"))
    )
    with pytest.raises(ModelUsageError, match="argument 2 is column 'feature_3'"):
        check_model_calls(df, [classifier])


def test_swap_inside_a_subquery_is_refused(spark, features_view, classifier):
    with pytest.raises(ModelUsageError, match="argument 1 is column 'feature_2'"):
        run_checked_sql(
            spark,
            "SELECT user_id FROM udf_features WHERE user_id IN (SELECT user_id FROM udf_features "
            "WHERE predict_udf_classifier(feature_2, feature_1, feature_3) = 1)",
        )


def test_wrong_argument_count_is_refused(spark, features_view, classifier):
    with pytest.raises(ModelUsageError, match=r"called with 2 arguments but .* takes 3"):
        run_checked_sql(
            spark, "SELECT predict_udf_classifier(feature_1, feature_2) FROM udf_features"
        )


def test_string_argument_where_a_number_is_expected_is_refused(spark, features_view, classifier):
    with pytest.raises(ModelUsageError, match=r"argument 2 \(column 'name'\) is string"):
        run_checked_sql(
            spark,
            "SELECT predict_udf_classifier(feature_1, name, feature_3) "
            "FROM (SELECT *, CAST(feature_2 AS STRING) AS name FROM udf_features)",
        )


def test_struct_missing_an_input_is_refused(spark, features_view, classifier):
    with pytest.raises(ModelUsageError, match="struct argument has no field 'feature_3'"):
        run_checked_sql(
            spark,
            "SELECT predict_udf_classifier(struct(feature_1, feature_2)) FROM udf_features",
        )


def test_integer_columns_widen_to_double_inputs(spark, settings, classifier):
    df = run_checked_sql(
        spark,
        "SELECT predict_udf_classifier(CAST(1 AS INT), 2L, CAST(3 AS DECIMAL(5, 2))) AS p",
    )
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.sklearn.load_model("models:/udf_classifier@champion")
    widened = pd.DataFrame({"feature_1": [1.0], "feature_2": [2.0], "feature_3": [3.0]})
    assert df.collect()[0]["p"] == int(model.predict(widened[FEATURES])[0])


def test_correct_calls_pass_the_check_and_are_counted(spark, features_view, classifier):
    df = spark.sql(
        "SELECT predict_udf_classifier(feature_1, feature_2, feature_3) AS a, "
        "predict_udf_classifier(struct(*)) AS b FROM udf_features"
    )
    assert check_model_calls(df, [classifier]) == 2


def test_unknown_alias_is_a_model_usage_error(spark, settings, classifier):
    with pytest.raises(ModelUsageError, match=r"has no alias 'gold'.*champion"):
        register_model_function(
            spark,
            "predict_gold",
            "models:/udf_classifier@gold",
            tracking_uri=settings.tracking_uri,
        )


def test_unknown_model_is_a_model_usage_error(spark, settings):
    with pytest.raises(ModelUsageError, match="no registered model named 'no_such_model'"):
        register_model_function(
            spark,
            "predict_nothing",
            "models:/no_such_model@champion",
            tracking_uri=settings.tracking_uri,
        )


def test_unknown_version_is_a_model_usage_error(spark, settings, classifier):
    with pytest.raises(ModelUsageError, match="has no version 99"):
        register_model_function(
            spark, "predict_v99", "models:/udf_classifier/99", tracking_uri=settings.tracking_uri
        )


def test_null_or_nan_feature_gives_a_null_prediction_and_others_are_scored(
    spark, settings, regressor
):
    nan = float("nan")
    rows = [(1, 0.5, 1.0, 0.25), (2, None, 2.0, 0.0), (3, 0.1, None, 0.01), (4, nan, 0.3, 0.2)]
    # From tuples, not pandas, so that None stays null and NaN stays NaN: both are covered.
    df = spark.createDataFrame(
        rows, "user_id long, feature_1 double, feature_2 double, feature_3 double"
    )
    assert df.filter(F.isnan("feature_1")).count() == 1
    assert df.filter(F.col("feature_1").isNull() | F.col("feature_2").isNull()).count() == 2
    actual = df.select("user_id", regressor("feature_1", "feature_2", "feature_3").alias("p"))
    complete = pd.DataFrame([rows[0]], columns=["user_id", *FEATURES])
    model = _sklearn_predictions(settings, "models:/udf_regressor/1", complete)
    expected = pd.DataFrame({"user_id": [1, 2, 3, 4], "p": [model["p"][0], None, None, None]})
    assertDataFrameEqual(actual, _expected(spark, expected, "user_id long, p double"))


def test_all_null_batch_gives_null_predictions_for_a_classifier(spark, classifier):
    df = spark.sql(
        "SELECT predict_udf_classifier(CAST(NULL AS DOUBLE), 1.0D, 2.0D) AS p FROM range(3)"
    )
    assert [row["p"] for row in df.collect()] == [None, None, None]


@pytest.mark.slow
def test_onnx_model_is_served_as_pyfunc_with_the_same_predictions(
    spark, settings, users, features_view, state_dir
):
    import onnxruntime
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x = users[FEATURES].to_numpy(dtype=np.float32)
    sklearn_model = LinearRegression().fit(x, users["spend"].to_numpy(dtype=np.float32))
    onnx_model = to_onnx(sklearn_model, x[:1], target_opset=17)
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString())
    onnx_predictions = session.run(None, {session.get_inputs()[0].name: x})[0].reshape(-1)
    signature = infer_signature(users[FEATURES], pd.DataFrame({"variable": onnx_predictions}))
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.onnx.log_model(onnx_model, name="model", signature=signature)
    mlflow.register_model(info.model_uri, "udf_onnx")
    register_model_function(
        spark, "predict_udf_onnx", "models:/udf_onnx/1", tracking_uri=settings.tracking_uri
    )
    actual = run_checked_sql(
        spark, "SELECT user_id, predict_udf_onnx(struct(*)) AS p FROM udf_features"
    )
    expected = pd.DataFrame({"user_id": users["user_id"], "p": onnx_predictions})
    assertDataFrameEqual(actual, _expected(spark, expected, "user_id long, p float"))


def test_model_is_loaded_once_per_worker_process_not_per_batch(spark, features_view, classifier):
    @pandas_udf("string")
    def load_counts(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        import json
        import os

        from udfs.scoring import model_load_counts

        for batch in batches:
            yield pd.Series([json.dumps([os.getpid(), model_load_counts()])] * len(batch))

    spark.udf.register("load_counts", load_counts)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")  # 24+ batches
    try:
        rows = spark.sql(
            "SELECT load_counts(predict_udf_classifier(feature_1, feature_2, feature_3)) AS c "
            "FROM udf_features"
        ).collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    reports = [json.loads(row["c"]) for row in rows]
    assert len(rows) == 240
    counts = [count for _, by_path in reports for count in by_path.values()]
    assert counts and all(count == 1 for count in counts)
