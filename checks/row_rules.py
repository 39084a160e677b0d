"""Row-level rules: which rows break a constraint, and a failure record saying why.

A rule is a function of a constraint's arguments and a `RowContext` that returns
`(fails, message)` Columns: `fails` is a never-null boolean, `message` says why in words. Each
rule mirrors the predicate Deequ uses for the same constraint, so the rows a rule blames are the
rows that pulled Deequ's metric below 1. Nothing here reads or writes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from checks.arguments import bound_text, scalar_text
from lakegate_config.redaction import redact

if TYPE_CHECKING:
    from checks.suite import Constraint

FAILURE_FIELDS = ("check", "constraint", "column", "message")
FAILURE_TYPE = "array<struct<check:string,constraint:string,column:string,message:string>>"
DUPLICATE_FLAG_PREFIX = "_lakegate_dup_"
REFERENCE_FLAG_PREFIX = "_lakegate_ref_"
MALFORMED_CONSTRAINT = "parseable"


@dataclass(frozen=True)
class RowContext:
    """What rules need beyond their arguments.

    Deequ's patterns, the duplicate-key flag, the table's column types, and (set by
    `violation` for a type judged by a predicate) the SQL text Deequ evaluates for it.
    """

    patterns: Mapping[str, str] = field(default_factory=dict)
    duplicate_flag: str | None = None
    column_types: Mapping[str, Any] = field(default_factory=dict)
    predicate: str | None = None


RowRule = Callable[[Any, RowContext], tuple[Column, Column]]


# Names of Deequ's `Patterns` members, by the name the row rules use.
DEEQU_PATTERNS = {
    "URL": "URL",
    "EMAIL": "EMAIL",
    "CREDITCARD": "CREDITCARD",
    "SSN": "SOCIAL_SECURITY_NUMBER_US",
}


def deequ_patterns(spark: SparkSession) -> dict[str, str]:
    """Deequ's own regular expressions (URL, e-mail, credit card, US SSN), to judge as Deequ."""
    patterns = spark.sparkContext._jvm.com.amazon.deequ.analyzers.Patterns  # type: ignore[union-attr]
    return {name: getattr(patterns, member)().toString() for name, member in DEEQU_PATTERNS.items()}


def quote(name: str) -> str:
    """A column name as a SQL identifier: back-quoted, inner back-quotes doubled.

    The one spelling of a name in SQL text and in `F.col` (`column`); dots, spaces and
    back-quotes are part of the name, never parsed.
    """
    return "`" + name.replace("`", "``") + "`"


def column(name: str) -> Column:
    """A top-level column by its exact name (dots and spaces are part of the name)."""
    return F.col(quote(name))


def predicate_fails(predicate: str | None) -> Column:
    """True where the SQL predicate is false or null (Deequ counts only rows where it is true)."""
    if predicate is None:
        raise ValueError("this rule needs its constraint's predicate (see `violation`)")
    return ~F.coalesce(F.expr(predicate), F.lit(False))


def _text(name: str) -> Column:
    return F.coalesce(column(name).cast("string"), F.lit("null"))


def is_null(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """The column is null (`isComplete`)."""
    return column(args.column).isNull(), F.lit(f"{args.column} is null")


def any_null(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """Any of the columns is null (`areComplete`)."""
    cols = args.read_columns()
    fails = (
        F.greatest(*[column(c).isNull() for c in cols])
        if len(cols) > 1
        else column(cols[0]).isNull()
    )
    nulls = [F.when(column(c).isNull(), F.lit(c)) for c in cols]
    return fails, F.concat(F.concat_ws(", ", *nulls), F.lit(" is null"))


def all_null(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """Every one of the columns is null (`areAnyComplete`)."""
    cols = args.read_columns()
    fails = reduce(operator.and_, [column(c).isNull() for c in cols])
    return fails, F.lit(f"{', '.join(cols)} are all null")


def condition_not_met(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """The SQL condition is false or null (`satisfies`: Deequ counts only rows where it is true)."""
    fails = ~F.coalesce(F.expr(args.condition), F.lit(False))
    return fails, F.lit(f"{args.name}: {args.condition} does not hold")


def duplicated_key(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """The row's key occurs more than once (`isUnique`); needs the duplicate flag column."""
    if ctx.duplicate_flag is None:
        raise ValueError("isUnique needs the duplicate-key flag column")
    cols = args.read_columns()
    fails = F.coalesce(F.col(ctx.duplicate_flag), F.lit(False))
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{c} = "), _text(c)) for c in cols])
    return fails, F.concat(key, F.lit(" occurs more than once"))


def not_in_set(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """A non-null value outside the allowed values (`isContainedIn`): its predicate fails."""
    allowed = [scalar_text(v) for v in args.values]
    message = F.concat(
        F.lit(f"{args.column} = '"), _text(args.column), F.lit(f"' is not one of {allowed}")
    )
    return predicate_fails(ctx.predicate), message


def not_in_reference(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """A key without NULLs that the reference table lacks (`isContainedInTable`).

    Its predicate (the reference flag, NULL keys compliant) fails; the message names the key,
    the reference table and its key columns.
    """
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{c} = "), _text(c)) for c in args.own_key])
    reference = f"{redact(args.table)} ({', '.join(args.reference_key)})"
    message = F.concat(key, F.lit(f" is not a key of the reference table {reference}"))
    return predicate_fails(ctx.predicate), message


def out_of_range(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """A non-null value outside the bounds (`isInRange`): its predicate fails."""
    low = "(-inf" if args.min is None else ("[" if args.include_min else "(") + bound_text(args.min)
    high = "inf)" if args.max is None else bound_text(args.max) + ("]" if args.include_max else ")")
    message = F.concat(
        F.lit(f"{args.column} = "), _text(args.column), F.lit(f" is outside {low}, {high}")
    )
    return predicate_fails(ctx.predicate), message


def negative(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """Below zero once cast to a number; null counts as compliant, as in Deequ."""
    fails = ~(F.coalesce(column(args.column).cast("double"), F.lit(0.0)) >= 0)
    return fails, F.concat(F.lit(f"{args.column} = "), _text(args.column), F.lit(" is negative"))


def not_positive(args: Any, ctx: RowContext) -> tuple[Column, Column]:
    """Zero or below once cast to a number; null counts as compliant, as in Deequ."""
    fails = ~(F.coalesce(column(args.column).cast("double"), F.lit(1.0)) > 0)
    message = F.concat(F.lit(f"{args.column} = "), _text(args.column), F.lit(" is not positive"))
    return fails, message


def pattern_rule(pattern_name: str | None) -> RowRule:
    """A rule for a value that does not contain a pattern: Deequ's named one, or `args.pattern`."""

    def rule(args: Any, ctx: RowContext) -> tuple[Column, Column]:
        pattern = args.pattern if pattern_name is None else ctx.patterns[pattern_name]
        what = f"pattern {pattern}" if pattern_name is None else f"a {pattern_name}"
        value = column(args.column)
        fails = value.isNull() | (F.regexp_extract(value, pattern, 0) == F.lit(""))
        message = F.when(value.isNull(), F.lit(f"{args.column} is null")).otherwise(
            F.lit(f"{args.column} does not contain {what}")
        )
        return fails, message

    return rule


def comparison_rule(symbol: str) -> RowRule:
    """A rule for two columns that must compare with `symbol` (null fails, as in Deequ)."""

    def rule(args: Any, ctx: RowContext) -> tuple[Column, Column]:
        a, b = column(args.column_a), column(args.column_b)
        holds = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[symbol]
        message = F.concat(
            F.lit(f"{args.column_a} = "),
            _text(args.column_a),
            F.lit(f" is not {symbol} {args.column_b} = "),
            _text(args.column_b),
        )
        return ~F.coalesce(holds, F.lit(False)), message

    return rule


def violation(constraint: Constraint, ctx: RowContext) -> tuple[Column, Column]:
    """Return `(fails, message)` for a row-level constraint, its `where` filter applied.

    Raises:
        ValueError: the constraint does not judge single rows.
    """
    rule = constraint.type.row_rule
    if rule is None or not constraint.blames_rows:
        raise ValueError(f"{constraint.kind} does not blame single rows")
    if constraint.type.predicate is not None:
        ctx = replace(ctx, predicate=constraint.type.predicate(constraint.args, ctx.column_types))
    fails, message = rule(constraint.args, ctx)
    if constraint.args.where:
        fails = F.coalesce(F.expr(constraint.args.where), F.lit(False)) & fails
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
    patterns: Mapping[str, str],
    duplicate_flags: Mapping[str, str] | None = None,
    column_types: Mapping[str, Any] | None = None,
) -> Column:
    """An array of failure structs, one per constraint the row breaks (empty when none)."""
    duplicate_flags = duplicate_flags or {}
    items = []
    for constraint in constraints:
        ctx = RowContext(patterns, duplicate_flags.get(constraint.id), column_types or {})
        fails, message = violation(constraint, ctx)
        items.append(F.when(fails, failure_struct(constraint, message)))
    if not items:
        return F.array().cast(FAILURE_TYPE)
    return F.filter(F.array(*items), lambda item: item.isNotNull())


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
