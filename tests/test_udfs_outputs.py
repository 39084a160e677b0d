"""Return types follow the signature: several outputs give a struct; stores that cannot be used."""

from __future__ import annotations

import sys

import cloudpickle
import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from udfs import ModelUsageError, register_model_function, run_checked_sql
from udfs.errors import ModelStoreUnavailable


class ScoreAndBand(mlflow.pyfunc.PythonModel):
    """A two-output model: a score and a text band."""

    def predict(self, context, model_input, params=None):
        score = model_input["a"] * 2.0 + model_input["b"]
        return pd.DataFrame({"score": score, "band": ["high" if s > 1 else "low" for s in score]})


@pytest.fixture(scope="module")
def two_output_model(spark, settings) -> str:
    example = pd.DataFrame({"a": [0.1, 1.0], "b": [0.2, 0.5]})
    signature = infer_signature(example, ScoreAndBand().predict(None, example))
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            settings.mlflow.experiment, artifact_location=settings.artifact_root
        )
    else:
        experiment_id = experiment.experiment_id
    # Pickle the model class by value: Spark's workers cannot import this test module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ScoreAndBand(),
            signature=signature,
            pip_requirements=["mlflow", "pandas"],
        )
    version = mlflow.register_model(info.model_uri, "udf_two_outputs")
    return f"models:/udf_two_outputs/{version.version}"


def test_two_outputs_return_a_struct_with_both_fields(spark, settings, two_output_model):
    function = register_model_function(
        spark, "predict_two", two_output_model, tracking_uri=settings.tracking_uri
    )
    assert function.return_type == T.StructType(
        [T.StructField("score", T.DoubleType()), T.StructField("band", T.StringType())]
    )
    actual = run_checked_sql(
        spark,
        "SELECT id, r.score, r.band FROM (SELECT id, predict_two(struct(a, b)) AS r "
        "FROM VALUES (1, 0.1D, 0.2D), (2, 1.0D, 0.5D), (3, CAST(NULL AS DOUBLE), 1.0D) "
        "AS t(id, a, b))",
    )
    expected = spark.createDataFrame(
        [(1, 0.4, "low"), (2, 2.5, "high"), (3, None, None)],
        "id int, score double, band string",
    )
    assertDataFrameEqual(actual, expected)


def test_a_tracking_store_that_cannot_be_opened_is_an_environment_problem(spark, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    store = f"sqlite:///{not_a_folder / 'mlflow.db'}"
    with pytest.raises(ModelStoreUnavailable, match="cannot reach the MLflow registry"):
        register_model_function(spark, "predict_nowhere", "models:/m@champion", tracking_uri=store)


def test_invalid_function_name_is_refused(spark, settings):
    with pytest.raises(ModelUsageError, match="not a valid SQL function name"):
        register_model_function(spark, "predict-users", "models:/m@champion")
