"""The one registry of constraint types: adding a type is adding one entry here.

Each `ConstraintType` says everything lakegate knows about a constraint: its name (Deequ's
`Check` method), its arguments (a pydantic model from `checks.arguments`), how it is added to a
PyDeequ `Check`, whether and how it judges single rows, and what type its columns must have.
Importing this module needs no JVM; the builders and rules run only when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from checks import row_rules as rules
from checks.arguments import (
    ColumnArgs,
    ColumnAssert,
    ColumnRatio,
    ColumnsArgs,
    ColumnsAssert,
    ConstraintArgs,
    ContainedInArgs,
    DataTypeArgs,
    InRangeArgs,
    PairArgs,
    PairAssert,
    PatternArgs,
    QuantileArgs,
    SizeAssert,
    UniqueArgs,
)
from checks.row_rules import RowRule

# (PyDeequ Check, arguments, assertion or None for Deequ's default, hint) -> PyDeequ Check
DeequBuilder = Callable[[Any, Any, Callable[[float], bool] | None, str | None], Any]


class ColumnKind(StrEnum):
    """What a constraint needs of its column's type."""

    ANY = "any"
    NUMERIC = "numeric"
    STRING = "string"


@dataclass(frozen=True)
class ConstraintType:
    """A constraint the suite format knows.

    `row_level` says whether a failing row can be blamed: `always` (a predicate every row must
    meet), `never` (a table-wide metric), or `when_all_rows` (a ratio constraint whose assertion
    is "every row"). `row_rule` is the predicate, for types that can blame rows.
    `groups_rows` marks types whose rule needs the key grouping (duplicate keys).
    """

    name: str
    args: type[ConstraintArgs]
    deequ: DeequBuilder
    row_level: Literal["always", "never", "when_all_rows"] = "never"
    row_rule: RowRule | None = None
    column_kind: ColumnKind = ColumnKind.ANY
    groups_rows: bool = False


def _quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def range_predicate(column: str, low: float | None, high: float | None) -> str:
    """The SQL predicate Deequ evaluates for `isInRange` (null is compliant)."""
    parts = []
    if low is not None:
        parts.append(f"{_quote(column)} >= {low!r}")
    if high is not None:
        parts.append(f"{_quote(column)} <= {high!r}")
    return f"{_quote(column)} IS NULL OR ({' AND '.join(parts)})"


def _unique(check: Any, a: UniqueArgs, test: Any, hint: str | None) -> Any:
    key = a.key
    if len(key) == 1:
        return check.isUnique(key[0], hint)
    return check.hasUniqueness(key, lambda x: x == 1.0, hint)


def _in_range(check: Any, a: InRangeArgs, test: Any, hint: str | None) -> Any:
    constraint = f"isInRange({a.column})" + (f" where {a.where}" if a.where else "")
    return check.satisfies(range_predicate(a.column, a.min, a.max), constraint, None, hint)


def _data_type(check: Any, a: DataTypeArgs, test: Any, hint: str | None) -> Any:
    from pydeequ.checks import ConstrainableDataTypes

    return check.hasDataType(a.column, getattr(ConstrainableDataTypes, a.datatype), test, hint)


def _column_metric(method: str) -> DeequBuilder:
    """`check.<method>(column, assertion, hint)`: the shape of most single-column methods."""
    return lambda check, a, test, hint: getattr(check, method)(a.column, test, hint)


def _pair(method: str) -> DeequBuilder:
    """`check.<method>(column_a, column_b, assertion, hint)`."""
    return lambda check, a, test, hint: getattr(check, method)(a.column_a, a.column_b, test, hint)


_NUMERIC, _STRING = ColumnKind.NUMERIC, ColumnKind.STRING

_TYPES = [
    ConstraintType("hasSize", SizeAssert, lambda c, a, t, h: c.hasSize(t, h)),
    ConstraintType(
        "isComplete",
        ColumnArgs,
        lambda c, a, t, h: c.isComplete(a.column, h),
        "always",
        rules.is_null,
    ),
    ConstraintType(
        "areComplete",
        ColumnsArgs,
        lambda c, a, t, h: c.areComplete(a.columns, h),
        "always",
        rules.any_null,
    ),
    ConstraintType("hasCompleteness", ColumnAssert, _column_metric("hasCompleteness")),
    ConstraintType(
        "isUnique", UniqueArgs, _unique, "always", rules.duplicated_key, groups_rows=True
    ),
    ConstraintType(
        "hasUniqueness", ColumnsAssert, lambda c, a, t, h: c.hasUniqueness(a.columns, t, h)
    ),
    ConstraintType(
        "hasDistinctness", ColumnsAssert, lambda c, a, t, h: c.hasDistinctness(a.columns, t, h)
    ),
    ConstraintType(
        "isContainedIn",
        ContainedInArgs,
        lambda c, a, t, h: c.isContainedIn(a.column, [str(v) for v in a.values], t, h),
        "when_all_rows",
        rules.not_in_set,
    ),
    ConstraintType("isInRange", InRangeArgs, _in_range, "always", rules.out_of_range, _NUMERIC),
    ConstraintType(
        "isNonNegative",
        ColumnRatio,
        _column_metric("isNonNegative"),
        "when_all_rows",
        rules.negative,
        _NUMERIC,
    ),
    ConstraintType(
        "isPositive",
        ColumnRatio,
        _column_metric("isPositive"),
        "when_all_rows",
        rules.not_positive,
        _NUMERIC,
    ),
    ConstraintType(
        "containsURL",
        ColumnRatio,
        _column_metric("containsURL"),
        "when_all_rows",
        rules.pattern_rule("URL"),
        _STRING,
    ),
    ConstraintType(
        "containsEmail",
        ColumnRatio,
        _column_metric("containsEmail"),
        "when_all_rows",
        rules.pattern_rule("EMAIL"),
        _STRING,
    ),
    ConstraintType(
        "hasPattern",
        PatternArgs,
        lambda c, a, t, h: c.hasPattern(a.column, a.pattern, t, None, h),
        "when_all_rows",
        rules.pattern_rule(None),
        _STRING,
    ),
    ConstraintType(
        "hasApproxQuantile",
        QuantileArgs,
        lambda c, a, t, h: c.hasApproxQuantile(a.column, a.quantile, t, h),
        column_kind=_NUMERIC,
    ),
    *[
        ConstraintType(name, ColumnAssert, _column_metric(name), column_kind=kind)
        for name, kind in [
            ("hasMin", _NUMERIC),
            ("hasMax", _NUMERIC),
            ("hasMean", _NUMERIC),
            ("hasSum", _NUMERIC),
            ("hasStandardDeviation", _NUMERIC),
            ("hasEntropy", ColumnKind.ANY),
            ("hasMinLength", _STRING),
            ("hasMaxLength", _STRING),
            ("hasApproxCountDistinct", ColumnKind.ANY),
        ]
    ],
    ConstraintType("hasDataType", DataTypeArgs, _data_type, column_kind=_STRING),
    ConstraintType("hasCorrelation", PairAssert, _pair("hasCorrelation"), column_kind=_NUMERIC),
    *[
        ConstraintType(
            name, PairArgs, _pair(name), "when_all_rows", rules.comparison_rule(symbol), _NUMERIC
        )
        for name, symbol in [
            ("isLessThan", "<"),
            ("isLessThanOrEqualTo", "<="),
            ("isGreaterThan", ">"),
            ("isGreaterThanOrEqualTo", ">="),
        ]
    ],
]

CONSTRAINT_TYPES: dict[str, ConstraintType] = {t.name: t for t in _TYPES}
