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

import pandas as pd

from udfs.errors import ModelUsageError
from udfs.signature_types import type_refusal

if TYPE_CHECKING:
    from udfs.scoring import ScoringSpec


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
            why = type_refusal(struct[item], expected)
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
        why = type_refusal(arg, declared) if declared else None
        if why is not None:
            raise ModelUsageError(
                f"{name}: argument {position} holds {why} but the model's input {position} "
                f"{item!r} is {declared} (inputs in order: {', '.join(spec.input_names)})"
            )
