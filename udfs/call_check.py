"""Check every call of a model function in a query before any task runs.

MLflow's `spark_udf` binds positional columns silently (two swapped columns give wrong
predictions), coerces strings to numbers and fails mid-job on a wrong argument count. Here the
analyzed logical plan is walked (through py4j) and each call of a registered model function is
checked against the model's signature: argument count, types, and swapped column names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from udfs.errors import ModelUsageError
from udfs.model_function import ModelFunction, ModelInput, registered_functions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_INTEGRAL_RANK = {"byte": 1, "short": 2, "integer": 3, "long": 4}
_NUMERIC = {*_INTEGRAL_RANK, "float", "double"}
_NULL = {"null", "void"}
_SUBQUERIES = {"ScalarSubquery", "Exists", "ListQuery", "LateralSubquery"}


@dataclass(frozen=True)
class Argument:
    """One argument of a function call as the analyzer sees it.

    Attributes:
        position: 1-based position in the call.
        type_name: Spark's type name (`double`, `string`, `struct`...).
        column: the column name when the argument is a plain column reference, else None.
        fields: (name, type name) of each field when the argument is a struct, else None.
        text: the argument as SQL text, for messages.

    """

    position: int
    type_name: str
    column: str | None = None
    fields: tuple[tuple[str, str], ...] | None = None
    text: str = ""


def type_accepts(expected: str, actual: str) -> bool:
    """Tell whether a value of Spark type `actual` can be passed where `expected` is declared.

    Numbers widen (int to long, anything numeric to double); nothing else converts implicitly.
    """
    if actual in _NULL or expected == actual:
        return True
    if expected in _INTEGRAL_RANK:
        return actual in _INTEGRAL_RANK and _INTEGRAL_RANK[actual] <= _INTEGRAL_RANK[expected]
    if expected in ("float", "double"):
        return actual in _NUMERIC or actual.startswith("decimal")
    if expected == "string":
        return actual.startswith(("varchar", "char"))
    if expected == "timestamp":
        return actual in ("timestamp_ntz", "date")
    return False


def _type_hint(expected: str, actual: str, what: str) -> str:
    if actual == "string" and expected in _NUMERIC:
        return f"; cast it if it holds numbers: CAST({what} AS {expected.upper()})"
    return ""


def check_call(function: ModelFunction, arguments: Sequence[Argument]) -> None:
    """Check one call of `function` against the model's signature.

    Raises:
        ModelUsageError: wrong argument count, incompatible type, or swapped columns.

    """
    inputs = function.inputs
    names = function.input_names
    order = ", ".join(names)
    name = function.name
    if len(arguments) == 1 and arguments[0].fields is not None:
        _check_struct(function, arguments[0])
        return
    if len(arguments) != len(inputs):
        raise ModelUsageError(
            f"{name}: called with {len(arguments)} argument{'s' if len(arguments) != 1 else ''} "
            f"but model {function.description} takes {len(inputs)} (inputs in order: {order}); "
            f"pass them in that order or call {name}(struct(*))"
        )
    for argument, model_input in zip(arguments, inputs, strict=True):
        _check_positional(function, argument, model_input)


def _check_positional(function: ModelFunction, argument: Argument, model_input: ModelInput) -> None:
    name, position = function.name, argument.position
    names = function.input_names
    lowered = [n.lower() for n in names]
    column = argument.column
    if (
        column is not None
        and column.lower() != model_input.name.lower()
        and (column.lower() in lowered)
    ):
        raise ModelUsageError(
            f"{name}: argument {position} is column {column!r} but the model's input "
            f"{position} is {model_input.name!r} (inputs in order: {', '.join(names)}); "
            f"pass them in that order or call {name}(struct(*))"
        )
    if argument.fields is not None:
        raise ModelUsageError(
            f"{name}: argument {position} is a struct but the model's input {position} "
            f"{model_input.name!r} is {model_input.spark_type}; pass one struct as the only "
            "argument, or plain columns"
        )
    if not type_accepts(model_input.spark_type, argument.type_name):
        what = f"column {column!r}" if column else (argument.text or "an expression")
        raise ModelUsageError(
            f"{name}: argument {position} ({what}) is {argument.type_name} but the model's "
            f"input {position} {model_input.name!r} is {model_input.spark_type}"
            + _type_hint(model_input.spark_type, argument.type_name, column or argument.text)
        )


def _check_struct(function: ModelFunction, argument: Argument) -> None:
    name = function.name
    fields = dict(argument.fields or ())
    missing = [item.name for item in function.inputs if item.name not in fields]
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        raise ModelUsageError(
            f"{name}: the struct argument has no field {listed} (model inputs: "
            f"{', '.join(function.input_names)}; fields given: {', '.join(fields) or 'none'})"
        )
    for item in function.inputs:
        actual = fields[item.name]
        if not type_accepts(item.spark_type, actual):
            raise ModelUsageError(
                f"{name}: struct field {item.name!r} is {actual} but the model's input "
                f"{item.name!r} is {item.spark_type}"
                + _type_hint(item.spark_type, actual, item.name)
            )


def _scala_seq(seq: Any) -> Iterator[Any]:
    iterator = seq.iterator()
    while iterator.hasNext():
        yield iterator.next()


def _describe_argument(position: int, expression: Any) -> Argument:
    data_type = expression.dataType()
    type_name = data_type.typeName()
    column = None
    if expression.getClass().getSimpleName() == "AttributeReference":
        column = expression.name()
    fields = None
    if type_name == "struct":
        fields = tuple((field.name(), field.dataType().typeName()) for field in data_type.fields())
    return Argument(
        position=position,
        type_name=type_name,
        column=column,
        fields=fields,
        text=expression.sql(),
    )


def find_calls(df: DataFrame, function_names: Iterable[str]) -> list[tuple[str, list[Argument]]]:
    """Return (function name, arguments) of each call of the named Python UDFs in `df`'s plan."""
    wanted = {name.lower() for name in function_names}
    plan = df._jdf.queryExecution().analyzed()
    text = plan.toString().lower()
    if not any(name in text for name in wanted):
        return []
    calls: list[tuple[str, list[Argument]]] = []
    plans = [plan]
    while plans:
        node = plans.pop()
        plans.extend(_scala_seq(node.children()))
        expressions = list(_scala_seq(node.expressions()))
        while expressions:
            expression = expressions.pop()
            simple_name = expression.getClass().getSimpleName()
            if simple_name in _SUBQUERIES:
                plans.append(expression.plan())
            if simple_name == "PythonUDF" and expression.name().lower() in wanted:
                arguments = [
                    _describe_argument(position, child)
                    for position, child in enumerate(_scala_seq(expression.children()), start=1)
                ]
                calls.append((expression.name(), arguments))
            if simple_name == "CaseWhen" and _is_compiled_call(expression, wanted):
                expressions.append(expression.elseValue().get())  # the compiled side has no UDF
                continue
            expressions.extend(_scala_seq(expression.children()))
    return calls


def _is_compiled_call(expression: Any, wanted: set[str]) -> bool:
    """`CASE WHEN true THEN <compiled> ELSE <model UDF call> END`: a compiled function's call.

    Walking the compiled branch node by node through py4j costs up to a second for a tree
    ensemble, and it holds no UDF call (`udfs.compiled.registration`).
    """
    if expression.branches().size() != 1 or not expression.elseValue().isDefined():
        return False
    condition, other = expression.branches().head()._1(), expression.elseValue().get()
    return (
        condition.getClass().getSimpleName() == "Literal"
        and condition.toString() == "true"
        and other.getClass().getSimpleName() == "PythonUDF"
        and other.name().lower() in wanted
    )


def check_model_calls(
    df: DataFrame,
    functions: Mapping[str, ModelFunction] | Iterable[ModelFunction] | None = None,
) -> int:
    """Check every call of a model function in `df` against its model's signature.

    Args:
        df: any DataFrame, e.g. the result of `spark.sql(query)` (analysis is eager).
        functions: the model functions to check; all registered in this process when None.

    Returns:
        The number of calls checked.

    Raises:
        ModelUsageError: the first call that cannot give right answers, named in the message.

    """
    if functions is None:
        functions = registered_functions()
    items = functions.values() if isinstance(functions, Mapping) else functions
    by_name = {function.name.lower(): function for function in items}
    if not by_name:
        return 0
    calls = find_calls(df, by_name)
    for function_name, arguments in calls:
        check_call(by_name[function_name.lower()], arguments)
    return len(calls)
