"""The check-suite format: YAML whose constraint names mirror Deequ's `Check` methods.

A suite is a list of checks; a check has a name, a level (`error` or `warning`) and a list of
constraints. Each constraint is a one-key mapping from a Deequ method name to its arguments::

    suite: items
    checks:
      - name: unit testing my data
        level: error
        constraints:
          - hasSize: {eq: 5}
          - isComplete: id                    # shorthand for {column: id}
          - isContainedIn: {column: priority, values: [high, low]}
          - containsURL: {column: description, min: 0.5}
          - hasApproxQuantile: {column: numViews, quantile: 0.5, max: 10}

Assertions are data (`eq`, `min`, `max`, `gt`, `lt`, `between`), never code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyspark.sql import DataFrame
from pyspark.sql.types import BooleanType, NumericType, StringType, StructType

from checks.arguments import Assertion
from checks.constraint_types import CONSTRAINT_TYPES, ColumnKind, ConstraintType
from lakegate_config.yaml_document import DocumentError, YamlDocument, describe_validation_error

if TYPE_CHECKING:
    from checks.anomalies import AnomalyCheck

__all__ = [
    "CONSTRAINT_TYPES",
    "Check",
    "ColumnKind",
    "Constraint",
    "ConstraintType",
    "Level",
    "Suite",
    "SuiteError",
    "check_against_schema",
    "check_sql_conditions",
    "parse_checks",
]


class SuiteError(DocumentError):
    """A suite that cannot run: the message names the file, the entry and what is wrong."""


class Level(StrEnum):
    """How a failing check affects the run."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Constraint:
    """One validated constraint of a check."""

    check: str
    index: int
    type: ConstraintType
    args: Any  # the type's arguments model, validated
    line: int | None
    qualifier: str = ""  # set by parse_checks when another constraint has the same id
    # Where it came from when translated (a data contract's rule: path, id, dimension...).
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def base_id(self) -> str:
        """`isComplete(productName)`: the constraint type, what it reads and its filter."""
        cols = self.args.subject()
        suffix = f" where {self.args.where}" if self.args.where else ""
        return f"{self.kind}({cols}){suffix}"

    @property
    def kind(self) -> str:
        """The constraint's name in the suite format (a Deequ method name)."""
        return self.type.name

    @property
    def columns(self) -> list[str]:
        """The columns the constraint reads, in order."""
        columns: list[str] = self.args.read_columns()
        return columns

    @property
    def id(self) -> str:
        """A readable identifier unique in its suite, such as `isComplete(productName)`.

        Two constraints of the same type on the same columns and filter are told apart by their
        check, or by their position: `isContainedIn(priority) in check 'strict'`.
        """
        return f"{self.base_id}{self.qualifier}"

    @property
    def blames_rows(self) -> bool:
        """Whether a failing row can be named (and quarantined) for this constraint."""
        mode = self.type.row_level
        if mode == "always":
            return True
        if mode == "never":
            return False
        return bool(self.args.is_all_rows())

    def assertion_text(self) -> str:
        """The expectation in words, e.g. `>= 0.5` or `all rows`."""
        if isinstance(self.args, Assertion):
            return "all rows" if self.blames_rows else self.args.describe()
        return "all rows"


@dataclass(frozen=True)
class Check:
    """A named group of constraints with one level."""

    name: str
    level: Level
    constraints: tuple[Constraint, ...]


@dataclass(frozen=True)
class Suite:
    """A validated check suite."""

    name: str
    path: Path | None
    description: str
    checks: tuple[Check, ...]
    expected_schema: tuple[tuple[str, str], ...] = ()
    anomalies: tuple[AnomalyCheck, ...] = ()
    # Rules of a data contract that cannot run, accepted with `--allow-unexecutable`.
    skipped: tuple[dict[str, Any], ...] = ()

    @property
    def constraints(self) -> list[Constraint]:
        """All constraints of all checks, in suite order."""
        return [c for check in self.checks for c in check.constraints]

    def columns(self) -> set[str]:
        """Every column any constraint reads."""
        return {col for c in self.constraints for col in c.columns}


class _CheckDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    level: Level = Level.ERROR
    constraints: list[dict[str, Any] | str] = Field(min_length=1)


class _SuiteDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: str = Field(min_length=1)
    description: str = ""
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    checks: list[_CheckDoc] = Field(min_length=1)
    # validated entry by entry by `checks.anomalies.parse_anomalies` (`suite_formats.parse_suite`)
    anomalies: Any = None
    stream: Any = None  # `lakegate stream`'s options, read by spark_jobs.services.stream_state


def _parse_constraint(
    document: YamlDocument, check_name: str, check_index: int, index: int, entry: Any
) -> Constraint:
    loc: tuple[str | int, ...] = ("checks", check_index, "constraints", index)
    where = document.where(loc)
    label = f"check {check_name!r}, constraint {index + 1}"
    if not isinstance(entry, dict) or len(entry) != 1:
        raise SuiteError(
            f"{where}: {label}: write each constraint as a one-key mapping, "
            "such as `- isComplete: {column: id}`"
        )
    ((kind, raw),) = entry.items()
    ctype = CONSTRAINT_TYPES.get(kind)
    if ctype is None:
        import difflib

        close = difflib.get_close_matches(str(kind), CONSTRAINT_TYPES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SuiteError(
            f"{where}: {label}: unknown constraint {kind!r}; {hint}known constraints: "
            f"{', '.join(sorted(CONSTRAINT_TYPES))}"
        )
    try:
        args = ctype.args.model_validate(_shorthand(ctype, raw))
    except ValidationError as exc:
        details = describe_validation_error(document, exc, (*loc, kind))
        raise SuiteError(f"{label} ({kind}):\n{details}") from None
    return Constraint(check_name, index, ctype, args, document.line_of((*loc, kind)))


def _shorthand(ctype: ConstraintType, raw: Any) -> Any:
    """`isComplete: id` is `{column: id}`; no arguments is `{}`."""
    if isinstance(raw, str) and "column" in ctype.args.model_fields:
        return {"column": raw}
    return {} if raw is None else raw


def constraint_problem(entry: Any) -> str | None:
    """Why one constraint entry (`{isComplete: id}`) is not valid, or None when it is."""
    if not isinstance(entry, dict) or len(entry) != 1:
        return "write each constraint as a one-key mapping, such as `isComplete: {column: id}`"
    ((kind, raw),) = entry.items()
    ctype = CONSTRAINT_TYPES.get(kind)
    if ctype is None:
        import difflib

        close = difflib.get_close_matches(str(kind), CONSTRAINT_TYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown constraint {kind!r}{hint}"
    try:
        ctype.args.model_validate(_shorthand(ctype, raw))
    except ValidationError as exc:
        return "; ".join(
            f"{kind}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".replace(f"{kind}.:", ":")
            for e in exc.errors()
        )
    return None


def parse_checks(document: YamlDocument) -> Suite:
    """Validate a loaded YAML document's checks and schema as a suite (no anomaly checks).

    Its `anomalies:` entries are left to `checks.suite_formats.parse_suite`, which validates the
    whole document; the translations of GX suites and data contracts have none.

    Raises:
        SuiteError: naming the file, line, entry and the problem.
    """
    try:
        doc = _SuiteDoc.model_validate(document.data)
    except ValidationError as exc:
        raise SuiteError(describe_validation_error(document, exc)) from None
    checks = []
    seen: set[str] = set()
    for ci, check_doc in enumerate(doc.checks):
        if check_doc.name in seen:
            raise SuiteError(
                f"{document.where(('checks', ci, 'name'))}: two checks are named "
                f"{check_doc.name!r}; check names must be unique"
            )
        seen.add(check_doc.name)
        constraints = tuple(
            _parse_constraint(document, check_doc.name, ci, i, entry)
            for i, entry in enumerate(check_doc.constraints)
        )
        checks.append(Check(check_doc.name, check_doc.level, constraints))
    checks = _with_unique_ids(checks)
    return Suite(
        doc.suite, document.path, doc.description, tuple(checks), tuple(doc.schema_.items())
    )


def _with_unique_ids(checks: list[Check]) -> list[Check]:
    """Qualify constraints that share an id (reasons and results are keyed by it)."""
    from collections import Counter
    from dataclasses import replace

    counts = Counter(c.base_id for check in checks for c in check.constraints)
    per_check = Counter((check.name, c.base_id) for check in checks for c in check.constraints)
    if max(counts.values(), default=0) < 2:
        return checks
    unique = []
    for check in checks:
        constraints = []
        for c in check.constraints:
            if counts[c.base_id] > 1:
                qualifier = f" in check {check.name!r}"
                if per_check[(check.name, c.base_id)] > 1:
                    qualifier += f", constraint {c.index + 1}"
                c = replace(c, qualifier=qualifier)
            constraints.append(c)
        unique.append(Check(check.name, check.level, tuple(constraints)))
    return unique


def type_family(type_name: str) -> str:
    """Group Spark type names whose values are interchangeable for a check: int and bigint..."""
    name = type_name.lower()
    if name in {"tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"}:
        return "integral"
    if name in {"float", "double", "real"} or name.startswith("decimal"):
        return "fractional"
    if name.startswith(("array<", "struct<", "map<")):
        return name.split("<", 1)[0]
    if name in {"timestamp_ntz", "timestamp_ltz"}:
        return "timestamp"
    return name


def _type_matches(actual: str, expected: str) -> bool:
    """Whether a column of Spark type `actual` fits `expected` (`number`: any numeric type)."""
    if expected.lower() == "number":
        return type_family(actual) in {"integral", "fractional"}
    return type_family(actual) == type_family(expected)


def check_against_schema(suite: Suite, schema: StructType) -> None:
    """Reject constraints on unknown columns or on columns of the wrong type.

    Raises:
        SuiteError: naming the suite file and line, the constraint and the column.
    """
    types = {f.name: f.dataType for f in schema.fields}
    problems = []
    for column, expected in suite.expected_schema:
        if column not in types:
            problems.append(
                f"{suite.path}: schema: the table has no column {column!r} "
                f"(expected {expected}); the table has {', '.join(types)}"
            )
        elif not _type_matches(types[column].simpleString(), expected):
            problems.append(
                f"{suite.path}: schema: column {column!r} is {types[column].simpleString()}, "
                f"expected {expected}"
            )
    for constraint in suite.constraints:
        where = f"{suite.path}:{constraint.line}" if constraint.line else str(suite.path)
        label = f"check {constraint.check!r}, constraint {constraint.index + 1} ({constraint.kind})"
        for column in constraint.columns:
            if column not in types:
                problems.append(f"{where}: {label}: {_unknown_column(column, types)}")
                continue
            needed = constraint.type.column_kind
            actual = types[column]
            if "." in column and not constraint.type.dotted_names:
                problems.append(
                    f"{where}: {label}: Deequ's histogram cannot read column {column!r} (a dot "
                    f"in its name, quoted or not); rename it first, e.g. "
                    f"SELECT *, `{column}` AS {column.replace('.', '_')}"
                )
            if needed is ColumnKind.CASTS_TO_NUMBER and not isinstance(
                actual, NumericType | StringType | BooleanType
            ):
                problems.append(
                    f"{where}: {label}: column {column!r} is {actual.simpleString()}, but this "
                    "constraint needs a number (or text or booleans Deequ casts to one)"
                )
            if needed is ColumnKind.NUMERIC and not isinstance(actual, NumericType):
                problems.append(
                    f"{where}: {label}: column {column!r} is {actual.simpleString()}, "
                    "but this constraint needs a numeric column"
                )
            if needed is ColumnKind.STRING and not isinstance(actual, StringType):
                problems.append(
                    f"{where}: {label}: column {column!r} is {actual.simpleString()}, "
                    "but this constraint needs a string column"
                )
    for entry in suite.anomalies:
        where = f"{suite.path}:{entry.line}" if entry.line else str(suite.path)
        for column in entry.columns:
            if column not in types:
                label = f"anomaly check {entry.index + 1} ({entry.label})"
                problems.append(f"{where}: {label}: {_unknown_column(column, types)}")
    if problems:
        raise SuiteError("\n".join(problems))


def _unknown_column(column: str, types: dict[str, Any]) -> str:
    """`unknown column 'x'; the table has a, b; did you mean 'y'?`."""
    import difflib

    close = difflib.get_close_matches(column, types, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown column {column!r}; the table has {', '.join(types)}{hint}"


def check_sql_conditions(df: DataFrame, suite: Suite) -> None:
    """Reject `satisfies` conditions that do not analyse against `df` as booleans (no job runs).

    Deequ casts the condition to an integer and sums it, so a condition that is not boolean would
    give a meaningless share; one naming an unknown column would fail inside the run.

    Raises:
        SuiteError: naming the suite line, the rule and Spark's reason.
    """
    from pyspark.errors import AnalysisException, ParseException
    from pyspark.sql import functions as F

    _check_sql_queries(df, suite)
    for c in suite.constraints:
        condition = getattr(c.args, "condition", None)
        if condition is None:
            continue
        where = f"{suite.path}:{c.line}: check {c.check!r}, constraint {c.index + 1} ({c.kind})"
        try:
            field = df.select(F.expr(condition).alias("condition")).schema.fields[0]
        except (AnalysisException, ParseException) as exc:
            reason = str(exc).splitlines()[0]
            raise SuiteError(
                f"{where}: condition {condition!r} is not valid SQL on this table: {reason}"
            ) from None
        if not isinstance(field.dataType, BooleanType):
            raise SuiteError(
                f"{where}: condition {condition!r} is {field.dataType.simpleString()}, not a "
                "boolean; write a comparison such as `amount >= 0`"
            )


def _check_sql_queries(df: DataFrame, suite: Suite) -> None:
    """Reject `customSql` queries that are not one number over `df` (analysed; no job runs).

    Registers `df` as the view `{table}` names (`constraint_types.TABLE_VIEW`).

    Raises:
        SuiteError: naming the suite line, the rule and Spark's reason.
    """
    from pyspark.errors import AnalysisException, ParseException

    from checks.constraint_types import TABLE_VIEW, table_query

    queries = [c for c in suite.constraints if c.type.reads_table]
    if queries:
        df.createOrReplaceTempView(TABLE_VIEW)
    for c in queries:
        where = f"{suite.path}:{c.line}: check {c.check!r}, constraint {c.index + 1} ({c.kind})"
        try:
            fields = df.sparkSession.sql(table_query(c.args.query)).schema.fields
        except (AnalysisException, ParseException) as exc:
            reason = str(exc).splitlines()[0]
            raise SuiteError(
                f"{where}: query {c.args.query!r} is not valid SQL on this table: {reason}"
            ) from None
        if len(fields) != 1 or not isinstance(fields[0].dataType, NumericType | BooleanType):
            found = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in fields)
            raise SuiteError(
                f"{where}: query {c.args.query!r} returns ({found}); it must return one "
                "number (or boolean) column"
            )
