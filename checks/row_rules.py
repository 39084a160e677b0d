"""Row-level rules: which rows break a constraint, and a failure record saying why.

For each constraint that can blame a row, a Column that is null when the row complies and a
failure struct (check, constraint, column, message) when it does not.

Each rule mirrors the predicate Deequ uses for the same constraint, so the rows a rule blames
are the rows that pulled Deequ's metric below 1. Nothing here reads or writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from checks.suite import Constraint

FAILURE_FIELDS = ("check", "constraint", "column", "message")
DUPLICATE_FLAG_PREFIX = "_lakegate_dup_"
_PATTERN_CONSTRAINTS = {"containsURL": "URL", "containsEmail": "EMAIL"}


def deequ_patterns(spark: SparkSession) -> dict[str, str]:
    """Deequ's own regular expressions for URL and e-mail, so rows are judged as Deequ judges."""
    patterns = spark.sparkContext._jvm.com.amazon.deequ.analyzers.Patterns
    return {"URL": patterns.URL().toString(), "EMAIL": patterns.EMAIL().toString()}


def _text(column: str) -> Column:
    return F.coalesce(F.col(column).cast("string"), F.lit("null"))


def _pair_symbol(kind: str) -> str:
    return {
        "isLessThan": "<",
        "isLessThanOrEqualTo": "<=",
        "isGreaterThan": ">",
        "isGreaterThanOrEqualTo": ">=",
    }[kind]


def violation(
    constraint: Constraint, patterns: dict[str, str], duplicate_flag: str | None = None
) -> tuple[Column, Column]:
    """Return `(fails, message)` Columns for a row-level constraint.

    `fails` is never null. For `isUnique`, `duplicate_flag` names a boolean column that is true
    on rows whose key occurs more than once (see `checks.quarantine`).
    """
    a = constraint.args
    k = constraint.kind
    cols = constraint.columns
    if k == "isComplete":
        fails = F.col(a.column).isNull()
        message = F.lit(f"{a.column} is null")
    elif k == "areComplete":
        fails = (
            F.greatest(*[F.col(c).isNull() for c in cols])
            if len(cols) > 1
            else F.col(cols[0]).isNull()
        )
        nulls = [F.when(F.col(c).isNull(), F.lit(c)) for c in cols]
        message = F.concat(F.concat_ws(", ", *nulls), F.lit(" is null"))
    elif k == "isUnique":
        if duplicate_flag is None:
            raise ValueError("isUnique needs the duplicate-key flag column")
        fails = F.coalesce(F.col(duplicate_flag), F.lit(False))
        key = F.concat_ws(", ", *[F.concat(F.lit(f"{c} = "), _text(c)) for c in cols])
        message = F.concat(key, F.lit(" occurs more than once"))
    elif k == "isContainedIn":
        allowed = [str(v) for v in a.values]
        fails = F.col(a.column).isNotNull() & ~F.col(a.column).cast("string").isin(allowed)
        message = F.concat(
            F.lit(f"{a.column} = '"), _text(a.column), F.lit(f"' is not one of {allowed}")
        )
    elif k == "isInRange":
        inside = F.lit(True)
        if a.min is not None:
            inside = inside & (F.col(a.column) >= F.lit(a.min))
        if a.max is not None:
            inside = inside & (F.col(a.column) <= F.lit(a.max))
        fails = F.col(a.column).isNotNull() & ~inside
        low = "-inf" if a.min is None else f"{a.min:g}"
        high = "inf" if a.max is None else f"{a.max:g}"
        message = F.concat(
            F.lit(f"{a.column} = "), _text(a.column), F.lit(f" is outside [{low}, {high}]")
        )
    elif k == "isNonNegative":
        fails = ~(F.coalesce(F.col(a.column).cast("double"), F.lit(0.0)) >= 0)
        message = F.concat(F.lit(f"{a.column} = "), _text(a.column), F.lit(" is negative"))
    elif k == "isPositive":
        fails = ~(F.coalesce(F.col(a.column).cast("double"), F.lit(1.0)) > 0)
        message = F.concat(F.lit(f"{a.column} = "), _text(a.column), F.lit(" is not positive"))
    elif k in _PATTERN_CONSTRAINTS or k == "hasPattern":
        pattern = a.pattern if k == "hasPattern" else patterns[_PATTERN_CONSTRAINTS[k]]
        what = f"pattern {pattern}" if k == "hasPattern" else f"a {_PATTERN_CONSTRAINTS[k]}"
        extracted = F.regexp_extract(F.col(a.column), pattern, 0)
        fails = F.col(a.column).isNull() | (extracted == F.lit(""))
        message = F.when(F.col(a.column).isNull(), F.lit(f"{a.column} is null")).otherwise(
            F.lit(f"{a.column} does not contain {what}")
        )
    elif k in {"isLessThan", "isLessThanOrEqualTo", "isGreaterThan", "isGreaterThanOrEqualTo"}:
        symbol = _pair_symbol(k)
        holds = F.expr(f"`{a.column_a}` {symbol} `{a.column_b}`")
        fails = ~F.coalesce(holds, F.lit(False))
        message = F.concat(
            F.lit(f"{a.column_a} = "),
            _text(a.column_a),
            F.lit(f" is not {symbol} {a.column_b} = "),
            _text(a.column_b),
        )
    else:
        raise ValueError(f"{k} does not blame single rows")
    if a.where:
        fails = F.coalesce(F.expr(a.where), F.lit(False)) & fails
    return fails, message


def failure_struct(constraint: Constraint, message: Column) -> Column:
    """The struct recorded for a row that breaks `constraint`."""
    return F.struct(
        F.lit(constraint.check).alias("check"),
        F.lit(constraint.id).alias("constraint"),
        F.lit(",".join(constraint.columns)).alias("column"),
        message.alias("message"),
    )


def failures_column(
    constraints: Sequence[Constraint],
    patterns: dict[str, str],
    duplicate_flags: dict[str, str] | None = None,
) -> Column:
    """An array of failure structs, one per constraint the row breaks (empty when none)."""
    duplicate_flags = duplicate_flags or {}
    items = []
    for constraint in constraints:
        fails, message = violation(constraint, patterns, duplicate_flags.get(constraint.id))
        items.append(F.when(fails, failure_struct(constraint, message)))
    if not items:
        return F.array().cast(
            "array<struct<check:string,constraint:string,column:string,message:string>>"
        )
    return F.filter(F.array(*items), lambda item: item.isNotNull())


MALFORMED_CONSTRAINT = "parseable"


def malformed_line_failure(raw_column: str) -> Column:
    """A one-element failure array for rows whose source line did not parse, else empty."""
    failure = F.struct(
        F.lit("input").alias("check"),
        F.lit(MALFORMED_CONSTRAINT).alias("constraint"),
        F.lit("").alias("column"),
        F.concat(F.lit("malformed line: "), F.col(raw_column)).alias("message"),
    )
    return F.filter(
        F.array(F.when(F.col(raw_column).isNotNull(), failure)), lambda x: x.isNotNull()
    )
