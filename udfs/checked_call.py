"""The pandas-UDF path checks each call when Spark analyses it, whoever sent the query.

A model function that is not compiled is registered as a pandas UDF; queries from JDBC clients
(`lakegate serve-sql`) or a plain `spark.sql` skip `run_checked_sql`, so two swapped columns of
the same type would score silently. `CheckedCallBuilder` is registered in the session's
`FunctionRegistry` in the UDF's place (like `udfs.compiled.registration`): given a call's
resolved arguments it runs the same `check_call` as `check_model_calls`. A good call is the UDF
call unchanged; a refused one becomes `CASE WHEN true THEN raise_error(<message>) ELSE <the UDF
call> END`, so `check_model_calls` still finds and refuses it before any task runs, and any
other client gets the message as the statement's error instead of an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from udfs.call_check import _describe_argument, check_call
from udfs.errors import ModelUsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs.model_function import ModelFunction


def _scala_items(seq: Any) -> list[Any]:
    items = []
    iterator = seq.iterator()
    while iterator.hasNext():
        items.append(iterator.next())
    return items


class CheckedCallBuilder:
    """A `scala.Function1[Seq[Expression], Expression]`: the UDF call, or its refusal."""

    def __init__(self, spark: SparkSession, function: ModelFunction, python_udf: Any) -> None:
        self._jvm: Any = spark._jvm
        self._function = function
        self._python_udf = python_udf

    def apply(self, children: Any) -> Any:
        """Build the call from its resolved arguments (Spark calls this during analysis)."""
        udf_call = self._python_udf.builder(children)
        try:
            arguments = _scala_items(children)
            described = [_describe_argument(i, a) for i, a in enumerate(arguments, start=1)]
            check_call(self._function, described)
        except ModelUsageError as exc:
            return self._refusal(str(exc), udf_call)
        except Exception:  # cannot judge here: the worker's own check still runs
            return udf_call
        return udf_call

    def _refusal(self, message: str, udf_call: Any) -> Any:
        functions = self._jvm.org.apache.spark.sql.functions
        column = self._jvm.org.apache.spark.sql.Column
        return_type = self._function.return_type.simpleString()
        error = functions.raise_error(functions.lit(message)).cast(return_type)
        marker = functions.when(functions.lit(True), error).otherwise(column(udf_call))
        name = self._jvm.org.apache.spark.sql.catalyst.util.package.toPrettySQL(udf_call)
        return marker.alias(name).expr()

    class Java:
        """py4j: the JVM sees this object as a `scala.Function1`."""

        implements = ["scala.Function1"]


def register_checked_call(
    spark: SparkSession, function: ModelFunction, registered_udf: Any
) -> None:
    """Put a `CheckedCallBuilder` for `function` in place of its registered pandas UDF."""
    from pyspark.java_gateway import ensure_callback_server_started

    judf = getattr(registered_udf, "_unwrapped", registered_udf)._judf
    ensure_callback_server_started(spark.sparkContext._gateway)
    registry = spark._jsparkSession.sessionState().functionRegistry()
    registry.createOrReplaceTempFunction(
        function.name, CheckedCallBuilder(spark, function, judf), "python_udf"
    )
