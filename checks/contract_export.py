"""A lakegate suite as an ODCS v3 data contract (`lakegate contract export`).

Each constraint takes ODCS's own form where the contract's semantics are the constraint's, so
that validating the contract (`checks.contracts`) judges the table as the suite did:

- `isComplete` -> `required: true`, `isUnique` of one column -> `unique: true`, `isContainedIn`
  of text values -> `enum`, `isInRange` -> `logicalTypeOptions` bounds, `hasSize` -> a `rowCount`
  rule (error-level checks); in warning-level checks `isComplete`, `isUnique` and `hasSize`
  become `nullValues`, `duplicateValues` and `rowCount` rules with `severity: warning`;
- everything else (a `where` filter, a ratio, Deequ's metrics) -> a `type: custom`,
  `engine: lakegate` rule whose `implementation` is the constraint as the suite writes it;
- the suite's `schema:` -> each property's `physicalType` (and a `logicalType`).

Anomaly checks have no ODCS form: `suite_contract` returns them as notes, left out.
"""

from __future__ import annotations

from typing import Any

import yaml

from checks.arguments import Assertion
from checks.contracts import OPERATORS
from checks.suite import Constraint, Level, Suite, type_family

__all__ = ["contract_yaml", "suite_contract"]

API_VERSION = "v3.2.0"
_TO_OPERATOR = {key: name for name, key in OPERATORS.items()}
_LOGICAL = {
    "string": "string",
    "integral": "integer",
    "fractional": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "array": "array",
    "struct": "object",
    "map": "map",
}


def _types(spark_type: str) -> dict[str, str]:
    logical = _LOGICAL.get(type_family(spark_type))
    return {"physicalType": spark_type, **({"logicalType": logical} if logical else {})}


_FIRST = ("name", "column", "columns", "column_a", "column_b")


def _written(c: Constraint) -> dict[str, Any]:
    """The constraint as a suite writes it (`{kind: {arguments}}`), JSON-ready, columns first."""
    args = c.args.model_dump(mode="json", exclude_defaults=True)
    ordered = sorted(args, key=lambda k: (k not in _FIRST, _FIRST.index(k) if k in _FIRST else 0))
    return {c.kind: {k: _plain(args[k]) for k in ordered}}


def _operators(args: Assertion) -> dict[str, Any] | None:
    """A single-bound assertion as ODCS operators, or None when ODCS cannot say it exactly."""
    dumped = {
        k: v
        for k, v in args.model_dump(mode="json", exclude_defaults=True).items()
        if k in _TO_OPERATOR
    }
    if len(dumped) != 1 or args.tolerance is not None or args.where:
        return None
    ((key, value),) = dumped.items()
    return {_TO_OPERATOR[key]: _plain(value)}


class _Builder:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.properties: dict[str, dict[str, Any]] = {}
        self.quality: list[dict[str, Any]] = []
        for column, spark_type in suite.expected_schema:
            self.prop(column).update(_types(spark_type))

    def prop(self, column: str) -> dict[str, Any]:
        return self.properties.setdefault(column, {"name": column})

    def rule(self, c: Constraint, rule: dict[str, Any], level: Level) -> None:
        """A quality rule on the constraint's one column, or on the schema object."""
        if level is Level.WARNING:
            rule["severity"] = "warning"
        if len(c.columns) == 1:
            self.prop(c.columns[0]).setdefault("quality", []).append(rule)
        else:
            self.quality.append(rule)

    def add(self, c: Constraint, level: Level) -> None:
        if not self._native(c, level):
            self.rule(
                c, {"type": "custom", "engine": "lakegate", "implementation": _written(c)}, level
            )

    def _native(self, c: Constraint, level: Level) -> bool:
        """Add `c` in ODCS's own form; False when it has none that means the same."""
        a = c.args
        if a.where or a.hint:
            return False
        if c.kind == "hasSize":
            operators = _operators(a)
            if operators is not None:
                self.rule(c, {"metric": "rowCount", **operators}, level)
            return operators is not None
        if c.kind not in {"isComplete", "isUnique", "isContainedIn", "isInRange"}:
            return False
        if len(c.columns) != 1:
            return False
        prop = self.prop(c.columns[0])
        if level is Level.WARNING:
            metric = {"isComplete": "nullValues", "isUnique": "duplicateValues"}.get(c.kind)
            if metric is not None:
                self.rule(c, {"metric": metric, "mustBe": 0}, level)
            return metric is not None
        if c.kind == "isComplete" and "required" not in prop:
            prop["required"] = True
            return True
        if c.kind == "isUnique" and "unique" not in prop:
            prop["unique"] = True
            return True
        text_values = c.kind == "isContainedIn" and all(isinstance(v, str) for v in a.values)
        if text_values and "enum" not in prop and a.is_all_rows():
            prop["enum"] = [{"value": v} for v in a.values]
            return True
        if c.kind == "isInRange" and "logicalTypeOptions" not in prop:
            options = {}
            if a.min is not None:
                options["minimum" if a.include_min else "exclusiveMinimum"] = _plain(a.min)
            if a.max is not None:
                options["maximum" if a.include_max else "exclusiveMaximum"] = _plain(a.max)
            prop["logicalTypeOptions"] = options
            return True
        return False


def _plain(value: Any) -> Any:
    """A value as a person writes it: 5, not 5.0 (lists element by element)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def suite_contract(suite: Suite) -> tuple[dict[str, Any], list[str]]:
    """The suite as an ODCS v3 contract (a mapping), and notes on what was left out."""
    builder = _Builder(suite)
    for check in suite.checks:
        for constraint in check.constraints:
            builder.add(constraint, check.level)
    notes = [
        f"anomaly check {entry.index + 1} ({entry.label}) has no ODCS form; left out"
        for entry in suite.anomalies
    ]
    schema_object: dict[str, Any] = {"name": suite.name, "physicalType": "table"}
    schema_object["properties"] = list(builder.properties.values())
    if builder.quality:
        schema_object["quality"] = builder.quality
    contract: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": f"urn:lakegate:{suite.name}",
        "name": suite.name,
        "version": "1.0.0",
        "status": "draft",
    }
    if suite.description:
        contract["description"] = {"purpose": suite.description}
    contract["schema"] = [schema_object]
    return contract, notes


def contract_yaml(suite: Suite) -> tuple[str, list[str]]:
    """The suite's contract as YAML text (see `suite_contract`), and the notes."""
    contract, notes = suite_contract(suite)
    source = f" from {suite.path.name}" if suite.path else ""
    header = f"# Exported by `lakegate contract export`{source}.\n"
    text = yaml.safe_dump(contract, sort_keys=False, allow_unicode=True, width=100)
    return header + text, notes
