"""Register a compiled model as a SQL function through Spark's own function registry.

Spark 3.5 cannot register a Python `Column` as a SQL function, but its `FunctionRegistry`
takes any `Seq[Expression] => Expression` builder. `CompiledFunctionBuilder` is one, a py4j
callback (the session's callback server runs it on the driver, during analysis only): given a
call's resolved arguments it binds them into the model's expression (parsed once), by field
name for one struct argument, else by position, each cast to the signature's type. Nothing of
Python runs in tasks.

The expression it returns is `CASE WHEN true THEN <compiled> ELSE <the pandas UDF> END`, named
like the UDF call. The analyzed plan therefore still holds the UDF call with its arguments, so
`udfs.check_model_calls` checks compiled calls unchanged, and the optimizer's
`SimplifyConditionals` removes the UDF branch before planning (only the compiled expression
runs). A call the checks refuse compiles to `raise_error(<the check's message>)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from udfs.call_check import _describe_argument, check_call
from udfs.compiled.sql_text import known_placeholder, placeholder, shared_placeholder
from udfs.errors import ModelUsageError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from udfs.model_function import ModelFunction


def scala_items(seq: Any) -> list[Any]:
    """The elements of a Scala Seq (through py4j)."""
    items = []
    iterator = seq.iterator()
    while iterator.hasNext():
        items.append(iterator.next())
    return items


def session_jvm(spark: SparkSession) -> Any:
    """The py4j view of the session's JVM (`jvm.org.apache...`), dynamic by nature.

    Raises:
        RuntimeError: the session is stopped (no JVM to talk to).

    """
    jvm: Any = spark.sparkContext._jvm
    if jvm is None:
        raise RuntimeError("Spark's JVM is gone (the session was stopped)")
    return jvm


def parse_expression(spark: SparkSession, sql: str) -> Any:
    """Parse SQL text into an unresolved Catalyst expression (one py4j call)."""
    return spark._jsparkSession.sessionState().sqlParser().parseExpression(sql)


def parse_template(spark: SparkSession, sql: str, shared: Sequence[str]) -> Any:
    """Parse a translation: each shared subexpression on its own, then put in place.

    Spark's parser is slow on one long nested text in a cold JVM (GradientBoosting 20x3, 27 kB:
    2.3-4.3 s; its 20 trees and the 1.8 kB skeleton parsed separately: 0.5-1.0 s), and a tree
    used twice (`greatest(t, t)`) would be parsed twice. Here each tree is parsed once and
    every use of its placeholder holds the same expression object.
    """
    jvm = session_jvm(spark)
    template = parse_expression(spark, sql)
    if not shared:
        return template
    substitutions = jvm.java.util.HashMap()
    for index, text in enumerate(shared):
        substitutions.put(
            parse_expression(spark, shared_placeholder(index)), parse_expression(spark, text)
        )
    as_scala = jvm.scala.collection.JavaConverters.mapAsScalaMapConverter(substitutions)
    return template.transform(as_scala.asScala())


class CompiledFunctionBuilder:
    """A `scala.Function1[Seq[Expression], Expression]` building a model's compiled call."""

    def __init__(
        self, spark: SparkSession, function: ModelFunction, template: Any, python_udf: Any
    ) -> None:
        self._jvm: Any = session_jvm(spark)
        self._function = function
        self._template = template
        self._python_udf = python_udf
        count = len(function.inputs)
        self._placeholders = [parse_expression(spark, placeholder(i)) for i in range(count)]
        self._known = [parse_expression(spark, known_placeholder(i)) for i in range(count)]

    def apply(self, children: Any) -> Any:
        """Build the call's expression from its resolved argument expressions (Spark calls)."""
        try:
            return self.build(scala_items(children), children)
        except Exception:
            return self._python_udf.builder(children)

    def build(self, arguments: list[Any], argument_seq: Any | None = None) -> Any:
        """The named `CASE WHEN true THEN compiled ELSE udf END` over `arguments`."""
        jvm = self._jvm
        if argument_seq is None:
            argument_seq = jvm.org.apache.spark.api.python.PythonUtils.toSeq(arguments)
        udf_call = self._python_udf.builder(argument_seq)
        compiled = self._compiled(arguments)
        marker = jvm.org.apache.spark.sql.functions.when(
            jvm.org.apache.spark.sql.functions.lit(True), jvm.org.apache.spark.sql.Column(compiled)
        ).otherwise(jvm.org.apache.spark.sql.Column(udf_call))
        name = jvm.org.apache.spark.sql.catalyst.util.package.toPrettySQL(udf_call)
        return marker.alias(name).expr()

    def _compiled(self, arguments: list[Any]) -> Any:
        jvm = self._jvm
        function = self._function
        described = [_describe_argument(i, a) for i, a in enumerate(arguments, start=1)]
        return_type = function.return_type.simpleString()
        try:
            check_call(function, described)
        except ModelUsageError as exc:
            message = jvm.org.apache.spark.sql.functions.lit(str(exc))
            return jvm.org.apache.spark.sql.functions.raise_error(message).cast(return_type).expr()
        if len(arguments) == 1 and described[0].fields is not None:
            struct = arguments[0]
            struct_type = struct.dataType()
            bound = [
                jvm.org.apache.spark.sql.catalyst.expressions.GetStructField(
                    struct, struct_type.fieldIndex(item.name), jvm.scala.Option.apply(item.name)
                )
                for item in function.inputs
            ]
        else:
            bound = arguments
        expressions = jvm.org.apache.spark.sql.catalyst.expressions
        substitutions = jvm.java.util.HashMap()
        for position, (expression, item) in enumerate(zip(bound, function.inputs, strict=True)):
            cast = jvm.org.apache.spark.sql.Column(expression).cast(item.spark_type).expr()
            substitutions.put(self._placeholders[position], cast)
            substitutions.put(self._known[position], expressions.KnownNotNull(cast))
        as_scala = jvm.scala.collection.JavaConverters.mapAsScalaMapConverter(substitutions)
        return self._template.transform(as_scala.asScala())

    def column_over(self, df: DataFrame) -> Column:
        """The compiled call over `df`'s columns named like the model's inputs (positional)."""
        from pyspark.sql import Column

        resolved = df.select(*[f"`{item.name}`" for item in self._function.inputs])
        attributes = scala_items(resolved._jdf.queryExecution().analyzed().output())
        by_name = {attribute.name(): attribute for attribute in attributes}
        arguments = [by_name[item.name] for item in self._function.inputs]
        return Column(self._jvm.org.apache.spark.sql.Column(self.build(arguments)))

    class Java:
        """py4j: the JVM sees this object as a `scala.Function1`."""

        implements = ["scala.Function1"]


class CompiledCall:
    """What `ModelFunction.__call__` uses on the compiled path: a call of the SQL function."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *columns: Column | str) -> Column:
        """`name(columns...)`, resolved by Spark through the registered builder."""
        from pyspark.sql import functions as F

        return F.call_function(self.name, *columns)

    def __repr__(self) -> str:
        return f"CompiledCall({self.name!r})"


def register_builder(spark: SparkSession, name: str, builder: CompiledFunctionBuilder) -> None:
    """Register `builder` as the temporary SQL function `name` (replacing the UDF)."""
    from pyspark.java_gateway import ensure_callback_server_started

    ensure_callback_server_started(spark.sparkContext._gateway)
    registry = spark._jsparkSession.sessionState().functionRegistry()
    registry.createOrReplaceTempFunction(name, builder, "python_udf")
