"""The one registry of constraint types: adding a type is adding one entry here.

Each `ConstraintType` says everything lakegate knows about a constraint: its name (Deequ's
`Check` method), its arguments (a pydantic model from `checks.arguments`), how it is added to a
PyDeequ `Check`, whether and how it judges single rows, and what type its columns must have.
Importing this module needs no JVM; the builders and rules run only when called.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import reduce
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DataType, FloatType, NumericType, StringType

from checks import row_rules as rules
from checks.arguments import (
    MAX_DECIMAL_DIGITS,
    ColumnArgs,
    ColumnAssert,
    ColumnRatio,
    ColumnsArgs,
    ColumnsAssert,
    ConstraintArgs,
    ContainedInArgs,
    ContainedInTableArgs,
    DataTypeArgs,
    HistogramArgs,
    InRangeArgs,
    PairArgs,
    PairAssert,
    PatternArgs,
    QuantileArgs,
    SatisfiesArgs,
    SizeAssert,
    SqlMetricArgs,
    UniqueArgs,
    decimal_digits,
    scalar_text,
)
from checks.row_rules import REFERENCE_FLAG_PREFIX, RowRule, column, quote
from lakegate_config.redaction import redact

# (PyDeequ Check, arguments, assertion or None for Deequ's default, hint) -> PyDeequ Check
DeequBuilder = Callable[[Any, Any, Callable[[float], bool] | None, str | None], Any]
# (arguments, the table's column types by name) -> the SQL predicate a row must meet
PredicateText = Callable[[Any, Mapping[str, DataType]], str]
# (session, an `isContainedInTable`'s `table` text) -> the reference table; given by the job layer,
# which reads tables (`checks` never does).
ReferenceReader = Callable[[SparkSession, str], DataFrame]


class ColumnKind(StrEnum):
    """What a constraint needs of its column's type."""

    ANY = "any"
    NUMERIC = "numeric"
    STRING = "string"
    # Deequ casts the column to a number (`CAST(c AS DOUBLE)`, NULL compliant): numbers, numeric
    # text and booleans have a defined answer; dates, structs... fail inside Deequ.
    CASTS_TO_NUMBER = "castable to a number"


@dataclass(frozen=True)
class ConstraintType:
    """A constraint the suite format knows.

    `row_level` says whether a failing row can be blamed: `always` (a predicate every row must
    meet), `never` (a table-wide metric), or `when_all_rows` (a ratio constraint whose assertion
    is "every row"). `row_rule` is the predicate, for types that can blame rows.
    `groups_rows` marks types whose rule needs the key grouping (duplicate keys).
    `dotted_names` is False where Deequ cannot read a column whose name holds a dot (its
    Histogram and the analyzers built on it, quoted or not): such suites are refused up front.
    `metric_of(args, value)` reads a number out of a metric that is not one (a Distribution);
    without it, the constraint's own Deequ value picker is used, if it has one.
    `joins_reference` marks `isContainedInTable`: its predicate reads the flag column
    `flag_reference` joins from the reference table, which the gate adds before Deequ runs.
    `predicate(args, column_types)` is the one SQL text of a type judged by a predicate: Deequ
    evaluates it (a `satisfies` named `predicate_name(args)`) and the row rule is the same text
    parsed by the same Spark (`predicate_check` builds the Deequ side; `deequ` is then unused).
    """

    name: str
    args: type[ConstraintArgs]
    deequ: DeequBuilder
    row_level: Literal["always", "never", "when_all_rows"] = "never"
    row_rule: RowRule | None = None
    column_kind: ColumnKind = ColumnKind.ANY
    groups_rows: bool = False
    dotted_names: bool = True
    metric_of: Callable[[Any, Any], float | None] | None = None
    predicate: PredicateText | None = None
    predicate_name: Callable[[Any], str] | None = None
    reads_table: bool = False  # its query reads the table as the view `TABLE_VIEW`
    joins_reference: bool = False  # its predicate reads a flag joined from a reference table


def deequ_column(column: str) -> str:
    """The spelling Deequ's `col(...)`-based analyzers need: back-quoted when it holds a dot.

    Other names go as they are, so metric names (and the metrics history) stay Deequ's own.
    Deequ checks such a name against the schema after stripping the outer back-quotes only
    (`ColumnUtil.removeEscapeColumn`), so a name holding a back-quote is looked up with its
    back-quotes doubled: `deequ_schema_name` gives that name, `deequ_frame` the frame with it.
    """
    return quote(column) if "." in column or "`" in column else column


def deequ_schema_name(column: str) -> str:
    """The name Deequ's schema preconditions look up for `column` (its `removeEscapeColumn`)."""
    spelled = deequ_column(column)
    if spelled.startswith("`") and spelled.endswith("`") and len(spelled) > 1:
        return spelled[1:-1]
    return spelled


def _sql_name(column: str) -> str:
    """A column in SQL text: as is when a plain identifier, else back-quoted."""
    return column if _PLAIN_IDENTIFIER.fullmatch(column) else quote(column)


_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sql_number(value: int | Decimal | float) -> str:
    """A SQL literal of a number as written: an integer, an exact decimal, or a double.

    Spark reads `12` as an integer (BIGINT or DECIMAL(n,0) when larger) and `1.000000000000000001`
    as a DECIMAL, and compares either with a column in the column's own arithmetic, exactly. A
    float is written by its shortest repr (what the suite wrote); infinities are doubles.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'-' if value < 0 else ''}Infinity' AS DOUBLE)"
        exact = Decimal(repr(value))
        if decimal_digits(exact) > MAX_DECIMAL_DIGITS:
            return f"{repr(value).upper()}D"  # 1e-50: no decimal holds it, a double does
        value = exact
    return format(value, "f")


def range_predicate(
    column: str,
    low: int | Decimal | float | None,
    high: int | Decimal | float | None,
    include_low: bool = True,
    include_high: bool = True,
) -> str:
    """The SQL predicate of `isInRange` (null is compliant): Deequ's metric and the row rule.

    Bounds are literals as written (`sql_number`), so a DECIMAL or BIGINT column is compared
    exactly, the same way on both sides.
    """
    name = quote(column)
    parts = []
    if low is not None:
        parts.append(f"{name} {'>=' if include_low else '>'} {sql_number(low)}")
    if high is not None:
        parts.append(f"{name} {'<=' if include_high else '<'} {sql_number(high)}")
    return f"{name} IS NULL OR ({' AND '.join(parts)})"


def _string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number_of(value: str | int | float | bool) -> int | Decimal | float | None:
    """A YAML scalar as a number, or None when it cannot equal a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    if number.is_nan():
        return float("nan")
    if number.is_infinite():
        return float(number)
    return number if decimal_digits(number) <= MAX_DECIMAL_DIGITS else float(number)


def _typed_literals(values: list[Any], data_type: DataType | None) -> tuple[str, list[list[str]]]:
    """How to compare a column of `data_type` with the values: (its cast, lists of literals).

    Numbers compare as numbers (`1.0` equals an integer 1, `1.5` equals none), booleans as
    booleans (`true`, `"TRUE"`), anything else as the text a string column holds (`true`, not
    `True`). A value that cannot be of the column's type equals no row and is left out. Exact
    numbers and non-finite ones are listed apart, so a DECIMAL column is never widened to a
    double by an infinity in the same list.
    """
    if isinstance(data_type, BooleanType):
        flags = {scalar_text(v).lower() for v in values} & {"true", "false"}
        return "", [[flag.upper() for flag in sorted(flags)]]
    if isinstance(data_type, NumericType):
        numbers = [n for n in (_number_of(v) for v in values) if n is not None]
        exact = [n for n in numbers if not isinstance(n, float) or math.isfinite(n)]
        groups = [exact, [n for n in numbers if n not in exact]]
        wrap = "CAST({} AS FLOAT)" if isinstance(data_type, FloatType) else "{}"
        return "", [list(dict.fromkeys(wrap.format(sql_number(n)) for n in g)) for g in groups]
    cast = "" if data_type is None or isinstance(data_type, StringType) else "STRING"
    return cast, [list(dict.fromkeys(_string_literal(scalar_text(v)) for v in values))]


def contained_predicate(column: str, values: list[Any], data_type: DataType | None) -> str:
    """The SQL predicate of `isContainedIn` (null is compliant): Deequ's metric and the row rule.

    The values are literals of the column's type (`_typed_literals`); a FLOAT column compares
    with FLOAT literals (0.1 equals the float 0.1), a DECIMAL one exactly.
    """
    cast, groups = _typed_literals(values, data_type)
    name = f"CAST({quote(column)} AS {cast})" if cast else quote(column)
    lists = [f"{name} IN ({', '.join(group)})" for group in groups if group]
    return " OR ".join([f"{quote(column)} IS NULL", *lists])


def contained_name(args: ContainedInArgs) -> str:
    """Deequ's own name for an `isContainedIn` constraint (its metric's instance)."""
    return f"{args.column} contained in {','.join(scalar_text(v) for v in args.values)}"


def reference_flag(args: ContainedInTableArgs) -> str:
    """The flag column `flag_reference` adds: one name per reference table and key pair."""
    identity = json.dumps([args.table, args.own_key, args.reference_key])
    return f"{REFERENCE_FLAG_PREFIX}{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def contained_in_table_predicate(args: ContainedInTableArgs) -> str:
    """The SQL predicate of `isContainedInTable`: Deequ's metric and the row rule.

    A row complies when a column of its key is NULL (as `isContainedIn` counts NULL) or when
    its key is one of the reference table's (the flag `flag_reference` joined).
    """
    nulls = [f"{quote(c)} IS NULL" for c in args.own_key]
    return " OR ".join([*nulls, f"coalesce({reference_flag(args)}, false)"])


def contained_in_table_name(args: ContainedInTableArgs) -> str:
    """Deequ's name for an `isContainedInTable` constraint (its metric's instance)."""
    reference = f"{redact(args.table)}({','.join(args.reference_key)})"
    where = f" where {args.where}" if args.where else ""
    return f"{','.join(args.own_key)} contained in table {reference}{where}"


def flag_reference(df: DataFrame, args: ContainedInTableArgs, reference: DataFrame) -> DataFrame:
    """`df` with `reference_flag(args)`: true where the row's key is a key of `reference`.

    The reference's keys are made distinct first (a key listed twice adds no row) and keys
    holding a NULL are left out (NULL equals nothing); rows not found get NULL. A flag already
    present (two constraints on the same reference and key) is kept.
    """
    flag = reference_flag(args)
    if flag in df.columns:
        return df
    aliases = [f"{flag}_k{i}" for i in range(len(args.own_key))]
    pairs = list(zip(args.reference_key, aliases, strict=True))
    keys = (
        reference.select(*[column(k).alias(a) for k, a in pairs])
        .where(reduce(operator.and_, [F.col(a).isNotNull() for a in aliases]))
        .distinct()
        .withColumn(flag, F.lit(True))
    )
    found = reduce(
        operator.and_,
        [column(c) == F.col(a) for c, a in zip(args.own_key, aliases, strict=True)],
    )
    return df.join(keys, found, "left").drop(*aliases)


def completeness_predicate(columns: list[str], any_of: bool) -> str:
    """Deequ's `isEachNotNull`/`isAnyNotNull` text, with every name quoted so it parses.

    Deequ builds it from `col(c).isNotNull` and its `toString`, which leaves `a b` unquoted;
    for plain names this is character for character Deequ's own predicate.
    """
    joiner = " OR " if any_of else " AND "
    return reduce(
        lambda a, b: f"({a}{joiner}{b})", [f"({_sql_name(c)} IS NOT NULL)" for c in columns]
    )


def _jvm(check: Any) -> Any:
    return check._jvm


def _function(check: Any, test: Callable[[Any], bool]) -> Any:
    """A Scala `Function1` calling `test` back in Python (PyDeequ's callback)."""
    from pydeequ.scala_utils import ScalaFunction1

    return ScalaFunction1(check._spark_session.sparkContext._gateway, test)


def _option(check: Any, value: Any) -> Any:
    return _jvm(check).scala.Option.apply(value)


def _seq(check: Any, items: list[str]) -> Any:
    from pydeequ.scala_utils import to_scala_seq

    return to_scala_seq(_jvm(check), items)


def _set(check: Any, j_check: Any) -> Any:
    check._Check = j_check
    return check


def _column_metric_jvm(method: str) -> DeequBuilder:
    """`Check.<method>(column, assertion, hint)` on the JVM (PyDeequ 1.7 lacks the method)."""

    def build(check: Any, a: Any, test: Any, hint: str | None) -> Any:
        j_check = getattr(check._Check, method)(
            deequ_column(a.column), _function(check, test), _option(check, hint)
        )
        return _set(check, j_check)

    return build


def _unique(check: Any, a: UniqueArgs, test: Any, hint: str | None) -> Any:
    key = [deequ_column(c) for c in a.key]
    if len(key) == 1:
        return check.isUnique(key[0], hint)
    return check.hasUniqueness(key, lambda x: x == 1.0, hint)


def _primary_key(check: Any, a: UniqueArgs, test: Any, hint: str | None) -> Any:
    key = [deequ_column(c) for c in a.key]
    return check.isPrimaryKey(key[0], *key[1:], hint=hint)


def _are_unique(check: Any, a: ColumnsArgs, test: Any, hint: str | None) -> Any:
    key = [deequ_column(c) for c in a.columns]
    none = _jvm(check).scala.Option.empty()
    return _set(check, check._Check.areUnique(_seq(check, key), _option(check, hint), none))


def _columns_metric(method: str) -> DeequBuilder:
    """`check.<method>([columns], assertion, hint)` (uniqueness and its kin)."""
    return lambda check, a, test, hint: getattr(check, method)(
        [deequ_column(c) for c in a.columns], test, hint
    )


def _duplicate_row_count(check: Any, a: Any, test: Any, hint: str | None) -> Any:
    columns = _seq(check, [deequ_column(c) for c in a.columns])
    j_check = check._Check.hasDuplicateRowCount(
        columns, _function(check, test), _option(check, hint)
    )
    return _set(check, j_check)


def _completeness(any_of: bool, default_all_rows: bool) -> DeequBuilder:
    """`areComplete`, `haveCompleteness`, `areAnyComplete`, `haveAnyCompleteness`.

    Deequ's own methods build their predicate with unquoted names (a column `a b` or `a.b`
    breaks it); the same `satisfies` call with the names quoted gives Deequ's analyzer, name
    and metric.
    """
    name = "Any Completeness" if any_of else "Combined Completeness"

    def build(check: Any, a: Any, test: Any, hint: str | None) -> Any:
        predicate = completeness_predicate(a.columns, any_of)
        assertion = None if default_all_rows else test
        j_test = (
            getattr(check._Check, "satisfies$default$3")()
            if assertion is None
            else _function(check, assertion)
        )
        j_check = check._Check.satisfies(
            predicate,
            name,
            j_test,
            _option(check, hint),
            _seq(check, list(a.columns)),
            _jvm(check).scala.Option.empty(),
        )
        return _set(check, j_check)

    return build


def _in_range_text(a: InRangeArgs, types: Mapping[str, DataType]) -> str:
    return range_predicate(a.column, a.min, a.max, a.include_min, a.include_max)


def _in_range_name(a: InRangeArgs) -> str:
    return f"isInRange({a.column})" + (f" where {a.where}" if a.where else "")


def _contained_text(a: ContainedInArgs, types: Mapping[str, DataType]) -> str:
    return contained_predicate(a.column, list(a.values), types.get(a.column))


def _contained_in_table_text(a: ContainedInTableArgs, types: Mapping[str, DataType]) -> str:
    return contained_in_table_predicate(a)


def predicate_check(
    check: Any,
    ctype: ConstraintType,
    a: Any,
    test: Callable[[float], bool] | None,
    types: Mapping[str, DataType],
) -> Any:
    """Add a predicate-judged constraint to a PyDeequ `Check`: Deequ's `satisfies` of its text."""
    assert ctype.predicate is not None and ctype.predicate_name is not None
    j_test = (
        getattr(check._Check, "satisfies$default$3")() if test is None else _function(check, test)
    )
    j_check = check._Check.satisfies(
        ctype.predicate(a, types),
        ctype.predicate_name(a),
        j_test,
        _option(check, a.hint),
        _seq(check, a.read_columns()),
        _jvm(check).scala.Option.empty(),
    )
    return _set(check, j_check)


def _built_from_predicate(check: Any, a: Any, test: Any, hint: str | None) -> Any:
    raise TypeError("this constraint is built from its predicate: use predicate_check")


def _satisfies(check: Any, a: SatisfiesArgs, test: Any, hint: str | None) -> Any:
    return check.satisfies(a.condition, a.name, test, hint)


def _data_type(check: Any, a: DataTypeArgs, test: Any, hint: str | None) -> Any:
    from pydeequ.checks import ConstrainableDataTypes

    datatype = getattr(ConstrainableDataTypes, a.datatype)
    return check.hasDataType(deequ_column(a.column), datatype, test, hint)


# The temporary view a `customSql` query reads as `{table}`: `deequ_run.compile_checks` registers
# the table under this name (one validation with customSql per session at a time).
TABLE_VIEW = "_lakegate_table"


def table_query(query: str) -> str:
    """A `customSql` query as Spark runs it: `{table}` named, no trailing semicolon."""
    return query.strip().rstrip(";").replace("{table}", TABLE_VIEW)


def sql_metric_query(query: str) -> str:
    """The query Deequ runs for `customSql`: `{table}` named, its one value a double (NULL: NaN).

    The column alias list refuses a query of more than one column; a NULL value becomes NaN,
    which no assertion holds for (Deequ would read it as 0).
    """
    return (
        "SELECT coalesce(CAST(_lakegate_value AS DOUBLE), double('NaN')) "
        f"FROM ({table_query(query)}) AS _lakegate_query(_lakegate_value)"
    )


def _custom_sql(check: Any, a: SqlMetricArgs, test: Any, hint: str | None) -> Any:
    options = getattr(check._Check, "customSql$default$4")()
    j_check = check._Check.customSql(
        sql_metric_query(a.query), _function(check, test), _option(check, hint), options
    )
    return _set(check, j_check)


# Deequ's `Histogram.NullFieldReplacement`: the key its histograms file null under.
HISTOGRAM_NULL = "NullValue"


def _histogram_value(a: HistogramArgs, distribution: Any) -> float:
    """The value's absolute count or ratio in a Deequ `Distribution` (0 when absent)."""
    found = distribution.values().get(a.histogram_key(HISTOGRAM_NULL))
    if not found.isDefined():
        return 0.0
    entry = found.get()
    return float(entry.absolute() if a.measure == "absolute" else entry.ratio())


def _histogram(check: Any, a: HistogramArgs, test: Any, hint: str | None) -> Any:
    def assertion(distribution: Any) -> bool:
        return bool(test(_histogram_value(a, distribution)))

    return check.hasHistogramValues(a.column, assertion, None, None, hint)


def _exact_quantile(check: Any, a: QuantileArgs, test: Any, hint: str | None) -> Any:
    j_check = check._Check.hasExactQuantile(
        deequ_column(a.column), float(a.quantile), _function(check, test), _option(check, hint)
    )
    return _set(check, j_check)


def _column_metric(method: str, quote: bool = True) -> DeequBuilder:
    """`check.<method>(column, assertion, hint)`: the shape of most single-column methods.

    `quote=False` for Deequ methods that quote the name themselves (they build SQL text).
    """
    return lambda check, a, test, hint: getattr(check, method)(
        deequ_column(a.column) if quote else a.column, test, hint
    )


def _pair(method: str, quote: bool = True) -> DeequBuilder:
    """`check.<method>(column_a, column_b, assertion, hint)`."""

    def build(check: Any, a: Any, test: Any, hint: str | None) -> Any:
        name_a, name_b = (
            (deequ_column(a.column_a), deequ_column(a.column_b))
            if quote
            else (a.column_a, a.column_b)
        )
        return getattr(check, method)(name_a, name_b, test, hint)

    return build


_NUMERIC, _STRING, _CASTS = ColumnKind.NUMERIC, ColumnKind.STRING, ColumnKind.CASTS_TO_NUMBER

_TYPES = [
    ConstraintType("hasSize", SizeAssert, lambda c, a, t, h: c.hasSize(t, h)),
    ConstraintType(
        "isComplete",
        ColumnArgs,
        lambda c, a, t, h: c.isComplete(deequ_column(a.column), h),
        "always",
        rules.is_null,
    ),
    ConstraintType(
        "areComplete", ColumnsArgs, _completeness(False, True), "always", rules.any_null
    ),
    ConstraintType(
        "haveCompleteness",
        ColumnsAssert,
        _completeness(False, False),
        "when_all_rows",
        rules.any_null,
    ),
    ConstraintType(
        "areAnyComplete", ColumnsArgs, _completeness(True, True), "always", rules.all_null
    ),
    ConstraintType(
        "haveAnyCompleteness",
        ColumnsAssert,
        _completeness(True, False),
        "when_all_rows",
        rules.all_null,
    ),
    ConstraintType("hasCompleteness", ColumnAssert, _column_metric("hasCompleteness")),
    ConstraintType(
        "isUnique", UniqueArgs, _unique, "always", rules.duplicated_key, groups_rows=True
    ),
    ConstraintType(
        "isPrimaryKey", UniqueArgs, _primary_key, "always", rules.duplicated_key, groups_rows=True
    ),
    ConstraintType(
        "areUnique", ColumnsArgs, _are_unique, "always", rules.duplicated_key, groups_rows=True
    ),
    ConstraintType("hasUniqueness", ColumnsAssert, _columns_metric("hasUniqueness")),
    ConstraintType("hasDistinctness", ColumnsAssert, _columns_metric("hasDistinctness")),
    ConstraintType("hasUniqueValueRatio", ColumnsAssert, _columns_metric("hasUniqueValueRatio")),
    ConstraintType("hasDuplicateRowCount", ColumnsAssert, _duplicate_row_count),
    ConstraintType(
        "hasNumberOfDistinctValues",
        ColumnAssert,
        lambda c, a, t, h: c.hasNumberOfDistinctValues(a.column, t, None, None, h),
        dotted_names=False,
    ),
    ConstraintType(
        "hasHistogramValues",
        HistogramArgs,
        _histogram,
        dotted_names=False,
        metric_of=_histogram_value,
    ),
    ConstraintType(
        "satisfies",
        SatisfiesArgs,
        _satisfies,
        "when_all_rows",
        rules.condition_not_met,
    ),
    ConstraintType(
        "isContainedIn",
        ContainedInArgs,
        _built_from_predicate,
        "when_all_rows",
        rules.not_in_set,
        predicate=_contained_text,
        predicate_name=contained_name,
    ),
    ConstraintType(
        "isContainedInTable",
        ContainedInTableArgs,
        _built_from_predicate,
        "when_all_rows",
        rules.not_in_reference,
        predicate=_contained_in_table_text,
        predicate_name=contained_in_table_name,
        joins_reference=True,
    ),
    ConstraintType(
        "isInRange",
        InRangeArgs,
        _built_from_predicate,
        "always",
        rules.out_of_range,
        _NUMERIC,
        predicate=_in_range_text,
        predicate_name=_in_range_name,
    ),
    ConstraintType(
        "isNonNegative",
        ColumnRatio,
        _column_metric("isNonNegative", quote=False),
        "when_all_rows",
        rules.negative,
        _CASTS,
    ),
    ConstraintType(
        "isPositive",
        ColumnRatio,
        _column_metric("isPositive", quote=False),
        "when_all_rows",
        rules.not_positive,
        _CASTS,
    ),
    *[
        ConstraintType(
            name,
            ColumnRatio,
            _column_metric(name),
            "when_all_rows",
            rules.pattern_rule(pattern),
            _STRING,
        )
        for name, pattern in [
            ("containsURL", "URL"),
            ("containsEmail", "EMAIL"),
            ("containsCreditCardNumber", "CREDITCARD"),
            ("containsSocialSecurityNumber", "SSN"),
        ]
    ],
    ConstraintType(
        "hasPattern",
        PatternArgs,
        lambda c, a, t, h: c.hasPattern(deequ_column(a.column), a.pattern, t, None, h),
        "when_all_rows",
        rules.pattern_rule(None),
        _STRING,
    ),
    ConstraintType(
        "hasApproxQuantile",
        QuantileArgs,
        lambda c, a, t, h: c.hasApproxQuantile(deequ_column(a.column), a.quantile, t, h),
        column_kind=_NUMERIC,
    ),
    ConstraintType("hasExactQuantile", QuantileArgs, _exact_quantile, column_kind=_NUMERIC),
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
    *[
        ConstraintType(name, ColumnAssert, _column_metric_jvm(name), column_kind=_NUMERIC)
        for name in [
            "hasVariance",
            "hasSkewness",
            "hasKurtosis",
            "hasRange",
            "hasInterquartileRange",
            "hasZerosCount",
        ]
    ],
    ConstraintType("hasDataType", DataTypeArgs, _data_type),
    ConstraintType("customSql", SqlMetricArgs, _custom_sql, reads_table=True),
    ConstraintType("hasCorrelation", PairAssert, _pair("hasCorrelation"), column_kind=_NUMERIC),
    ConstraintType(
        "hasMutualInformation", PairAssert, _pair("hasMutualInformation"), dotted_names=False
    ),
    *[
        ConstraintType(
            name,
            PairArgs,
            _pair(name, quote=False),
            "when_all_rows",
            rules.comparison_rule(symbol),
            _NUMERIC,
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

# Deequ `Check` methods lakegate calls on the JVM object itself (PyDeequ 1.7 has no wrapper for
# them, or its wrapper cannot be given quoted names); tests confirm each exists in the jar.
JVM_CHECK_METHODS = (
    "areUnique",
    "customSql",
    "hasDuplicateRowCount",
    "hasExactQuantile",
    "hasVariance",
    "hasSkewness",
    "hasKurtosis",
    "hasRange",
    "hasInterquartileRange",
    "hasZerosCount",
    "satisfies",
)
