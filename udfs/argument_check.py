"""The model function checks its own arguments, in the Python worker, before it scores.

`udfs.check_model_calls` checks calls on the driver when a query goes through
`run_checked_sql`; a query from a JDBC client (`lakegate serve-sql`) or a plain `spark.sql`
does not. So each batch is checked again where it is scored: the struct's field names and the
type of every argument, judged from the pandas data Spark hands over (Arrow: long -> int64,
double -> float64, string -> object of str, decimal -> object of Decimal, an integer column
with nulls -> float64). A wrong call fails its task with a `ModelUsageError` whose message the
client shows, before the model sees a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from udfs.errors import ModelUsageError

if TYPE_CHECKING:
    from udfs.scoring import ScoringSpec

_INTEGRAL = {"byte", "short", "integer", "long"}
_FRACTIONAL = {"float", "double"}
# What pandas' `infer_dtype` calls the values of an object column that each input type accepts.
_OBJECT_KINDS = {
    "numeric": {"decimal", "integer", "floating", "mixed-integer-float", "empty"},
    "string": {"string", "empty"},
    "boolean": {"boolean", "empty"},
}


def _values_kind(values: pd.Series) -> str:
    """A short name for what a column holds: `int`, `float`, `bool`, `string`, `decimal`..."""
    kind = values.dtype.kind
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind == "b":
        return "bool"
    if kind in "Mm":
        return "timestamp"
    return pd.api.types.infer_dtype(values, skipna=True)


def _refusal(values: pd.Series, expected: str) -> str | None:
    """Why `values` cannot be passed where the signature declares `expected`, or None."""
    kind = _values_kind(values)
    if expected in _INTEGRAL:
        if kind == "int" or kind == "empty":
            return None
        if kind == "float":  # an integer column with nulls arrives as float64
            present = values.to_numpy()[~np.isnan(values.to_numpy())]
            if np.all(np.isfinite(present)) and np.all(np.mod(present, 1) == 0):
                return None
            return "non-integral numbers"
        return f"{kind} values"
    if expected in _FRACTIONAL:
        if kind in ("int", "float") or kind in _OBJECT_KINDS["numeric"]:
            return None
        return f"{kind} values"
    if expected == "string":
        return None if kind in _OBJECT_KINDS["string"] else f"{kind} values"
    if expected == "boolean":
        return None if kind in ("bool", *_OBJECT_KINDS["boolean"]) else f"{kind} values"
    return None  # dates, timestamps, binary: no opinion from pandas data


def check_batch_arguments(args: Sequence[pd.Series | pd.DataFrame], spec: ScoringSpec) -> None:
    """Check that a batch's arguments bind to the model's signature: names and types.

    One struct binds by field name (every input present, each of an acceptable type); plain
    arguments bind by position (count and types). Types are skipped when the spec has none.

    Raises:
        ModelUsageError: the first argument that cannot give right answers, named.
    """
    name = spec.function_name
    types = dict(zip(spec.input_names, spec.input_types, strict=True)) if spec.input_types else {}
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        struct = args[0]
        missing = [item for item in spec.input_names if item not in struct.columns]
        if missing:
            raise ModelUsageError(
                f"{name}: the struct argument has no field {', '.join(map(repr, missing))} "
                f"(model inputs: {', '.join(spec.input_names)}; fields given: "
                f"{', '.join(map(str, struct.columns)) or 'none'})"
            )
        for item, expected in types.items():
            why = _refusal(struct[item], expected)
            if why is not None:
                raise ModelUsageError(
                    f"{name}: struct field {item!r} holds {why} but the model's input {item!r} "
                    f"is {expected}; cast it: CAST({item} AS {expected.upper()})"
                )
        return
    if len(args) != len(spec.input_names):
        raise ModelUsageError(
            f"{name}: called with {len(args)} arguments but the model takes "
            f"{len(spec.input_names)} (inputs in order: {', '.join(spec.input_names)}); pass "
            f"them in that order or call {name}(struct(*))"
        )
    for position, (item, arg) in enumerate(zip(spec.input_names, args, strict=True), start=1):
        if isinstance(arg, pd.DataFrame):
            raise ModelUsageError(
                f"{name}: argument {position} is a struct but the model's input {position} "
                f"{item!r} is a single value; pass one struct as the only argument, or columns"
            )
        declared = types.get(item)
        why = _refusal(arg, declared) if declared else None
        if why is not None:
            raise ModelUsageError(
                f"{name}: argument {position} holds {why} but the model's input {position} "
                f"{item!r} is {declared} (inputs in order: {', '.join(spec.input_names)})"
            )
