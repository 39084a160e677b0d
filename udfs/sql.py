"""Run SQL with model functions, every call checked before any task runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from udfs.call_check import check_model_calls
from udfs.model_function import ModelFunction

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def run_checked_sql(
    spark: SparkSession,
    query: str,
    functions: Mapping[str, ModelFunction] | Iterable[ModelFunction] | None = None,
) -> DataFrame:
    """Run `query` and check its model-function calls; nothing executes until you act on it.

    Args:
        spark: the session the functions are registered in.
        query: one SQL statement.
        functions: the model functions to check; all registered in this process when None.

    Raises:
        ModelUsageError: a call would give wrong answers or fail (swapped, miscounted or
            mistyped arguments).

    """
    df = spark.sql(query)
    check_model_calls(df, functions)
    return df


lakegate_sql = run_checked_sql
