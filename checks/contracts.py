"""ODCS v3 data contracts (Open Data Contract Standard) as lakegate suites.

A contract (`apiVersion: v3.x`, `kind: DataContract`) is parsed with ODCS's own pydantic model
(`open_data_contract_standard`), then one of its schema objects is mapped to the data of a
lakegate suite, which `parse_checks` validates as any YAML suite: the gate, the quarantine and
the reports are the suite's. Every constraint remembers the contract rule it came from (its
path, such as `schema[0].properties[2].quality[0]`, and the rule's id, name, dimension,
businessImpact, tags and severity), carried into report.json.

What cannot run (a `type: text` rule, a custom rule of another engine, a `timezone` option...) is
refused before Spark with the contract's file:line and the field's path, or, with
`allow_unexecutable`, listed in `Suite.skipped` (report.json's `skipped`). docs/contracts.md
says how each form maps and where ODCS's semantics differ from Deequ's. Nothing here needs Spark.
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import (
    DataQuality,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
)
from pydantic import BaseModel, ValidationError

from checks.row_rules import quote
from checks.suite import Check, Suite, SuiteError, constraint_problem, parse_checks
from lakegate_config.yaml_document import Location, YamlDocument, load_yaml_document

__all__ = [
    "LIBRARY_METRICS",
    "ContractTranslation",
    "contract_suite",
    "is_contract_file",
    "json_schema_problems",
    "level_of",
    "load_contract",
    "path_text",
    "translate_contract",
]

LIBRARY_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
_PROPERTY_METRICS = {"nullValues", "missingValues", "invalidValues"}
_ARGUMENTS = {
    ("nullValues", "property"): set(),
    ("missingValues", "property"): {"missingValues"},
    ("invalidValues", "property"): {"validValues", "pattern"},
    ("duplicateValues", "property"): set(),
    ("duplicateValues", "schema"): {"properties"},
    ("rowCount", "schema"): set(),
}
# ODCS operator -> lakegate assertion key.
OPERATORS = {
    "mustBe": "eq",
    "mustNotBe": "ne",
    "mustBeGreaterThan": "gt",
    "mustBeGreaterOrEqualTo": "min",
    "mustBeLessThan": "lt",
    "mustBeLessOrEqualTo": "max",
    "mustBeBetween": "between",
    "mustNotBeBetween": "not_between",
}
_ERROR_SEVERITIES = {"error", "critical", "fatal", "blocker", "high", "major", "medium"}
_WARNING_SEVERITIES = {"warning", "warn", "info", "low", "minor", "trivial"}
_UNITS = {
    "rows": "rows",
    "row": "rows",
    "percent": "percent",
    "percentage": "percent",
    "%": "percent",
}
_OPTIONS = {
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf",
}  # fmt: skip
_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_UNEXECUTABLE_OPTIONS = {
    "timezone", "defaultTimezone", "maxItems", "minItems", "uniqueItems", "maxProperties",
    "minProperties", "required", "dimensions", "elementType", "distanceMetric",
    "embeddingModel", "embeddingModelVersion", "normalized",
}  # fmt: skip
_PHYSICAL_TYPES = {
    "string": "string", "varchar": "string", "char": "string", "text": "string",
    "nvarchar": "string", "nchar": "string", "clob": "string",
    "int": "int", "integer": "int", "int4": "int", "int32": "int",
    "bigint": "bigint", "long": "bigint", "int8": "bigint", "int64": "bigint",
    "smallint": "smallint", "short": "smallint", "int2": "smallint", "int16": "smallint",
    "tinyint": "tinyint", "byte": "tinyint",
    "double": "double", "float8": "double", "float64": "double", "double precision": "double",
    "float": "float", "real": "float", "float4": "float", "float32": "float",
    "decimal": "decimal", "numeric": "decimal", "boolean": "boolean", "bool": "boolean",
    "date": "date", "timestamp": "timestamp", "datetime": "timestamp",
    "timestamp_ntz": "timestamp", "timestamp_ltz": "timestamp", "timestamptz": "timestamp",
    "binary": "binary", "bytes": "binary", "varbinary": "binary",
}  # fmt: skip
_LOGICAL_TYPES = {
    "string": "string", "integer": "bigint", "number": "number", "boolean": "boolean",
    "date": "date", "timestamp": "timestamp", "object": "struct", "array": "array",
    "map": "map",
}  # fmt: skip
_INTEGER_FORMATS = {
    "i8": (-(2**7), 2**7 - 1), "i16": (-(2**15), 2**15 - 1), "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1), "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
}  # fmt: skip
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"^({_OCTET}\.){{3}}{_OCTET}$"
_TABLE_PLACEHOLDER = re.compile(r"[\"'`]?\$?\{(object|table|model)\}[\"'`]?")
_PROPERTY_PLACEHOLDER = re.compile(r"[\"'`]?\$?\{(property|column|field)\}[\"'`]?")


def path_text(loc: Location) -> str:
    """`("schema", 0, "quality", 2, "metric")` -> `schema[0].quality[2].metric`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def level_of(severity: str | None) -> str | None:
    """ODCS `severity` as a lakegate level (no severity: error), or None when unknown."""
    if severity is None:
        return "error"
    word = severity.strip().lower()
    if word in _ERROR_SEVERITIES:
        return "error"
    return "warning" if word in _WARNING_SEVERITIES else None


def is_contract_file(path: str | Path) -> bool:
    """Whether a YAML file is a data contract (`kind: DataContract`), not a suite."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("kind") == "DataContract"


def _sql_string(value: str) -> str:
    """A Spark SQL string literal: backslashes and quotes escaped (Spark reads escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return _sql_string(str(value))


def _in_list(column: str, values: list[Any]) -> str:
    return f"{quote(column)} IN ({', '.join(_sql_literal(v) for v in values)})"


class _Problem(Exception):
    """A rule that cannot be mapped: the message, at a location of the contract."""

    def __init__(self, loc: Location, message: str, *, executable: bool = True) -> None:
        super().__init__(message)
        self.loc = loc
        self.executable = executable  # False: valid ODCS that lakegate cannot run


@dataclass
class _Rule:
    check: str
    level: str
    entry: dict[str, Any]
    loc: Location
    meta: dict[str, Any]


@dataclass(frozen=True)
class ContractTranslation:
    """A contract mapped to a suite: the document and, per constraint, its rule's annotations."""

    document: YamlDocument
    meta: dict[tuple[int, int], dict[str, Any]]
    skipped: tuple[dict[str, Any], ...]
    schema_name: str
    rules: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # (path, entry) in order


def _unknown_keys(data: Any, annotation: Any, loc: Location) -> Iterator[tuple[Location, str]]:
    """Keys the ODCS model does not know (it ignores them silently below the top level)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if isinstance(data, list):
            found = [a for a in options if typing.get_origin(a) is list]
        elif isinstance(data, dict):
            found = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        else:
            found = []
        if found:
            yield from _unknown_keys(data, found[0], loc)
        return
    if origin is list and isinstance(data, list):
        (item,) = typing.get_args(annotation)
        for i, value in enumerate(data):
            yield from _unknown_keys(value, item, (*loc, i))
        return
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return
    if not isinstance(data, dict):
        return
    fields = {(f.alias or name): f for name, f in annotation.model_fields.items()}
    for key, value in data.items():
        known = fields.get(key)
        if known is None:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            yield (*loc, key), f"unknown key {key!r}{hint}"
            continue
        yield from _unknown_keys(value, known.annotation, (*loc, key))


class _Mapper:
    """Maps one schema object of a parsed contract to lakegate constraints."""

    def __init__(self, document: YamlDocument, contract: OpenDataContractStandard) -> None:
        self.document = document
        self.contract = contract
        self.rules: list[_Rule] = []
        self.schema: dict[str, str] = {}
        self.problems: list[_Problem] = []

    # -- helpers -------------------------------------------------------------------------
    def where(self, loc: Location) -> str:
        return f"{self.document.where(loc)}: {path_text(loc)}"

    def add(
        self, check: str, level: str, entry: dict[str, Any], loc: Location, meta: dict[str, Any]
    ) -> None:
        problem = constraint_problem(entry)
        if problem is not None:
            raise _Problem(loc, problem)
        name = check if level == "error" else f"{check} ({level})"
        self.rules.append(_Rule(name, level, entry, loc, {"path": path_text(loc), **meta}))

    def attempt(self, step: Callable[..., None], *args: Any) -> None:
        """Map one rule (`step(*args)`); a problem is kept, all are reported together."""
        try:
            step(*args)
        except _Problem as problem:
            self.problems.append(problem)

    # -- schema object -------------------------------------------------------------------
    def map_object(self, index: int, obj: SchemaObject) -> None:
        base: Location = ("schema", index)
        name = obj.name or f"schema[{index}]"
        properties = obj.properties or []
        columns = [p.physicalName or p.name or "" for p in properties]
        for pi, prop in enumerate(properties):
            loc = (*base, "properties", pi)
            if not (prop.physicalName or prop.name):
                self.problems.append(_Problem(loc, "a property needs a name"))
                continue
            self.map_property(loc, f"{name}.{columns[pi]}", prop)
        self.attempt(self.map_primary_key, base, name, properties)
        for qi, rule in enumerate(obj.quality or []):
            self.attempt(self.map_quality, (*base, "quality", qi), name, rule, None, columns)

    def map_primary_key(self, base: Location, check: str, properties: list[SchemaProperty]) -> None:
        keys = [(i, p) for i, p in enumerate(properties) if p.primaryKey]
        if not keys:
            return
        positions = [p.primaryKeyPosition for _, p in keys if (p.primaryKeyPosition or -1) > 0]
        if len(set(positions)) != len(positions):
            raise _Problem(
                (*base, "properties"), "two primary-key properties share a primaryKeyPosition"
            )
        ordered = sorted(keys, key=_key_position)
        key = [p.physicalName or p.name or "" for _, p in ordered]
        loc = (*base, "properties", ordered[0][0], "primaryKey")
        args: dict[str, Any] = {"column": key[0]} if len(key) == 1 else {"columns": key}
        meta = {"rule": "primaryKey", "dimension": "uniqueness"}
        self.add(check, "error", {"isPrimaryKey": args}, loc, meta)

    # -- properties ----------------------------------------------------------------------
    def map_property(self, loc: Location, check: str, prop: SchemaProperty) -> None:
        column = prop.physicalName or prop.name or ""
        self.attempt(self.map_type, loc, column, prop)
        if prop.required or prop.primaryKey:
            flag = "required" if prop.required else "primaryKey"
            meta = {"rule": flag, "dimension": "completeness"}
            entry = {"isComplete": {"column": column}}
            self.attempt(self.add, check, "error", entry, (*loc, flag), meta)
        if prop.unique and not prop.primaryKey:
            meta = {"rule": "unique", "dimension": "uniqueness"}
            entry = {"isUnique": {"column": column}}
            self.attempt(self.add, check, "error", entry, (*loc, "unique"), meta)
        options = dict(prop.logicalTypeOptions or {})
        if prop.logicalType not in {"date", "timestamp"}:
            bounds = {k: options.pop(k) for k in _BOUNDS if k in options}
            if bounds:
                bounds_loc = (*loc, "logicalTypeOptions", next(iter(bounds)))
                self.attempt(self.map_bounds, bounds_loc, check, column, bounds)
        for key, value in options.items():
            option_loc = (*loc, "logicalTypeOptions", key)
            self.attempt(self.map_option, option_loc, check, column, prop, key, value)
        if prop.enum:
            self.attempt(self.map_enum, (*loc, "enum"), check, column, prop)
        if prop.items is not None or prop.properties or prop.map is not None:
            self.problems.append(
                _Problem(
                    loc,
                    "nested properties (items, properties, map) are not checked; "
                    "only top-level columns are",
                    executable=False,
                )
            )
        for qi, rule in enumerate(prop.quality or []):
            self.attempt(self.map_quality, (*loc, "quality", qi), check, rule, column, None)

    def map_bounds(self, loc: Location, check: str, column: str, bounds: dict[str, Any]) -> None:
        """minimum, maximum and their exclusive forms as one `isInRange` (the stricter bound)."""
        args: dict[str, Any] = {"column": column}
        for side, inclusive, exclusive in (
            ("min", "minimum", "exclusiveMinimum"),
            ("max", "maximum", "exclusiveMaximum"),
        ):
            found = [
                (k, _number((*loc[:-1], k), bounds[k]))
                for k in (inclusive, exclusive)
                if k in bounds
            ]
            if not found:
                continue
            key, value = _stricter(found, exclusive, lower=side == "min")
            args[side] = value
            if key == exclusive:
                args[f"include_{side}"] = False
        meta = {"rule": "logicalTypeOptions." + ",".join(bounds), "dimension": "conformity"}
        self.add(check, "error", {"isInRange": args}, loc, meta)

    def map_type(self, loc: Location, column: str, prop: SchemaProperty) -> None:
        if prop.physicalType:
            physical = prop.physicalType.strip().lower()
            if physical.startswith(("array<", "struct<", "map<", "decimal(")):
                self.schema[column] = physical
                return
            spark = _PHYSICAL_TYPES.get(re.sub(r"\s*\(.*\)$", "", physical))
            if spark is not None:
                self.schema[column] = spark
                return
        if prop.logicalType:
            spark = _LOGICAL_TYPES.get(prop.logicalType)
            if spark is None and prop.logicalType not in {"time", "vector"}:
                close = difflib.get_close_matches(prop.logicalType, [*_LOGICAL_TYPES, "time"], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise _Problem(
                    (*loc, "logicalType"), f"unknown logicalType {prop.logicalType!r}{hint}"
                )
            if spark is None:
                raise _Problem(
                    (*loc, "logicalType"),
                    f"logicalType {prop.logicalType!r} has no Spark type lakegate checks",
                    executable=False,
                )
            self.schema[column] = spark
        elif prop.physicalType:
            raise _Problem(
                (*loc, "physicalType"),
                f"physicalType {prop.physicalType!r} is not a type lakegate knows; "
                "give a logicalType too",
                executable=False,
            )

    def map_enum(self, loc: Location, check: str, column: str, prop: SchemaProperty) -> None:
        values = [e.value for e in prop.enum or []]
        meta = {"rule": "enum", "dimension": "conformity"}
        self.add(
            check, "error", _valid_values_entry(column, values, name=f"{column} enum"), loc, meta
        )

    def map_option(
        self, loc: Location, check: str, column: str, prop: SchemaProperty, key: str, value: Any
    ) -> None:
        if key in _UNEXECUTABLE_OPTIONS:
            raise _Problem(
                loc, f"logicalTypeOptions.{key} is not checked by lakegate", executable=False
            )
        if key not in _OPTIONS:
            close = difflib.get_close_matches(key, sorted(_OPTIONS | _UNEXECUTABLE_OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Problem(loc, f"unknown logicalTypeOptions key {key!r}{hint}")
        meta = {"rule": f"logicalTypeOptions.{key}", "dimension": "conformity"}
        entry = _option_entry(loc, column, prop, key, value)
        if entry is not None:
            self.add(check, "error", entry, loc, meta)

    # -- quality rules -------------------------------------------------------------------
    def map_quality(
        self,
        loc: Location,
        check: str,
        rule: DataQuality,
        column: str | None,
        columns: list[str] | None,
    ) -> None:
        meta = _rule_meta(rule)
        level = level_of(rule.severity)
        if level is None:
            known = ", ".join(sorted(_ERROR_SEVERITIES | _WARNING_SEVERITIES))
            raise _Problem(
                (*loc, "severity"),
                f"severity {rule.severity!r} is not one lakegate knows ({known})",
            )
        kind = rule.type or ("library" if (rule.metric or rule.rule) else None)
        if kind == "library":
            for entry in _library_entries(loc, rule, column, columns):
                self.add(check, level, entry, loc, meta)
        elif kind == "sql":
            self.add(check, level, _sql_entry(loc, rule, column), loc, meta)
        elif kind == "custom":
            for entry in _custom_entries(loc, rule):
                self.add(check, level, entry, loc, meta)
        elif kind == "text":
            raise _Problem(
                (*loc, "type"),
                "a text rule describes the data in words; it cannot be executed",
                executable=False,
            )
        elif kind is None:
            raise _Problem(
                loc, "a quality rule needs a type (library, sql, custom, text) or a metric"
            )
        else:
            raise _Problem(
                (*loc, "type"),
                f"unknown quality type {kind!r}; ODCS has library, sql, custom and text",
            )


def _stricter(
    found: list[tuple[str, int | float]], exclusive: str, *, lower: bool
) -> tuple[str, int | float]:
    """Of bounds on one side, the one that admits least (at a tie, the exclusive one)."""
    if lower:
        return max(found, key=lambda kv: (kv[1], kv[0] == exclusive))
    return min(found, key=lambda kv: (kv[1], kv[0] != exclusive))


def _key_position(item: tuple[int, SchemaProperty]) -> tuple[bool, int, int]:
    """Primary-key order: by primaryKeyPosition (from 1), unpositioned ones last in file order."""
    index, prop = item
    position = prop.primaryKeyPosition or -1
    return position <= 0, position, index


def _rule_meta(rule: DataQuality) -> dict[str, Any]:
    fields = ("id", "name", "description", "dimension", "businessImpact", "tags", "severity")
    meta = {name: getattr(rule, name) for name in fields if getattr(rule, name) is not None}
    meta["type"] = rule.type or "library"
    if rule.metric or rule.rule:
        meta["metric"] = rule.metric or rule.rule
    return meta


def _valid_values_entry(column: str, values: list[Any], name: str) -> dict[str, Any]:
    """Every non-null value among `values`: `isContainedIn` for text, else an SQL `IN`."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return {"isContainedIn": {"column": column, "values": present}}
    condition = (
        f"{quote(column)} IS NULL OR {_in_list(column, present)}"
        if present
        else f"{quote(column)} IS NULL"
    )
    return {"satisfies": {"name": name, "condition": condition}}


def _number(loc: Location, value: Any) -> int | float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and math.isnan(value))
    ):
        raise _Problem(loc, f"{value!r} is not a number")
    return value


def _option_entry(
    loc: Location, column: str, prop: SchemaProperty, key: str, value: Any
) -> dict[str, Any] | None:
    """One logicalTypeOptions entry as a row rule (a null complies; `required` says otherwise)."""
    q = quote(column)
    temporal = prop.logicalType in {"date", "timestamp"}
    if key in {"minLength", "maxLength"}:
        n = _number(loc, value)
        op = ">=" if key == "minLength" else "<="
        return {
            "satisfies": {
                "name": f"{column} {key} {n}",
                "condition": f"{q} IS NULL OR length({q}) {op} {n}",
            }
        }
    if key == "pattern":
        return {
            "hasPattern": {"column": column, "pattern": str(value), "where": f"{q} IS NOT NULL"}
        }
    if key in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[
            key
        ]
        if temporal:
            kind = "DATE" if prop.logicalType == "date" else "TIMESTAMP"
            condition = f"{q} IS NULL OR {q} {op} CAST({_sql_string(str(value))} AS {kind})"
            return {"satisfies": {"name": f"{column} {key} {value}", "condition": condition}}
        bound = _number(loc, value)
        side = "min" if "inimum" in key else "max"
        args: dict[str, Any] = {"column": column, side: bound}
        if key.startswith("exclusive"):
            args[f"include_{side}"] = False
        return {"isInRange": args}
    if key == "multipleOf":
        m = _number(loc, value)
        if m == 0:
            raise _Problem(loc, "multipleOf must not be 0")
        return {
            "satisfies": {
                "name": f"{column} multipleOf {m}",
                "condition": f"{q} IS NULL OR {q} % {m!r} = 0",
            }
        }
    return _format_entry(loc, column, prop, str(value))


def _format_entry(loc: Location, column: str, prop: SchemaProperty, fmt: str) -> dict[str, Any]:
    q = quote(column)
    not_null = f"{q} IS NOT NULL"
    if prop.logicalType in {"date", "timestamp"}:
        # A Spark datetime pattern (JDK DateTimeFormatter letters); only text is parsed.
        parsed = f"try_to_timestamp(CAST({q} AS STRING), {_sql_string(fmt)}) IS NOT NULL"
        condition = f"{q} IS NULL OR typeof({q}) <> 'string' OR {parsed}"
        return {"satisfies": {"name": f"{column} format {fmt}", "condition": condition}}
    if fmt in _INTEGER_FORMATS:
        low, high = _INTEGER_FORMATS[fmt]
        return {"isInRange": {"column": column, "min": low, "max": high}}
    named = {"email": "containsEmail", "uri": "containsURL", "url": "containsURL"}
    if fmt.lower() in named:
        return {named[fmt.lower()]: {"column": column, "where": not_null}}
    patterns = {"uuid": _UUID, "ipv4": _IPV4}
    if fmt.lower() in patterns:
        return {
            "hasPattern": {"column": column, "pattern": patterns[fmt.lower()], "where": not_null}
        }
    if fmt.lower() in {"date", "date-time"}:
        kind = "DATE" if fmt.lower() == "date" else "TIMESTAMP"
        condition = f"{q} IS NULL OR try_cast({q} AS {kind}) IS NOT NULL"
        return {"satisfies": {"name": f"{column} format {fmt}", "condition": condition}}
    known = "i8..i64, u8..u64, email, uri, url, uuid, ipv4, date, date-time"
    raise _Problem(loc, f"format {fmt!r} is not one lakegate checks ({known})", executable=False)


def _operators(loc: Location, rule: DataQuality) -> list[tuple[str, Any]]:
    """The rule's operators, validated as numbers (all must hold)."""
    found = [(name, getattr(rule, name)) for name in OPERATORS if getattr(rule, name) is not None]
    if not found:
        raise _Problem(loc, f"no operator: give one of {', '.join(OPERATORS)}")
    for name, value in found:
        if name in {"mustBeBetween", "mustNotBeBetween"}:
            low, high = (_number((*loc, name), v) for v in value)
            if low > high:
                raise _Problem((*loc, name), "the lower bound comes first")
        else:
            _number((*loc, name), value)
    return found


def _op_holds(name: str, v: Any, x: float) -> bool:
    """One ODCS operator on a value (bounds of the between forms inclusive)."""
    if name in {"mustBeBetween", "mustNotBeBetween"}:
        inside = bool(v[0] <= x <= v[1])
        return inside if name == "mustBeBetween" else not inside
    results = {
        "mustBe": x == v,
        "mustNotBe": x != v,
        "mustBeGreaterThan": x > v,
        "mustBeGreaterOrEqualTo": x >= v,
        "mustBeLessThan": x < v,
        "mustBeLessOrEqualTo": x <= v,
    }
    return bool(results[name])


def _holds(ops: list[tuple[str, Any]], x: float) -> bool:
    return all(_op_holds(name, value, x) for name, value in ops)


def admits_only_zero(ops: list[tuple[str, Any]], unit: str) -> bool:
    """Whether the operators hold for a count of 0 and for no count (or share) above it.

    Such a rule admits no failing row, so its failing rows can be quarantined. Counts are
    integers; a percentage can be any share above 0 (a large enough table), so only rules
    that hold at 0 alone qualify there.
    """
    if not _holds(ops, 0):
        return False
    thresholds = [float(t) for _, v in ops for t in (v if isinstance(v, list) else [v])]
    candidates: set[float]
    if unit == "rows":
        near = {k for t in thresholds for k in range(math.floor(t) - 1, math.ceil(t) + 2)}
        top = math.ceil(max(thresholds, default=0)) + 2
        candidates = {float(k) for k in near | {1, top} if k >= 1}
    else:
        points = sorted({1e-12, 100.0, *(t for t in thresholds if t > 0)})
        candidates = set(points) | {p * (1 + 1e-9) for p in points}
        candidates |= {(a + b) / 2 for a, b in itertools.pairwise(points)}
    return not any(_holds(ops, x) for x in candidates)


def _assertion(ops: list[tuple[str, Any]], scale: float = 1.0) -> dict[str, Any]:
    """The operators as a lakegate assertion, values divided by `scale` (percent -> share)."""
    assertion: dict[str, Any] = {}
    for name, value in ops:
        key = OPERATORS[name]
        if isinstance(value, list):
            assertion[key] = [v / scale for v in value] if scale != 1 else list(value)
        else:
            assertion[key] = value / scale if scale != 1 else value
    if assertion == {"eq": 1.0} and scale != 1:
        # "every row fails" as a share: `eq: 1` would read as lakegate's row-rule default.
        assertion = {"min": 1.0}
    return assertion


def _unit(loc: Location, rule: DataQuality, metric: str) -> str:
    unit = _UNITS.get((rule.unit or "rows").strip().lower())
    if unit is None:
        raise _Problem((*loc, "unit"), f"unit {rule.unit!r}: give rows or percent")
    if unit == "percent" and metric == "rowCount":
        raise _Problem((*loc, "unit"), "rowCount counts rows; a percent has no meaning here")
    return unit


def _library_entries(
    loc: Location, rule: DataQuality, column: str | None, columns: list[str] | None
) -> list[dict[str, Any]]:
    metric = rule.metric or rule.rule or ""
    metric_loc = (*loc, "metric" if rule.metric else "rule")
    if metric not in LIBRARY_METRICS:
        close = difflib.get_close_matches(metric, LIBRARY_METRICS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise _Problem(
            metric_loc,
            f"unknown metric {metric!r}; {hint}ODCS's library has {', '.join(LIBRARY_METRICS)}",
        )
    level = "property" if column is not None else "schema"
    allowed = _ARGUMENTS.get((metric, level))
    if allowed is None:
        where = (
            "a property's quality" if metric in _PROPERTY_METRICS else "the schema object's quality"
        )
        raise _Problem(
            metric_loc,
            f"{metric} is a {'property' if level == 'schema' else 'schema'}-level metric: "
            f"put the rule under {where}",
        )
    args = rule.arguments or {}
    for key in args:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise _Problem(
                (*loc, "arguments", key), f"{metric} takes no argument {key!r} (arguments: {known})"
            )
    ops = _operators(loc, rule)
    unit = _unit(loc, rule, metric)
    if metric == "rowCount":
        return [{"hasSize": _assertion(ops)}]
    if metric == "duplicateValues":
        return [_duplicates_entry(loc, rule, column, columns, ops, unit)]
    assert column is not None
    bad, rows = _bad_rows(loc, metric, column, args)
    if admits_only_zero(ops, unit):
        return rows
    name = f"{column} {metric}"
    if unit == "percent":
        return [{"satisfies": {"name": name, "condition": bad, **_assertion(ops, 100.0)}}]
    return [{"hasSize": {"where": bad, **_assertion(ops)}}]


def _bad_rows(
    loc: Location, metric: str, column: str, args: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """(the SQL predicate of a failing row, never null; the row rules when no row may fail)."""
    q = quote(column)
    if metric == "nullValues":
        return f"{q} IS NULL", [{"isComplete": {"column": column}}]
    if metric == "missingValues":
        values = args.get("missingValues") or []
        if not isinstance(values, list):
            raise _Problem((*loc, "arguments", "missingValues"), "give a list of values")
        listed = [v for v in values if v is not None]
        bad = f"({q} IS NULL OR {_in_list(column, listed)})" if listed else f"{q} IS NULL"
        return bad, [{"satisfies": {"name": f"{column} missingValues", "condition": f"NOT {bad}"}}]
    valid_values, pattern = args.get("validValues"), args.get("pattern")
    if valid_values is None and pattern is None:
        raise _Problem((*loc, "arguments"), "invalidValues needs validValues or pattern")
    valid, rows = [], []
    if valid_values is not None:
        if not isinstance(valid_values, list) or not valid_values:
            raise _Problem((*loc, "arguments", "validValues"), "give a non-empty list of values")
        present = [v for v in valid_values if v is not None]
        valid.append(_in_list(column, present) if present else "FALSE")
        rows.append(_valid_values_entry(column, valid_values, name=f"{column} validValues"))
    if pattern is not None:
        valid.append(f"regexp_extract(CAST({q} AS STRING), {_sql_string(str(pattern))}, 0) <> ''")
        rows.append(
            {"hasPattern": {"column": column, "pattern": str(pattern), "where": f"{q} IS NOT NULL"}}
        )
    return f"({q} IS NOT NULL AND NOT ({' AND '.join(valid)}))", rows


def _duplicates_entry(
    loc: Location,
    rule: DataQuality,
    column: str | None,
    columns: list[str] | None,
    ops: list[tuple[str, Any]],
    unit: str,
) -> dict[str, Any]:
    if column is not None:
        key = [column]
    else:
        named = (rule.arguments or {}).get("properties")
        props_loc = (*loc, "arguments", "properties")
        if not isinstance(named, list) or not named or not all(isinstance(k, str) for k in named):
            raise _Problem(props_loc, "give the key's property names: properties: [a, b]")
        key = [str(k) for k in named]
        unknown = [k for k in key if k not in (columns or [])]
        if unknown:
            raise _Problem(
                props_loc,
                f"unknown property {unknown[0]!r}; the schema object has "
                f"{', '.join(columns or [])}",
            )
    if admits_only_zero(ops, unit):
        return {"isUnique": {"column": key[0]} if len(key) == 1 else {"columns": key}}
    if unit == "rows":
        return {"hasDuplicateRowCount": {"columns": key, **_assertion(ops)}}
    keys = ", ".join(quote(k) for k in key)
    any_key = " OR ".join(f"{quote(k)} IS NOT NULL" for k in key)
    query = (
        "SELECT 100.0 * coalesce(sum(n), 0) / (SELECT count(*) FROM {table}) FROM "
        f"(SELECT count(*) AS n FROM {{table}} WHERE {any_key} GROUP BY {keys} HAVING count(*) > 1)"
    )
    return {
        "customSql": {
            "name": f"{','.join(key)} duplicateValues percent",
            "query": query,
            **_assertion(ops),
        }
    }


def _sql_entry(loc: Location, rule: DataQuality, column: str | None) -> dict[str, Any]:
    if not rule.query:
        raise _Problem(loc, "a sql rule needs a query")
    if rule.unit is not None and _UNITS.get(rule.unit.strip().lower()) != "rows":
        raise _Problem(
            (*loc, "unit"), "a sql rule's query returns the value compared; unit does not apply"
        )
    query = _TABLE_PLACEHOLDER.sub("{table}", rule.query)
    if _PROPERTY_PLACEHOLDER.search(query):
        if column is None:
            raise _Problem(
                (*loc, "query"),
                "{property} names the rule's property; this rule is on the schema object",
            )
        query = _PROPERTY_PLACEHOLDER.sub(quote(column).replace("\\", "\\\\"), query)
    name = rule.name or rule.id or f"{path_text(loc)} sql"
    return {"customSql": {"name": name, "query": query, **_assertion(_operators(loc, rule))}}


def _custom_entries(loc: Location, rule: DataQuality) -> list[dict[str, Any]]:
    engine = (rule.engine or "").strip().lower()
    if engine not in {"lakegate", "deequ"}:
        raise _Problem(
            (*loc, "engine"),
            f"engine {rule.engine!r}: lakegate runs custom rules of engine lakegate (or "
            "deequ), written as suite constraints",
            executable=False,
        )
    impl: Any = rule.implementation
    impl_loc = (*loc, "implementation")
    if isinstance(impl, str):
        try:
            impl = yaml.safe_load(impl)
        except yaml.YAMLError as exc:
            raise _Problem(impl_loc, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    entries = impl if isinstance(impl, list) else [impl]
    if not entries or impl is None:
        raise _Problem(impl_loc, "give suite constraints, such as {isComplete: id}")
    for entry in entries:
        problem = constraint_problem(entry)
        if problem is not None:
            raise _Problem(impl_loc, problem)
    return list(entries)


def _describe_model_error(document: YamlDocument, error: ValidationError) -> list[str]:
    messages = []
    for item in error.errors():
        loc = tuple(
            p
            for p in item["loc"]
            if isinstance(p, int)
            or (p not in {"str", "list", "dict"} and not str(p).startswith(("list[", "dict[")))
        )
        messages.append(f"{document.where(loc)}: {path_text(loc) or '(document)'}: {item['msg']}")
    return messages


def _parse_contract(document: YamlDocument) -> OpenDataContractStandard:
    data = document.data
    version = str(data.get("apiVersion", ""))
    if not version.startswith("v3."):
        raise SuiteError(
            f"{document.where(('apiVersion',))}: apiVersion {version or 'missing'}: "
            "lakegate reads ODCS v3 contracts (apiVersion v3.x)"
        )
    problems = [
        f"{document.where(loc)}: {path_text(loc)}: {message}"
        for loc, message in _unknown_keys(data, OpenDataContractStandard, ())
    ]
    try:
        contract = OpenDataContractStandard.model_validate(data)
    except ValidationError as exc:
        problems += _describe_model_error(document, exc)
        contract = None
    if problems or contract is None:
        raise SuiteError("not a valid ODCS contract:\n" + "\n".join(problems))
    return contract


def _schema_object(
    document: YamlDocument, contract: OpenDataContractStandard, schema_name: str | None
) -> tuple[int, SchemaObject]:
    objects = contract.schema_ or []
    names = [o.name or f"schema[{i}]" for i, o in enumerate(objects)]
    if not objects:
        raise SuiteError(
            f"{document.where(('schema',))}: the contract has no schema object to check"
        )
    if schema_name is None:
        if len(objects) > 1:
            raise SuiteError(
                f"{document.where(('schema',))}: the contract has {len(objects)} schema objects "
                f"({', '.join(names)}); pick one with --schema-name"
            )
        return 0, objects[0]
    if schema_name not in names:
        raise SuiteError(
            f"{document.where(('schema',))}: no schema object named {schema_name!r}; the "
            f"contract has {', '.join(names)}"
        )
    index = names.index(schema_name)
    return index, objects[index]


def translate_contract(
    document: YamlDocument, *, schema_name: str | None = None, allow_unexecutable: bool = False
) -> ContractTranslation:
    """Map one schema object of a contract to a lakegate suite document.

    Raises:
        SuiteError: an invalid contract, or rules that cannot run (unless `allow_unexecutable`),
            each as `file:line: path: problem`, all of them at once.
    """
    contract = _parse_contract(document)
    index, obj = _schema_object(document, contract, schema_name)
    mapper = _Mapper(document, contract)
    mapper.map_object(index, obj)
    fatal = [p for p in mapper.problems if p.executable or not allow_unexecutable]
    if fatal:
        lines = [
            f"{mapper.where(p.loc)}: {p}"
            + ("" if p.executable else " (--allow-unexecutable skips it)")
            for p in fatal
        ]
        raise SuiteError("the contract cannot run as it is:\n" + "\n".join(lines))
    skipped = tuple(
        {"path": path_text(p.loc), "line": document.line_of(p.loc), "reason": str(p)}
        for p in mapper.problems
    )
    return _suite_document(document, obj.name or f"schema[{index}]", mapper, skipped)


def _suite_document(
    document: YamlDocument, name: str, mapper: _Mapper, skipped: tuple[dict[str, Any], ...]
) -> ContractTranslation:
    contract_name = mapper.contract.id or mapper.contract.name or document.path.name
    checks: dict[str, dict[str, Any]] = {}
    for rule in mapper.rules:
        check = checks.setdefault(
            rule.check, {"name": rule.check, "level": rule.level, "constraints": []}
        )
        check["constraints"].append(rule.entry)
    data: dict[str, Any] = {
        "suite": name,
        "description": f"data contract {contract_name}, schema object {name}",
        "schema": dict(mapper.schema),
        "checks": list(checks.values())
        or [{"name": name, "level": "error", "constraints": [{"hasSize": {"min": 0}}]}],
    }
    order = list(checks)
    counters: dict[str, int] = {}
    lines: dict[Location, int] = {}
    meta: dict[tuple[int, int], dict[str, Any]] = {}
    for rule in mapper.rules:
        ci = order.index(rule.check)
        i = counters.get(rule.check, 0)
        counters[rule.check] = i + 1
        meta[(ci, i)] = rule.meta
        line = document.line_of(rule.loc)
        if line is not None:
            lines[("checks", ci, "constraints", i)] = line
    rules = tuple((r.meta["path"], r.entry) for r in mapper.rules)
    return ContractTranslation(YamlDocument(document.path, data, lines), meta, skipped, name, rules)


def contract_suite(
    document: YamlDocument, *, schema_name: str | None = None, allow_unexecutable: bool = False
) -> Suite:
    """A contract's schema object as a validated `Suite`, each constraint annotated with its rule.

    Raises:
        SuiteError: as `translate_contract`.
    """
    translation = translate_contract(
        document, schema_name=schema_name, allow_unexecutable=allow_unexecutable
    )
    suite = parse_checks(translation.document)
    checks = []
    for ci, check in enumerate(suite.checks):
        constraints = tuple(
            replace(c, meta=translation.meta.get((ci, i), {}))
            for i, c in enumerate(check.constraints)
        )
        checks.append(Check(check.name, check.level, constraints))
    return replace(suite, checks=tuple(checks), skipped=translation.skipped)


def load_contract(
    path: str | Path, *, schema_name: str | None = None, allow_unexecutable: bool = False
) -> Suite:
    """Load a contract file as a `Suite` (see `contract_suite`)."""
    return contract_suite(
        load_yaml_document(path), schema_name=schema_name, allow_unexecutable=allow_unexecutable
    )


def _json_ready(value: Any) -> Any:
    """YAML's dates and times as the strings JSON would hold."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def _map_without_logical_type(error: Any) -> bool:
    """Whether `error` is ODCS 3.2.0's schema asking a property without logicalType for `map`.

    Its `if` on `logicalType: map` lacks `required`, so it holds when logicalType is absent.
    """
    instance = error.instance
    return bool(
        error.validator == "required"
        and list(error.validator_value) == ["map"]
        and isinstance(instance, dict)
        and "logicalType" not in instance
    )


def json_schema_problems(document: YamlDocument) -> list[str] | None:
    """The contract's problems against ODCS's JSON schema (shipped with the ODCS package).

    None when the `jsonschema` package is not installed (ODCS's pydantic model still checks
    the contract when it is loaded).
    """
    try:
        jsonschema: Any = importlib.import_module("jsonschema")
    except ImportError:
        return None
    schema_text: str = OpenDataContractStandard.json_schema()  # type: ignore[no-untyped-call]
    validator = jsonschema.Draft201909Validator(json.loads(schema_text))
    errors = sorted(validator.iter_errors(_json_ready(document.data)), key=lambda e: e.json_path)
    found = []
    for error in errors:
        if _map_without_logical_type(error):
            continue
        loc = tuple(error.absolute_path)
        found.append(f"{document.where(loc)}: {path_text(loc) or '(document)'}: {error.message}")
    return found
