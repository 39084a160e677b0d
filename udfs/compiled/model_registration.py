"""Register an MLflow model as a SQL function: compiled when proven, else a checked pandas UDF.

The top of `udfs`: it imports the pandas-UDF registration (`udfs.model_function`), the compiled
path (`udfs.compiled`) and the UDF path's checked builder (`udfs.checked_call`), none of which
imports it back, so `udfs.compiled` depends on the rest of `udfs` and never the other way
(only the package's face, `udfs/__init__.py`, re-exports these two functions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from udfs.checked_call import register_checked_call
from udfs.compiled import compile_model_function
from udfs.compiled.verdict_cache import COMPILED
from udfs.model_function import ModelFunction, register_pandas_udf, remember_function

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["register_model_function", "register_model_functions"]


def register_model_function(
    spark: SparkSession,
    name: str,
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    compiled: bool = True,
) -> ModelFunction:
    """Register an MLflow model as the SQL function `name` in `spark` and return it.

    Call it as `name(col1, col2, ...)` in signature order, or `name(struct(*))` to bind by field
    name (extra fields such as keys are ignored). A row with a null or NaN input gets a null
    prediction. Run queries through `udfs.run_checked_sql` (or `check_model_calls`) to have
    every call checked against the model's signature before any task runs.

    Args:
        spark: the session to register the function in.
        name: the SQL function name, e.g. `predict_users`.
        model_uri: `models:/name@alias`, `models:/name/version`, `runs:/...` or a local path.
        tracking_uri: the MLflow tracking store; MLflow's default when None.
        registry_uri: the model registry; the tracking URI when None.
        compiled: translate a scikit-learn model into a native Spark expression when every
            step is supported and the translation agrees with the model on a sample
            (`udfs.compiled`); False keeps the pandas UDF.

    Raises:
        ModelUsageError: unknown model, alias or version; unusable signature.
        ModelStoreUnavailable: the registry or the artifacts cannot be reached.

    """
    function, spec = register_pandas_udf(
        spark, name, model_uri, tracking_uri=tracking_uri, registry_uri=registry_uri
    )
    udf = function.udf
    if compiled:
        function = compile_model_function(spark, function, udf, spec)
    if function.path != COMPILED:  # checked at analysis, whoever sends the query (JDBC too)
        register_checked_call(spark, function, udf)
    remember_function(function)
    return function


def register_model_functions(
    spark: SparkSession,
    models: Mapping[str, str],
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    compiled: bool = True,
) -> dict[str, ModelFunction]:
    """Register each `name -> model URI` as SQL function `predict_<name>`."""
    return {
        name: register_model_function(
            spark,
            f"predict_{name}",
            uri,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            compiled=compiled,
        )
        for name, uri in models.items()
    }
