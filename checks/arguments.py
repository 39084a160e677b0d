"""The arguments constraints take in a suite: pydantic models, validated before Spark starts.

Assertions are data (`eq`, `min`, `max`, `gt`, `lt`, `between`), never code. `eq` is exact, as
Deequ compares; a suite that wants a tolerance says so with `tolerance`.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# Spark's decimals hold at most this many digits; a bound with more has no exact SQL literal.
MAX_DECIMAL_DIGITS = 38


class ConstraintArgs(BaseModel):
    """What every constraint takes: an optional SQL filter and a hint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    where: str | None = Field(
        default=None, description="SQL filter; the constraint sees only these rows"
    )
    hint: str | None = None

    def read_columns(self) -> list[str]:
        """The columns the constraint reads, in order."""
        column = getattr(self, "column", None)
        return [column] if column else []

    def subject(self) -> str:
        """What the constraint is about, for its id: its columns, or a rule's name."""
        return ",".join(self.read_columns())

    @model_validator(mode="before")
    @classmethod
    def _unquote_column_names(cls, data: Any) -> Any:
        """Accept `` `a.b` `` as well as `a.b`: a column is always named exactly, never parsed."""
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for key in ("column", "column_a", "column_b"):
            if isinstance(fixed.get(key), str):
                fixed[key] = unquote_column(fixed[key])
        if isinstance(fixed.get("columns"), list):
            fixed["columns"] = [
                unquote_column(c) if isinstance(c, str) else c for c in fixed["columns"]
            ]
        return fixed


def unquote_column(name: str) -> str:
    """`` `a.b` `` -> `a.b` (a back-quoted spelling of a column name); other names unchanged."""
    if len(name) >= 2 and name.startswith("`") and name.endswith("`"):
        inner = name[1:-1]
        if "`" not in inner.replace("``", ""):
            return inner.replace("``", "`")
    return name


def decimal_digits(value: Decimal) -> int:
    """The precision a SQL decimal literal of `value` needs (digits before and after the point)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return len(digits) + exponent if exponent >= 0 else max(len(digits), -exponent)


def _exact_bound(value: Any) -> Any:
    """A bound kept as written: an int, a `Decimal` (from quoted text) or a float.

    Booleans, NaN and numbers Spark's decimals cannot hold are refused; quoted text such as
    `"1.000000000000000001"` keeps every digit (a YAML float would round it to a double).
    """
    number: int | Decimal | float | None
    if value is None or isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise ValueError("a bound is a number, not true/false")
    elif isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} is not a number")
    _check_representable(number, value)
    return number


def _check_representable(number: int | Decimal | float | None, value: Any) -> None:
    """Refuse NaN, non-finite decimals, and numbers with more digits than a SQL decimal holds."""
    if isinstance(number, float) and math.isnan(number):
        raise ValueError("NaN is not a bound")
    if isinstance(number, Decimal) and not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number; use .inf or leave the bound out")
    digits = (
        len(str(abs(number)))
        if isinstance(number, int)
        else decimal_digits(number)
        if isinstance(number, Decimal)
        else 0
    )
    if digits > MAX_DECIMAL_DIGITS:
        raise ValueError(f"{value} has more than {MAX_DECIMAL_DIGITS} digits")


# A number bound compared exactly by Spark: as written, never rounded through a double.
ExactBound = Annotated[int | Decimal | float | None, BeforeValidator(_exact_bound)]


def scalar_text(value: str | int | float | bool) -> str:
    """A YAML scalar as the text a string column would hold (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bound_text(value: int | Decimal | float) -> str:
    """A bound for messages: as written (`1.000000000000000001`, `0.5`, `10`)."""
    if isinstance(value, float):
        return f"{value:g}"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


class Assertion(ConstraintArgs):
    """A test on a metric value; all given bounds must hold."""

    eq: float | None = None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    between: tuple[float, float] | None = None
    ne: float | None = None
    not_between: tuple[float, float] | None = None
    tolerance: float | None = Field(default=None, ge=0, description="absolute, for eq only")

    def has_assertion(self) -> bool:
        """Whether any bound is given."""
        return any(v is not None for v in (self.eq, *self._others()))

    def _others(self) -> tuple[Any, ...]:
        """Every bound but `eq`."""
        return (self.min, self.max, self.gt, self.lt, self.between, self.ne, self.not_between)

    def holds(self, value: float) -> bool:
        """Evaluate the assertion on a metric value (NaN, a missing value, holds no bound)."""
        if math.isnan(value):
            return False
        checks = [
            self.eq is None or self._equal(value, self.eq),
            self.min is None or value >= self.min,
            self.max is None or value <= self.max,
            self.gt is None or value > self.gt,
            self.lt is None or value < self.lt,
            self.between is None or self.between[0] <= value <= self.between[1],
            self.ne is None or value != self.ne,
            self.not_between is None or not self.not_between[0] <= value <= self.not_between[1],
        ]
        return all(checks)

    def _equal(self, value: float, expected: float) -> bool:
        # Exact, as Deequ compares; a tolerance only when the suite asks for one.
        if self.tolerance is None:
            return value == expected
        return math.isclose(value, expected, rel_tol=0.0, abs_tol=self.tolerance)

    def describe(self) -> str:
        """Human text of the assertion, such as `>= 0.5`."""
        parts = []
        if self.eq is not None:
            within = f" ± {self.tolerance:g}" if self.tolerance is not None else ""
            parts.append(f"== {self.eq:g}{within}")
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
        if self.ne is not None:
            parts.append(f"!= {self.ne:g}")
        if self.not_between is not None:
            parts.append(f"not between {self.not_between[0]:g} and {self.not_between[1]:g}")
        return " and ".join(parts) or "== 1"

    def is_all_rows(self) -> bool:
        """Whether the assertion is Deequ's default for ratio constraints: every row complies.

        `eq: 1` with a tolerance admits failing rows (a share within the tolerance passes), so
        it is a threshold like `min`, not "every row": no row is blamed for it.
        """
        return not self.has_assertion() or (
            self.eq == 1 and not self.tolerance and not any(v is not None for v in self._others())
        )

    @model_validator(mode="after")
    def _between_ordered(self) -> Assertion:
        for name in ("between", "not_between"):
            bounds = getattr(self, name)
            if bounds is not None and bounds[0] > bounds[1]:
                raise ValueError(f"{name}: the lower bound is greater than the upper bound")
        return self


class RequiredAssertion(Assertion):
    """An assertion that must name at least one bound."""

    @model_validator(mode="after")
    def _needs_bound(self) -> RequiredAssertion:
        if not self.has_assertion():
            raise ValueError(
                "missing assertion: give one of eq, min, max, gt, lt, between, ne, not_between"
            )
        return self


class ColumnArgs(ConstraintArgs):
    """Arguments of a one-column row predicate."""

    column: str


class ColumnsArgs(ConstraintArgs):
    """Arguments of a several-column row predicate."""

    columns: list[str] = Field(min_length=1)

    def read_columns(self) -> list[str]:
        """The columns, in order."""
        return list(self.columns)


class UniqueArgs(ConstraintArgs):
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

    def read_columns(self) -> list[str]:
        """The key columns."""
        return self.key


class SizeAssert(RequiredAssertion):
    """An assertion on the row count."""


class ColumnAssert(RequiredAssertion):
    """A column and an assertion on its metric."""

    column: str


class ColumnsAssert(RequiredAssertion):
    """Columns and an assertion on their metric."""

    columns: list[str] = Field(min_length=1)

    def read_columns(self) -> list[str]:
        """The columns, in order."""
        return list(self.columns)


class ColumnRatio(Assertion):
    """A column and an optional assertion on the share of complying rows."""

    column: str


class ContainedInArgs(Assertion):
    """A column and the values it may hold."""

    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class ContainedInTableArgs(Assertion):
    """A key (one column or several) whose values must be keys of a reference table.

    `table` is read as lakegate reads any input (`delta:PATH`, `parquet:PATH`, ..., a path
    whose format shows, or a catalog table); `key` names the reference table's columns, one
    per key column, and defaults to the same names. A row with a NULL in its key complies
    (Deequ's `isContainedIn` counts NULL as contained; SQL's MATCH SIMPLE).
    """

    column: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    table: str = Field(min_length=1, description="reference table: FORMAT:PATH, path or name")
    key: str | list[str] | None = Field(default=None, description="the reference table's key")

    @model_validator(mode="before")
    @classmethod
    def _unquote_key(cls, data: Any) -> Any:
        """The reference key's names are exact, as the table's own (`` `a.b` `` is `a.b`)."""
        if not isinstance(data, dict):
            return data
        key = data.get("key")
        if isinstance(key, str):
            return data | {"key": unquote_column(key)}
        if isinstance(key, list):
            return data | {"key": [unquote_column(k) if isinstance(k, str) else k for k in key]}
        return data

    @model_validator(mode="after")
    def _key_shape(self) -> ContainedInTableArgs:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give either column or columns")
        if self.key is not None and len(self.reference_key) != len(self.own_key):
            raise ValueError(
                f"key names {len(self.reference_key)} column(s) of the reference table but the "
                f"constraint reads {len(self.own_key)}; give one reference column per key column"
            )
        return self

    @property
    def own_key(self) -> list[str]:
        """The key columns of the table being validated."""
        return [self.column] if self.column is not None else list(self.columns or [])

    @property
    def reference_key(self) -> list[str]:
        """The reference table's key columns, in the order of `own_key`."""
        if self.key is None:
            return self.own_key
        return [self.key] if isinstance(self.key, str) else list(self.key)

    def read_columns(self) -> list[str]:
        """The key columns of the table being validated."""
        return self.own_key


class InRangeArgs(ConstraintArgs):
    """A numeric column and its bounds, inclusive unless `include_min`/`include_max` say not.

    Bounds are kept as written (`ExactBound`) and compared by Spark in the column's own
    arithmetic: a DECIMAL(38,18) or a BIGINT beyond 2^53 is never rounded through a double.
    """

    column: str
    min: ExactBound = None
    max: ExactBound = None
    include_min: bool = True
    include_max: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> InRangeArgs:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class SatisfiesArgs(Assertion):
    """A named SQL boolean condition and an optional assertion on the share of rows meeting it."""

    condition: str = Field(min_length=1, description="Spark SQL boolean expression")
    name: str = Field(min_length=1, description="names the rule in reports and quarantine")

    def subject(self) -> str:
        """The rule's name."""
        return self.name


class HistogramArgs(RequiredAssertion):
    """A column, one of its values (null is a value of its own) and an assertion on its share.

    `measure: absolute` asserts on the number of rows holding the value, `ratio` (the default)
    on their share of all rows, as Deequ's `Histogram` counts them (values compared as text).
    """

    column: str
    value: str | int | float | bool | None
    measure: Literal["absolute", "ratio"] = "ratio"

    def histogram_key(self, null_key: str) -> str:
        """The key Deequ's histogram files the value under (`null_key` for null)."""
        if self.value is None:
            return null_key
        return scalar_text(self.value)


class PatternArgs(Assertion):
    """A string column and a regular expression it must contain."""

    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
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

    def read_columns(self) -> list[str]:
        """Both columns, a first."""
        return [self.column_a, self.column_b]


class PairAssert(RequiredAssertion):
    """Two columns and an assertion on a metric of the pair."""

    column_a: str
    column_b: str

    def read_columns(self) -> list[str]:
        """Both columns, a first."""
        return [self.column_a, self.column_b]


class SqlMetricArgs(RequiredAssertion):
    """A named Spark SQL query returning one number, and an assertion on it.

    `{table}` in the query names the table being validated (a temporary view lakegate
    registers); the query runs on its own, so it filters inside itself, never with `where`.
    """

    name: str = Field(min_length=1, description="names the rule in reports")
    query: str = Field(min_length=1, description="Spark SQL; one row, one numeric column")

    def subject(self) -> str:
        """The rule's name."""
        return self.name

    @model_validator(mode="after")
    def _no_filter(self) -> SqlMetricArgs:
        if self.where is not None:
            raise ValueError("customSql takes no `where`; filter inside the query")
        return self
