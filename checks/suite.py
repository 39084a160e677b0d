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

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.sql.types import NumericType, StringType, StructType

from checks.yaml_document import (
    DocumentError,
    YamlDocument,
    describe_validation_error,
    load_yaml_document,
)


class SuiteError(DocumentError):
    """A suite that cannot run: the message names the file, the entry and what is wrong."""


class Level(StrEnum):
    """How a failing check affects the run."""

    ERROR = "error"
    WARNING = "warning"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    where: str | None = Field(
        default=None, description="SQL filter; the constraint sees only these rows"
    )
    hint: str | None = None


class Assertion(_Args):
    """A test on a metric value; all given bounds must hold."""

    eq: float | None = None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    between: tuple[float, float] | None = None

    def has_assertion(self) -> bool:
        """Whether any bound is given."""
        return any(
            v is not None for v in (self.eq, self.min, self.max, self.gt, self.lt, self.between)
        )

    def holds(self, value: float) -> bool:
        """Evaluate the assertion on a metric value."""
        checks = [
            self.eq is None or math.isclose(value, self.eq, rel_tol=1e-9, abs_tol=1e-12),
            self.min is None or value >= self.min,
            self.max is None or value <= self.max,
            self.gt is None or value > self.gt,
            self.lt is None or value < self.lt,
            self.between is None or self.between[0] <= value <= self.between[1],
        ]
        return all(checks)

    def describe(self) -> str:
        """Human text of the assertion, such as `>= 0.5`."""
        parts = []
        if self.eq is not None:
            parts.append(f"== {self.eq:g}")
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.lt is not None:
            parts.append(f"< {self.lt:g}")
        if self.between is not None:
            parts.append(f"between {self.between[0]:g} and {self.between[1]:g}")
        return " and ".join(parts) or "== 1"

    def is_all_rows(self) -> bool:
        """Whether the assertion is Deequ's default for ratio constraints: every row complies."""
        return not self.has_assertion() or (
            self.eq == 1
            and not any(v is not None for v in (self.min, self.max, self.gt, self.lt, self.between))
        )

    @model_validator(mode="after")
    def _between_ordered(self) -> Assertion:
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: the lower bound is greater than the upper bound")
        return self


class RequiredAssertion(Assertion):
    """An assertion that must name at least one bound."""

    @model_validator(mode="after")
    def _needs_bound(self) -> RequiredAssertion:
        if not self.has_assertion():
            raise ValueError("missing assertion: give one of eq, min, max, gt, lt, between")
        return self


class ColumnArgs(_Args):
    """Arguments of a one-column row predicate."""

    column: str


class ColumnsArgs(_Args):
    """Arguments of a several-column row predicate."""

    columns: list[str] = Field(min_length=1)


class UniqueArgs(_Args):
    """A key of one column or several."""

    column: str | None = None
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> UniqueArgs:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give either column or columns")
        return self

    @property
    def key(self) -> list[str]:
        """The key columns."""
        return [self.column] if self.column is not None else list(self.columns or [])


class SizeAssert(RequiredAssertion):
    """An assertion on the row count."""


class ColumnAssert(RequiredAssertion):
    """A column and an assertion on its metric."""

    column: str


class ColumnsAssert(RequiredAssertion):
    """Columns and an assertion on their metric."""

    columns: list[str] = Field(min_length=1)


class ColumnRatio(Assertion):
    """A column and an optional assertion on the share of complying rows."""

    column: str


class ContainedInArgs(Assertion):
    """A column and the values it may hold."""

    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class InRangeArgs(_Args):
    """A numeric column and its inclusive bounds."""

    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> InRangeArgs:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class PatternArgs(Assertion):
    """A string column and a regular expression it must contain."""

    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return pattern


class QuantileArgs(RequiredAssertion):
    """A numeric column, a quantile and an assertion on its value."""

    column: str
    quantile: float = Field(ge=0.0, le=1.0)


class DataTypeArgs(Assertion):
    """A string column and the data type its values should have."""

    column: str
    datatype: Literal["Null", "Fractional", "Integral", "Boolean", "String", "Numeric"]


class PairArgs(Assertion):
    """Two columns compared row by row."""

    column_a: str
    column_b: str


class PairAssert(RequiredAssertion):
    """Two columns and an assertion on a metric of the pair."""

    column_a: str
    column_b: str


class ColumnKind(StrEnum):
    """What a constraint needs of its column's type."""

    ANY = "any"
    NUMERIC = "numeric"
    STRING = "string"


@dataclass(frozen=True)
class ConstraintType:
    """A constraint the suite format knows: its arguments and how it judges rows.

    `row_level` says whether a failing row can be blamed: a predicate that every row must meet
    (for ratio constraints, only when the assertion is "all rows").
    """

    name: str
    args: type[_Args]
    row_level: Literal["always", "never", "when_all_rows"]
    column_kind: ColumnKind = ColumnKind.ANY


CONSTRAINT_TYPES: dict[str, ConstraintType] = {
    t.name: t
    for t in [
        ConstraintType("hasSize", SizeAssert, "never"),
        ConstraintType("isComplete", ColumnArgs, "always"),
        ConstraintType("areComplete", ColumnsArgs, "always"),
        ConstraintType("hasCompleteness", ColumnAssert, "never"),
        ConstraintType("isUnique", UniqueArgs, "always"),
        ConstraintType("hasUniqueness", ColumnsAssert, "never"),
        ConstraintType("hasDistinctness", ColumnsAssert, "never"),
        ConstraintType("isContainedIn", ContainedInArgs, "when_all_rows"),
        ConstraintType("isInRange", InRangeArgs, "always", ColumnKind.NUMERIC),
        ConstraintType("isNonNegative", ColumnRatio, "when_all_rows", ColumnKind.NUMERIC),
        ConstraintType("isPositive", ColumnRatio, "when_all_rows", ColumnKind.NUMERIC),
        ConstraintType("containsURL", ColumnRatio, "when_all_rows", ColumnKind.STRING),
        ConstraintType("containsEmail", ColumnRatio, "when_all_rows", ColumnKind.STRING),
        ConstraintType("hasPattern", PatternArgs, "when_all_rows", ColumnKind.STRING),
        ConstraintType("hasApproxQuantile", QuantileArgs, "never", ColumnKind.NUMERIC),
        ConstraintType("hasMin", ColumnAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("hasMax", ColumnAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("hasMean", ColumnAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("hasSum", ColumnAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("hasStandardDeviation", ColumnAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("hasEntropy", ColumnAssert, "never"),
        ConstraintType("hasMinLength", ColumnAssert, "never", ColumnKind.STRING),
        ConstraintType("hasMaxLength", ColumnAssert, "never", ColumnKind.STRING),
        ConstraintType("hasDataType", DataTypeArgs, "never", ColumnKind.STRING),
        ConstraintType("hasApproxCountDistinct", ColumnAssert, "never"),
        ConstraintType("hasCorrelation", PairAssert, "never", ColumnKind.NUMERIC),
        ConstraintType("isLessThan", PairArgs, "when_all_rows", ColumnKind.NUMERIC),
        ConstraintType("isLessThanOrEqualTo", PairArgs, "when_all_rows", ColumnKind.NUMERIC),
        ConstraintType("isGreaterThan", PairArgs, "when_all_rows", ColumnKind.NUMERIC),
        ConstraintType("isGreaterThanOrEqualTo", PairArgs, "when_all_rows", ColumnKind.NUMERIC),
    ]
}


@dataclass(frozen=True)
class Constraint:
    """One validated constraint of a check."""

    check: str
    index: int
    type: ConstraintType
    args: Any
    line: int | None

    @property
    def kind(self) -> str:
        """The constraint's name in the suite format (a Deequ method name)."""
        return self.type.name

    @property
    def columns(self) -> list[str]:
        """The columns the constraint reads, in order."""
        args = self.args
        if isinstance(args, UniqueArgs):
            return args.key
        if isinstance(args, ColumnsArgs | ColumnsAssert):
            return list(args.columns)
        if isinstance(args, PairArgs | PairAssert):
            return [args.column_a, args.column_b]
        column = getattr(args, "column", None)
        return [column] if column else []

    @property
    def id(self) -> str:
        """A stable, readable identifier such as `isComplete(productName)`."""
        cols = ",".join(self.columns)
        suffix = f" where {self.args.where}" if self.args.where else ""
        return f"{self.kind}({cols}){suffix}"

    @property
    def blames_rows(self) -> bool:
        """Whether a failing row can be named (and quarantined) for this constraint."""
        mode = self.type.row_level
        if mode == "always":
            return True
        if mode == "never":
            return False
        return self.args.is_all_rows()

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
    if isinstance(raw, str) and "column" in ctype.args.model_fields:
        raw = {"column": raw}
    if raw is None:
        raw = {}
    try:
        args = ctype.args.model_validate(raw)
    except ValidationError as exc:
        details = describe_validation_error(document, exc, (*loc, kind))
        raise SuiteError(f"{label} ({kind}):\n{details}") from None
    return Constraint(check_name, index, ctype, args, document.line_of((*loc, kind)))


def parse_suite(document: YamlDocument) -> Suite:
    """Validate a loaded YAML document as a suite.

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
    return Suite(
        doc.suite, document.path, doc.description, tuple(checks), tuple(doc.schema_.items())
    )


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite file.

    Raises:
        SuiteError: the file is missing, not YAML, or not a valid suite.
    """
    try:
        document = load_yaml_document(path)
    except SuiteError:
        raise
    except DocumentError as exc:
        raise SuiteError(str(exc)) from None
    return parse_suite(document)


def assertion_function(args: Any) -> Callable[[float], bool] | None:
    """The Python predicate for a constraint's assertion, or None for Deequ's default."""
    if isinstance(args, Assertion) and args.has_assertion():
        return args.holds
    return None


def type_family(type_name: str) -> str:
    """Group Spark type names whose values are interchangeable for a check: int and bigint..."""
    name = type_name.lower()
    if name in {"tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"}:
        return "integral"
    if name in {"float", "double", "real"} or name.startswith("decimal"):
        return "fractional"
    return name


def check_against_schema(suite: Suite, schema: StructType) -> None:
    """Reject constraints on unknown columns or on columns of the wrong type.

    Raises:
        SuiteError: naming the suite file and line, the constraint and the column.
    """
    import difflib

    types = {f.name: f.dataType for f in schema.fields}
    problems = []
    for column, expected in suite.expected_schema:
        if column not in types:
            problems.append(
                f"{suite.path}: schema: the table has no column {column!r} "
                f"(expected {expected}); the table has {', '.join(types)}"
            )
        elif type_family(types[column].simpleString()) != type_family(expected):
            problems.append(
                f"{suite.path}: schema: column {column!r} is {types[column].simpleString()}, "
                f"expected {expected}"
            )
    for constraint in suite.constraints:
        where = f"{suite.path}:{constraint.line}" if constraint.line else str(suite.path)
        label = f"check {constraint.check!r}, constraint {constraint.index + 1} ({constraint.kind})"
        for column in constraint.columns:
            if column not in types:
                close = difflib.get_close_matches(column, types, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    f"{where}: {label}: unknown column {column!r}; the table has "
                    f"{', '.join(types)}{hint}"
                )
                continue
            needed = constraint.type.column_kind
            actual = types[column]
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
    if problems:
        raise SuiteError("\n".join(problems))
