"""Whether a pandas column can be given where a model's signature declares a type, and why not.

One judgement for both places that check data against a signature before a model sees it: the
pandas UDF's check of each batch (`udfs.argument_check`, types named by Spark's `typeName()`)
and the REST server's check of a request (`udfs.signature_frame`, MLflow's `DataType` names).
The names judged here are the same in both vocabularies (`integer`, `long`, `float`, `double`,
`string`, `boolean`; Spark's `byte` and `short` are integral too). Dates, timestamps, binary and
decimal inputs get no opinion from pandas data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_INTEGRAL = frozenset({"byte", "short", "integer", "long"})
_FRACTIONAL = frozenset({"float", "double"})
# What a fractional input accepts: numbers of any kind, exact or not.
_NUMBERS = frozenset({"int", "float", "mixed-integer-float", "decimal"})


def _values_kind(values: pd.Series) -> str:
    """What a column holds: `int`, `float`, `bool`, `timestamp`, `string`, `decimal`...

    Pandas' `infer_dtype` names object columns (`empty` when all null); its `integer`,
    `floating` and `boolean` become the numpy kinds' `int`, `float` and `bool`.
    """
    kind = values.dtype.kind
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind == "b":
        return "bool"
    if kind in "Mm":
        return "timestamp"
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    return {"integer": "int", "floating": "float", "boolean": "bool"}.get(inferred, inferred)


def _all_integral(values: pd.Series) -> bool:
    """Whether every present number is finite and whole (a long column with nulls is float64)."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    present = numbers[~np.isnan(numbers)]
    return bool(np.all(np.isfinite(present)) and np.all(np.mod(present, 1) == 0))


def type_refusal(values: pd.Series, declared: str) -> str | None:
    """Why `values` cannot be given where the signature declares `declared`, or None.

    The reason names what the values are (`string values`, `non-integral numbers`), to be
    put in a sentence that names the input and its declared type.
    """
    kind = _values_kind(values)
    if kind == "empty":
        return None
    if declared in _INTEGRAL:
        if kind == "int":
            return None
        if kind in ("float", "mixed-integer-float"):
            return None if _all_integral(values) else "non-integral numbers"
        return f"{kind} values"
    if declared in _FRACTIONAL:
        return None if kind in _NUMBERS else f"{kind} values"
    if declared == "string":
        return None if kind == "string" else f"{kind} values"
    if declared == "boolean":
        return None if kind == "bool" else f"{kind} values"
    return None
