"""A model function checks its own call where no `run_checked_sql` ran (JDBC, plain spark.sql)."""

from __future__ import annotations

from decimal import Decimal

import mlflow
import pandas as pd
import pytest
from model_fixtures import train, users_frame
from pyspark.errors import PythonException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakegate_config.settings import Settings
from udfs import ModelFunction, ModelUsageError, register_model_function
from udfs.argument_check import check_batch_arguments
from udfs.scoring import ScoringSpec, score_batch

FEATURES = ["feature_1", "feature_2", "feature_3"]
SPEC = ScoringSpec(
    function_name="predict_x",
    input_names=("n", "x", "s"),
    input_dtypes=("int64", "float64", "object"),
    input_types=("long", "double", "string"),
)


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=30, seed=5)


@pytest.fixture(scope="module")
def view(spark: SparkSession, users: pd.DataFrame) -> str:
    spark.createDataFrame(users).createOrReplaceTempView("check_features")
    return "check_features"


@pytest.fixture(scope="module")
def udf_function(spark: SparkSession, settings: Settings) -> ModelFunction:
    train(settings, "check_users")
    return register_model_function(
        spark,
        "predict_check_users",
        "models:/check_users@champion",
        tracking_uri=settings.tracking_uri,
        compiled=False,
    )


def test_plain_spark_sql_refuses_swapped_columns_of_the_same_type(spark, view, udf_function):
    query = f"SELECT predict_check_users(feature_2, feature_1, feature_3) FROM {view}"
    with pytest.raises(Exception, match="argument 1 is column 'feature_2' but the model's input 1"):
        spark.sql(query).collect()


def test_plain_spark_sql_refuses_a_struct_missing_an_input(spark, view, udf_function):
    query = f"SELECT predict_check_users(struct(user_id, feature_1)) FROM {view}"
    with pytest.raises(
        Exception, match="the struct argument has no field 'feature_2', 'feature_3'"
    ):
        spark.sql(query).collect()


def test_a_refused_call_is_still_refused_before_any_task_by_the_driver_check(
    spark, view, udf_function
):
    from udfs import run_checked_sql

    query = f"SELECT predict_check_users(feature_2, feature_1, feature_3) FROM {view}"
    with pytest.raises(ModelUsageError, match="argument 1 is column 'feature_2'"):
        run_checked_sql(spark, query)


@pytest.mark.slow
def test_plain_spark_sql_with_a_right_call_equals_the_model(
    spark, settings, users, view, udf_function
):
    mlflow.set_tracking_uri(settings.tracking_uri)
    expected = mlflow.sklearn.load_model("models:/check_users@champion").predict(users[FEATURES])
    rows = spark.sql(
        f"SELECT predict_check_users(struct(*)) AS p FROM {view} ORDER BY user_id"
    ).collect()
    assert [row.p for row in rows] == expected.tolist()


def test_the_worker_refuses_string_arguments_before_scoring(spark, view, udf_function):
    df = spark.table(view)
    call = udf_function(F.col("feature_1").cast("string"), "feature_2", "feature_3")
    with pytest.raises(
        PythonException,
        match="argument 1 holds string values but the model's input 1 'feature_1' is double",
    ):
        df.select(call).collect()


@pytest.mark.slow
def test_the_worker_refuses_a_struct_field_of_the_wrong_type(spark, view, udf_function):
    df = spark.table(view)
    fields = F.struct(
        F.col("feature_1"), F.col("feature_2").cast("string").alias("feature_2"), "feature_3"
    )
    with pytest.raises(PythonException, match="struct field 'feature_2' holds string values"):
        df.select(udf_function(fields)).collect()


def test_batch_check_accepts_integers_with_nulls_decimals_and_null_strings_which_then_score():
    args = (
        pd.Series([1.0, None, 3.0, 4.0]),  # a long column with a null arrives as float64
        pd.Series([Decimal("1.5"), Decimal("1"), None, Decimal("2")], dtype=object),
        pd.Series(["a", "b", "c", None], dtype=object),
    )
    assert check_batch_arguments(args, SPEC) is None
    assert check_batch_arguments((*args[:2], pd.Series([None] * 4, dtype=object)), SPEC) is None
    seen: list[list[str]] = []

    class Product:
        def predict(self, frame: pd.DataFrame) -> pd.Series:
            seen.append([str(dtype) for dtype in frame.dtypes])
            return frame["n"] * frame["x"]

    scored = score_batch(Product(), args, SPEC)
    assert scored.iloc[0] == 1.5
    assert scored.iloc[1:].isna().all()  # a null in any input: a null prediction
    assert seen == [["int64", "float64", "object"]]  # the complete rows, as the signature says


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (pd.Series([1.5, 2.0]), pd.Series([1.0, 2.0]), pd.Series(["a", "b"])),
            "argument 1 holds non-integral numbers but the model's input 1 'n' is long",
        ),
        (
            (pd.Series([1, 2]), pd.Series(["1", "2"]), pd.Series(["a", "b"])),
            "argument 2 holds string values but the model's input 2 'x' is double",
        ),
        (
            (pd.Series([1, 2]), pd.Series([1.0, 2.0]), pd.Series([3, 4])),
            "argument 3 holds int values but the model's input 3 's' is string",
        ),
        ((pd.Series([1]), pd.Series([1.0])), "called with 2 arguments but the model takes 3"),
        ((pd.DataFrame({"n": [1], "x": [1.0]}),), "the struct argument has no field 's'"),
    ],
)
def test_batch_check_names_the_argument_that_cannot_bind(args, message):
    with pytest.raises(ModelUsageError, match=message):
        check_batch_arguments(args, SPEC)


@pytest.mark.parametrize(
    ("values", "declared", "reason"),
    [
        (pd.Series([1.5, None]), "long", "non-integral numbers"),
        (pd.Series([1, 2.0], dtype=object), "long", None),  # whole numbers, as JSON gives them
        (pd.Series(["1", "2"]), "double", "string values"),
        (pd.Series([True, None], dtype=object), "long", "bool values"),
        (pd.Series([None, None], dtype=object), "boolean", None),
    ],
)
def test_the_worker_and_the_rest_server_refuse_values_for_the_same_reason(values, declared, reason):
    from udfs.signature_frame import SignatureInputs, frame_problems

    spec = ScoringSpec("predict_x", ("v",), ("float64",), input_types=(declared,))
    if reason is None:
        check_batch_arguments((values,), spec)
    else:
        with pytest.raises(ModelUsageError, match=f"argument 1 holds {reason} but"):
            check_batch_arguments((values,), spec)
    inputs = SignatureInputs(spec, (declared,), (True,))
    expected = [] if reason is None else [f"feature 'v' is {declared} but was given {reason}"]
    assert frame_problems(pd.DataFrame({"v": values}), inputs) == expected
