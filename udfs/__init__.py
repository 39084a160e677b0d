"""MLflow models as Spark SQL functions, with every call checked against the model's signature.

In a notebook: `register_model_function(spark, "predict_users", "models:/users@champion")`, then
`run_checked_sql(spark, "SELECT user_id, predict_users(struct(*)) AS p FROM features")`.
"""

from __future__ import annotations

from udfs.call_check import check_model_calls
from udfs.compiled.model_registration import register_model_function, register_model_functions
from udfs.errors import ModelUsageError
from udfs.model_function import ModelFunction, registered_functions
from udfs.sql import lakegate_sql, run_checked_sql

__all__ = [
    "ModelFunction",
    "ModelUsageError",
    "check_model_calls",
    "lakegate_sql",
    "register_model_function",
    "register_model_functions",
    "registered_functions",
    "run_checked_sql",
]
