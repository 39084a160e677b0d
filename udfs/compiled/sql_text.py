"""Spark SQL text for compiled models: exact literals and the input placeholders.

Doubles are written with Python's shortest round-trip `repr` and a `D` suffix, which Spark parses
with `Double.parseDouble`, so every coefficient and threshold reaches Catalyst bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PLACEHOLDER_PREFIX = "__lakegate_in_"
# The same input, known not null: the builder binds it to `KnownNotNull(<argument>)`, so the
# generated code of every comparison and product skips its null test. Only for numbers used
# under the null guard (a row with a null input is answered NULL, whatever they compute).
KNOWN_PREFIX = "__lakegate_nn_"
# A shared subexpression (a tree of an ensemble), written once beside the expression and parsed
# on its own: Spark's parser takes seconds in a cold JVM on one deeply nested text, and a tree
# repeated in the text (`greatest(t, t)`) is parsed twice. Registration puts the parsed tree in
# place of its placeholder (the same object at every use).
SHARED_PREFIX = "__lakegate_tree_"


class Unsupported(Exception):
    """A model, step or setting the compiler does not translate; the message says which."""


def placeholder(position: int) -> str:
    """The quoted name standing for input `position` until a call binds it."""
    return f"`{PLACEHOLDER_PREFIX}{position}`"


def known_placeholder(position: int) -> str:
    """The quoted name standing for input `position` known not null (see `KNOWN_PREFIX`)."""
    return f"`{KNOWN_PREFIX}{position}`"


def shared_placeholder(index: int) -> str:
    """The quoted name standing for shared subexpression `index` (see `SHARED_PREFIX`)."""
    return f"`{SHARED_PREFIX}{index}`"


def expand(sql: str, shared: Sequence[str]) -> str:
    """`sql` with every shared placeholder replaced by its text: the whole expression as text."""
    for index in reversed(range(len(shared))):
        sql = sql.replace(shared_placeholder(index), shared[index])
    return sql


def double(value: float) -> str:
    """An exact Spark SQL double literal."""
    value = float(value)
    if math.isnan(value):
        return "CAST('NaN' AS DOUBLE)"
    if math.isinf(value):
        return f"CAST('{'-' if value < 0 else ''}Infinity' AS DOUBLE)"
    text = repr(value)
    return f"({text}D)" if text.startswith("-") else f"{text}D"


def string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, Spark's default)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def label(value: Any) -> str:
    """A class label (int, float, bool or string) as a SQL literal."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return f"{int(value)}L"
    if isinstance(value, float | np.floating):
        return double(float(value))
    if isinstance(value, str):
        return string(value)
    raise Unsupported(f"class label {value!r} of type {type(value).__name__}")


def total(terms: list[str], start: str | None = None) -> str:
    """Terms added left to right, as `((a + b) + c)` (the order scikit-learn adds them in)."""
    parts = ([start] if start is not None else []) + terms
    if not parts:
        return "0D"
    text = parts[0]
    for part in parts[1:]:
        text = f"({text} + {part})"
    return text
