"""Great Expectations expectation suites (JSON, GX 0.13 to 1.x) as lakegate suites.

`gx_suite_data(path)` reads a GX suite and returns the same data a YAML suite holds, so
`parse_checks(YamlDocument(path, data, lines={}))` validates it; `gx_suite_document(path)` also
keeps the JSON line of each expectation, so errors name `suite.json:LINE`; `load_gx_suite(path)`
does both. Nothing here needs Spark.

Semantics follow GX. Where Deequ's metric differs, the translation adds what makes it agree:

- GX's column-map expectations ignore nulls. Deequ counts a null as compliant in `isContainedIn`
  and `isInRange` (same verdict, but a different ratio), as non-matching in `hasPattern`, and as
  a row in uniqueness and distinctness ratios. Translations whose ratio matters get
  `where: <column> IS NOT NULL`, so `mostly` is a share of the non-null values, as in GX.
- GX's `between` is inclusive unless `strict_min`/`strict_max`: inclusive bounds become `min`/`max`,
  strict ones `gt`/`lt`.
- `expect_column_stdev_to_be_between`: GX uses the sample standard deviation (n - 1), Deequ's
  `hasStandardDeviation` the population one (n); on n rows Deequ's value is smaller by
  sqrt((n - 1) / n). This is the one difference left as it is.
- `expect_column_values_to_be_of_type` checks the column's declared type, as GX does; it becomes
  the suite's `schema:` entry, which lakegate checks before Spark reads a row (a mismatch stops
  the run with exit 2 instead of failing one expectation).
- `expect_column_median_to_be_between` and quantiles are exact in GX (`hasExactQuantile`); with
  `allow_relative_error` they are Deequ's approximate quantile (`hasApproxQuantile`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from checks.constraint_types import CONSTRAINT_TYPES
from checks.row_rules import quote
from checks.suite import Suite, SuiteError, parse_checks
from lakegate_config.yaml_document import Location, YamlDocument

__all__ = [
    "SUPPORTED_EXPECTATIONS",
    "GxTranslation",
    "gx_suite_data",
    "gx_suite_document",
    "is_gx_suite_file",
    "load_gx_suite",
    "suite_yaml",
    "translate_gx_suite",
]

# Keyword arguments GX accepts on every expectation that change nothing in the verdict.
_IGNORED_KWARGS = {
    "result_format",
    "include_config",
    "catch_exceptions",
    "meta",
    "notes",
    "description",
    "batch_id",
    "domain_kwargs",
}


class _Unsupported(Exception):
    """An expectation, or one of its arguments, that has no translation (yet)."""


@dataclass(frozen=True)
class _Expectation:
    index: int
    type: str
    kwargs: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.kwargs.get(name, default)

    def require(self, name: str) -> Any:
        if self.kwargs.get(name) is None:
            raise _Unsupported(f"missing argument {name!r}")
        return self.kwargs[name]

    @property
    def column(self) -> str:
        return str(self.require("column"))

    def require_list(self, name: str) -> list[Any]:
        value = self.require(name)
        if not isinstance(value, list):
            raise _Unsupported(f"{name} must be a list, got {value!r}")
        return value

    def choice(self, name: str, default: str) -> str:
        value = self.kwargs.get(name, default)
        if not isinstance(value, str):
            raise _Unsupported(f"{name} must be text, got {value!r}")
        return value

    @property
    def mostly(self) -> float | None:
        mostly = self.kwargs.get("mostly")
        if mostly is None or float(_number(mostly, "mostly")) >= 1.0:
            return None
        if not 0.0 <= float(mostly) <= 1.0:
            raise _Unsupported(f"mostly must be between 0 and 1, got {mostly!r}")
        return float(mostly)


Constraint = dict[str, Any]
_Translator = Callable[[_Expectation], list[Constraint]]


def _not_null(*columns: str) -> str:
    return " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)


def _needs(kind: str, constraint: Constraint) -> Constraint:
    """`constraint` when the suite format has `kind` with these arguments; else 'not supported yet'.

    Raises:
        _Unsupported: the type, or one of the arguments, is not in `CONSTRAINT_TYPES` yet.
    """
    ctype = CONSTRAINT_TYPES.get(kind)
    if ctype is None:
        raise _Unsupported(
            f"needs the constraint type {kind!r}, which this lakegate's suite format does not "
            "support yet"
        )
    missing = sorted(set(constraint) - set(ctype.args.model_fields))
    if missing:
        raise _Unsupported(
            f"needs {kind!r} with {', '.join(missing)}, which this lakegate's suite format does "
            "not support yet"
        )
    return {kind: constraint}


def _number(value: Any, name: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unsupported(f"{name} must be a number, got {value!r}")
    return value


def _bounds(
    e: _Expectation, low: str = "min_value", high: str = "max_value"
) -> dict[str, int | float]:
    """GX's inclusive (or strict) bounds as a lakegate assertion."""
    assertion: dict[str, int | float] = {}
    if e.get(low) is not None:
        key = "gt" if e.get("strict_min") else "min"
        assertion[key] = _number(e.get(low), low)
    if e.get(high) is not None:
        key = "lt" if e.get("strict_max") else "max"
        assertion[key] = _number(e.get(high), high)
    if not assertion:
        raise _Unsupported(f"give {low}, {high} or both")
    return assertion


def _with_where(constraint: Constraint, where: str | None) -> Constraint:
    return {**constraint, "where": where} if where else constraint


def _combine_where(e: _Expectation, where: str | None) -> str | None:
    """GX's `row_condition` (Spark SQL parser only) and a translation's own filter, joined."""
    condition = e.get("row_condition")
    if condition is None:
        return where
    parser = e.get("condition_parser")
    if parser != "spark":
        raise _Unsupported(
            f"row_condition with condition_parser {parser!r}; only 'spark' (a Spark SQL "
            "condition) can be translated"
        )
    return f"({condition}) AND ({where})" if where else str(condition)


def _row_count_between(e: _Expectation) -> list[Constraint]:
    return [{"hasSize": _bounds(e)}]


def _row_count_equal(e: _Expectation) -> list[Constraint]:
    return [{"hasSize": {"eq": _number(e.require("value"), "value")}}]


def _not_null_values(e: _Expectation) -> list[Constraint]:
    if e.mostly is None:
        return [{"isComplete": {"column": e.column}}]
    return [{"hasCompleteness": {"column": e.column, "min": e.mostly}}]


def _unique(e: _Expectation) -> list[Constraint]:
    where = _not_null(e.column)  # GX ignores nulls; Deequ would count them as rows
    if e.mostly is None:
        return [{"isUnique": {"column": e.column, "where": where}}]
    return [{"hasUniqueness": {"columns": [e.column], "min": e.mostly, "where": where}}]


def _compound_unique(e: _Expectation) -> list[Constraint]:
    columns = [str(c) for c in e.require_list("column_list")]
    ignore = e.choice("ignore_row_if", "all_values_are_missing")
    where = {
        "all_values_are_missing": "NOT ("
        + " AND ".join(f"{quote(c)} IS NULL" for c in columns)
        + ")",
        "any_value_is_missing": _not_null(*columns),
        "never": None,
    }.get(ignore, "")
    if where == "":
        raise _Unsupported(f"ignore_row_if {ignore!r}")
    if e.mostly is None:
        return [{"isUnique": _with_where({"columns": columns}, where)}]
    return [{"hasUniqueness": _with_where({"columns": columns, "min": e.mostly}, where)}]


def _in_set(e: _Expectation) -> list[Constraint]:
    values = list(e.require_list("value_set"))
    if not values:
        raise _Unsupported("an empty value_set")
    if e.mostly is None:
        return [{"isContainedIn": {"column": e.column, "values": values}}]
    return [
        {
            "isContainedIn": {
                "column": e.column,
                "values": values,
                "min": e.mostly,
                "where": _not_null(e.column),
            }
        }
    ]


def _distinct_in_set(e: _Expectation) -> list[Constraint]:
    # Every distinct non-null value is in the set <=> every non-null value is.
    values = list(e.require_list("value_set"))
    if not values:
        raise _Unsupported("an empty value_set")
    return [{"isContainedIn": {"column": e.column, "values": values}}]


def _values_between(e: _Expectation) -> list[Constraint]:
    for name in ("min_value", "max_value"):
        if e.get(name) is not None:
            _number(e.get(name), name)  # dates and strings have no translation
    if e.get("min_value") is None and e.get("max_value") is None:
        raise _Unsupported("give min_value, max_value or both")
    strict = bool(e.get("strict_min") or e.get("strict_max"))
    if e.mostly is None and not strict:
        bounds = {"min": e.get("min_value"), "max": e.get("max_value")}
        return [
            {
                "isInRange": {
                    "column": e.column,
                    **{k: v for k, v in bounds.items() if v is not None},
                }
            }
        ]
    if e.mostly is None:
        bounds = _bounds(e)
        return [_needs("isInRange", {"column": e.column, **bounds})]  # gt/lt: exclusive bounds
    ops = {"min": ">=", "gt": ">", "max": "<=", "lt": "<"}
    condition = " AND ".join(f"{quote(e.column)} {ops[k]} {v!r}" for k, v in _bounds(e).items())
    return [
        _needs(
            "satisfies",
            {
                "condition": condition,
                "name": f"{e.column} between",
                "min": e.mostly,
                "where": _not_null(e.column),
            },
        )
    ]


def _match_regex(e: _Expectation) -> list[Constraint]:
    constraint: Constraint = {
        "column": e.column,
        "pattern": str(e.require("regex")),
        "where": _not_null(e.column),  # Deequ counts a null as not matching; GX ignores it
    }
    if e.mostly is not None:
        constraint["min"] = e.mostly
    return [{"hasPattern": constraint}]


def _aggregate(kind: str) -> _Translator:
    return lambda e: [{kind: {"column": e.column, **_bounds(e)}}]


def _median(e: _Expectation) -> list[Constraint]:
    kind = "hasApproxQuantile" if e.get("allow_relative_error") else "hasExactQuantile"
    return [_needs(kind, {"column": e.column, "quantile": 0.5, **_bounds(e)})]


def _quantiles(e: _Expectation) -> list[Constraint]:
    ranges = e.require("quantile_ranges")
    quantiles = ranges.get("quantiles") if isinstance(ranges, dict) else None
    value_ranges = ranges.get("value_ranges") if isinstance(ranges, dict) else None
    if (
        not isinstance(quantiles, list)
        or not isinstance(value_ranges, list)
        or not quantiles
        or len(quantiles) != len(value_ranges)
        or not all(isinstance(r, list) and len(r) == 2 for r in value_ranges)
    ):
        raise _Unsupported(
            "quantile_ranges needs quantiles and as many value_ranges, each [low, high]"
        )
    kind = "hasApproxQuantile" if e.get("allow_relative_error") else "hasExactQuantile"
    constraints = []
    for quantile, (low, high) in zip(quantiles, value_ranges, strict=True):
        bounds = {k: _number(v, k) for k, v in (("min", low), ("max", high)) if v is not None}
        if not bounds:
            raise _Unsupported(f"quantile {quantile}: the value range has no bound")
        constraints.append(
            _needs(kind, {"column": e.column, "quantile": _number(quantile, "quantile"), **bounds})
        )
    return constraints


def _lengths_between(e: _Expectation) -> list[Constraint]:
    bounds = _bounds(e)
    if e.mostly is not None or "gt" in bounds or "lt" in bounds:
        ops = {"min": ">=", "gt": ">", "max": "<=", "lt": "<"}
        condition = " AND ".join(
            f"length({quote(e.column)}) {ops[k]} {v!r}" for k, v in bounds.items()
        )
        extra = {"min": e.mostly} if e.mostly is not None else {}
        return [
            _needs(
                "satisfies",
                {
                    "condition": condition,
                    "name": f"{e.column} length between",
                    "where": _not_null(e.column),
                    **extra,
                },
            )
        ]
    constraints: list[Constraint] = []
    if "min" in bounds:
        constraints.append({"hasMinLength": {"column": e.column, "min": bounds["min"]}})
    if "max" in bounds:
        constraints.append({"hasMaxLength": {"column": e.column, "max": bounds["max"]}})
    return constraints


def _unique_proportion(e: _Expectation) -> list[Constraint]:
    # GX: distinct non-null values / non-null values, which is Deequ's distinctness of the
    # non-null rows.
    return [
        {"hasDistinctness": {"columns": [e.column], **_bounds(e), "where": _not_null(e.column)}}
    ]


def _a_greater_than_b(e: _Expectation) -> list[Constraint]:
    a, b = str(e.require("column_A")), str(e.require("column_B"))
    kind = "isGreaterThanOrEqualTo" if e.get("or_equal") else "isGreaterThan"
    ignore = e.choice("ignore_row_if", "both_values_are_missing")
    where = {
        "both_values_are_missing": f"NOT ({quote(a)} IS NULL AND {quote(b)} IS NULL)",
        "either_value_is_missing": _not_null(a, b),
        "neither": None,
    }.get(ignore, "")
    if where == "":
        raise _Unsupported(f"ignore_row_if {ignore!r}")
    constraint: Constraint = {"column_a": a, "column_b": b}
    if e.mostly is not None:
        constraint["min"] = e.mostly
    return [{kind: _with_where(constraint, where)}]


TRANSLATIONS: dict[str, _Translator] = {
    "expect_table_row_count_to_be_between": _row_count_between,
    "expect_table_row_count_to_equal": _row_count_equal,
    "expect_column_values_to_not_be_null": _not_null_values,
    "expect_column_values_to_be_unique": _unique,
    "expect_compound_columns_to_be_unique": _compound_unique,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_distinct_values_to_be_in_set": _distinct_in_set,
    "expect_column_values_to_be_between": _values_between,
    "expect_column_values_to_match_regex": _match_regex,
    "expect_column_mean_to_be_between": _aggregate("hasMean"),
    "expect_column_median_to_be_between": _median,
    "expect_column_min_to_be_between": _aggregate("hasMin"),
    "expect_column_max_to_be_between": _aggregate("hasMax"),
    "expect_column_sum_to_be_between": _aggregate("hasSum"),
    "expect_column_stdev_to_be_between": _aggregate("hasStandardDeviation"),
    "expect_column_quantile_values_to_be_between": _quantiles,
    "expect_column_value_lengths_to_be_between": _lengths_between,
    "expect_column_proportion_of_unique_values_to_be_between": _unique_proportion,
    "expect_column_pair_values_A_to_be_greater_than_B": _a_greater_than_b,
    # handled apart: it becomes the suite's `schema:` entry
    "expect_column_values_to_be_of_type": lambda e: [],
}
SUPPORTED_EXPECTATIONS = tuple(sorted(TRANSLATIONS))

# GX type names (Spark's, pandas/numpy's, Python's) -> Spark SQL type names for `schema:`.
_GX_TYPES = {
    "stringtype": "string", "str": "string", "string": "string", "object": "string",
    "varchar": "string", "integertype": "int", "int": "int", "int32": "int", "integer": "int",
    "longtype": "bigint", "int64": "bigint", "bigint": "bigint", "long": "bigint",
    "shorttype": "smallint", "int16": "smallint", "smallint": "smallint",
    "bytetype": "tinyint", "int8": "tinyint", "tinyint": "tinyint",
    "doubletype": "double", "float64": "double", "double": "double", "float": "double",
    "floattype": "float", "float32": "float", "decimaltype": "decimal", "decimal": "decimal",
    "booleantype": "boolean", "bool": "boolean", "boolean": "boolean",
    "datetype": "date", "date": "date", "timestamptype": "timestamp",
    "timestamp": "timestamp", "datetime64": "timestamp", "datetime64[ns]": "timestamp",
}  # fmt: skip


def _spark_type(e: _Expectation) -> str:
    name = str(e.require("type_"))
    spark_type = _GX_TYPES.get(name.lower())
    if spark_type is None:
        raise _Unsupported(f"type_ {name!r}; known types: {', '.join(sorted(_GX_TYPES))}")
    return spark_type


def _read_json(path: Path) -> tuple[Any, dict[Location, int]]:
    """The suite's JSON and the line of each value (JSON is YAML; a few files are not).

    A file YAML cannot read gets the line of its `"expectations"` key for every expectation.
    """
    from lakegate_config.yaml_document import (
        DocumentError,
        HostileDocument,
        load_yaml_document,
        read_document_text,
    )

    try:
        text = read_document_text(path)
    except DocumentError as exc:
        raise SuiteError(str(exc)) from None
    too_deep = False
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:  # YAML's reader below names the line where it goes too deep
        data, too_deep = None, True
    try:
        document: YamlDocument | None = load_yaml_document(path)
    except HostileDocument as exc:
        raise SuiteError(str(exc)) from None
    except DocumentError:  # valid JSON that YAML does not read (a tab, a key over 1024 chars)
        document = None
    if too_deep:
        raise SuiteError(f"{path}:1: nested too deeply to read")
    if document is not None:
        return data, dict(document.lines)
    key = text.find('"expectations"')
    return data, {(): 1, ("expectations",): text.count("\n", 0, max(key, 0)) + 1}


def _line(lines: dict[Location, int], *location: str | int) -> int:
    """The line of `location`, else of its closest parent (the root is at line 1 at worst)."""
    loc = tuple(location)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _expectations(path: Path, data: Any, lines: dict[Location, int]) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise SuiteError(
            f"{path}:{_line(lines)}: not a Great Expectations suite: expected a JSON object "
            "with an 'expectations' list (GX 0.13 to 1.x)"
        )
    return list(data["expectations"])


def _severity_level(entry: Mapping[str, Any]) -> str:
    """GX 1.x `severity` (critical, warning, info) as a lakegate level."""
    meta = entry.get("meta")
    meta_severity = meta.get("severity") if isinstance(meta, dict) else None
    severity = str(entry.get("severity") or meta_severity or "critical")
    return "error" if severity.lower() in {"critical", "error"} else "warning"


@dataclass(frozen=True)
class GxTranslation:
    """A translated GX suite: the lakegate document and where each constraint came from."""

    document: YamlDocument
    origins: dict[tuple[int, int], int]  # (check index, constraint index) -> expectation index
    notes: dict[tuple[int, int], str]  # the same keys -> "expect_... (expectation N)"


@dataclass(frozen=True)
class _TranslatedEntry:
    """One expectation translated: its constraints, or a column type for the schema."""

    kind: str
    line: int
    level: str
    constraints: list[Constraint]
    column_type: tuple[str, str] | None = None


def _translate_entry(
    path: Path, source_lines: dict[Location, int], index: int, entry: object
) -> _TranslatedEntry:
    """Expectation `index` of the suite at `path` as lakegate constraints (or a column type)."""
    line = _line(source_lines, "expectations", index)
    where = f"{path}:{line}"
    kind = (entry.get("expectation_type") or entry.get("type")) if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(kind, str) or not kind:
        raise SuiteError(
            f"{where}: expectation {index + 1}: no expectation_type (or type) naming it"
        )
    label = f"{where}: expectation {index + 1} ({kind})"
    translate = TRANSLATIONS.get(kind)
    if translate is None:
        raise SuiteError(
            f"{label}: not supported; lakegate translates {', '.join(SUPPORTED_EXPECTATIONS)}"
            " (or write the check as a lakegate YAML constraint)"
        )
    kwargs = entry.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{label}: kwargs must be a JSON object of its arguments")
    expectation = _Expectation(index, kind, kwargs)
    level = _severity_level(entry)
    try:
        if kind == "expect_column_values_to_be_of_type":
            column_type = (expectation.column, _spark_type(expectation))
            return _TranslatedEntry(kind, line, level, [], column_type)
        translated = []
        for constraint in translate(expectation):
            ((ctype, args),) = constraint.items()
            where_filter = _combine_where(expectation, args.get("where"))
            plain = {k: v for k, v in args.items() if k != "where"}
            translated.append({ctype: _with_where(plain, where_filter)})
    except _Unsupported as exc:
        raise SuiteError(f"{label}: not supported: {exc}") from None
    return _TranslatedEntry(kind, line, level, translated)


def translate_gx_suite(path: str | Path) -> GxTranslation:
    """Translate a GX suite JSON; every constraint remembers its expectation.

    Raises:
        SuiteError: not a GX suite, or an expectation with no translation.
    """
    path = Path(path)
    data, source_lines = _read_json(path)
    expectations = _expectations(path, data, source_lines)
    name = data.get("expectation_suite_name") or data.get("name") or path.stem
    checks: dict[str, list[Constraint]] = {"error": [], "warning": []}
    origins: dict[str, list[int]] = {"error": [], "warning": []}
    origin_lines: dict[str, list[int]] = {"error": [], "warning": []}
    schema: dict[str, str] = {}
    kinds: dict[int, str] = {}
    for index, entry in enumerate(expectations):
        translated = _translate_entry(path, source_lines, index, entry)
        if translated.column_type is not None:
            column, spark_type = translated.column_type
            schema[column] = spark_type
            continue
        kinds[index] = translated.kind
        for constraint in translated.constraints:
            checks[translated.level].append(constraint)
            origins[translated.level].append(index)
            origin_lines[translated.level].append(translated.line)
    document: dict[str, Any] = {
        "suite": str(name),
        "description": f"translated from the Great Expectations suite {path.name}",
    }
    if schema:
        document["schema"] = schema
    document["checks"] = []
    lines: dict[Location, int] = {(): _line(source_lines)}
    notes: dict[tuple[int, int], str] = {}
    sources: dict[tuple[int, int], int] = {}
    for level, constraints in checks.items():
        if not constraints:
            continue
        check_index = len(document["checks"])
        document["checks"].append(
            {"name": f"expectations ({level})", "level": level, "constraints": constraints}
        )
        for i, (origin, line) in enumerate(zip(origins[level], origin_lines[level], strict=True)):
            sources[(check_index, i)] = origin
            notes[(check_index, i)] = f"{kinds[origin]} (expectation {origin + 1})"
            lines[("checks", check_index, "constraints", i)] = line
    if not document["checks"]:
        # Only type expectations: the schema decides; a check needs one constraint.
        document["checks"].append(
            {
                "name": "expectations (error)",
                "level": "error",
                "constraints": [{"hasSize": {"min": 0}}],
            }
        )
        notes[(0, 0)] = "no row expectation: the schema above decides"
    return GxTranslation(YamlDocument(path=path, data=document, lines=lines), sources, notes)


def gx_suite_document(path: str | Path) -> YamlDocument:
    """A GX suite as a lakegate suite document, each constraint at its expectation's JSON line.

    Raises:
        SuiteError: not a GX suite, or an expectation with no translation (named with its
            index and line), before any Spark starts.
    """
    return translate_gx_suite(path).document


def gx_suite_data(path: str | Path) -> dict[str, Any]:
    """The lakegate suite data (what a YAML suite holds) translated from a GX suite JSON.

    Raises:
        SuiteError: not a GX suite, or an expectation with no translation.
    """
    data: dict[str, Any] = gx_suite_document(path).data
    return data


def load_gx_suite(path: str | Path) -> Suite:
    """Load and validate a GX expectation-suite JSON file as a lakegate `Suite`.

    Raises:
        SuiteError: not a GX suite, an unsupported expectation, or an invalid translation.
    """
    return parse_checks(gx_suite_document(path))


def is_gx_suite_file(path: str | Path) -> bool:
    """Whether a suite file is GX JSON (by its `.json` suffix) rather than lakegate YAML."""
    return Path(path).suffix.lower() == ".json"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def suite_yaml(path: str | Path) -> str:
    """The GX suite at `path` as lakegate YAML, each constraint commented with its expectation.

    Raises:
        SuiteError: as `gx_suite_document`; the translation is also validated as a suite.
    """
    translation = translate_gx_suite(path)
    document, notes = translation.document, translation.notes
    parse_checks(document)  # never write a translation that would not load
    data = document.data
    out = [
        f"# Translated by `lakegate convert` from {document.path.name} (Great Expectations).",
        f"suite: {_flow(data['suite'])}",
        f"description: {_flow(data['description'])}",
    ]
    if "schema" in data:
        out.append("schema:  # expect_column_values_to_be_of_type")
        out += [f"  {_flow(column)}: {_flow(kind)}" for column, kind in data["schema"].items()]
    out.append("checks:")
    for ci, check in enumerate(data["checks"]):
        out += [f"  - name: {_flow(check['name'])}", f"    level: {check['level']}"]
        out.append("    constraints:")
        for i, constraint in enumerate(check["constraints"]):
            out.append(f"      - {_flow(constraint)}  # {notes[(ci, i)]}")
    return "\n".join(out) + "\n"
