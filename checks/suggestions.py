"""Suites suggested by Deequ's constraint suggestion (its default rules), proven on the data.

`suggest_constraints` profiles a DataFrame with Deequ's `ConstraintSuggestionRunner` and the
rules of PyDeequ's `DEFAULT()` (categorical range, complete if complete, fractional categorical
range, non-negative numbers, retain completeness, retain type, unique if approximately unique)
and translates each suggestion into a lakegate constraint that remembers what suggested it.
`prove_suggestions` runs them with `verify` on the table they are meant for: a constraint that
fails is relaxed to the value the table has (ratios) or dropped, and says so.
`suggested_suite_yaml` writes the result as a commented lakegate suite. Nothing here writes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame, SparkSession

from checks.deequ_run import ensure_deequ, verify
from checks.suite import Suite, SuiteError, check_against_schema
from checks.suite_formats import parse_suite
from lakegate_config.yaml_document import YamlDocument

CHECK_NAME = "suggested by Deequ"
_TARGET = re.compile(r"_ >= ([0-9.Ee-]+)")
_DATA_TYPE = re.compile(r"ConstrainableDataTypes\.(\w+)")
_ARRAY = re.compile(r"Array\((.*?)\)(?:,|\)$)")


@dataclass(frozen=True)
class Suggestion:
    """One suggested constraint: the lakegate constraint and what in the data suggested it."""

    column: str
    rule: str  # Deequ's rule, e.g. RetainCompletenessRule
    current_value: str  # what Deequ measured, e.g. "Completeness: 0.8"
    description: str  # Deequ's words, e.g. "'id' is not null"
    constraint: dict[str, Any]  # one-key mapping in the suite format
    note: str = ""  # what proving it on the data changed

    @property
    def kind(self) -> str:
        """The constraint type."""
        return next(iter(self.constraint))

    def comment(self) -> str:
        """Why this constraint is in the suite."""
        why = f"{self.current_value} ({self.rule}: {self.description})"
        return f"{why}; {self.note}" if self.note else why


@dataclass(frozen=True)
class SuggestedSuite:
    """The proven suggestions, and those that were dropped (with the reason)."""

    name: str
    kept: tuple[Suggestion, ...]
    dropped: tuple[Suggestion, ...] = field(default_factory=tuple)

    def data(self) -> dict[str, Any]:
        """The suite data, as a YAML suite holds it."""
        return {
            "suite": self.name,
            "description": "suggested by Deequ's constraint suggestion (default rules)",
            "checks": [
                {
                    "name": CHECK_NAME,
                    "level": "error",
                    "constraints": [s.constraint for s in self.kept],
                }
            ],
        }

    def suite(self, path: Path | None = None) -> Suite:
        """The validated suite."""
        return parse_suite(YamlDocument(path or Path(f"{self.name}.yaml"), self.data(), lines={}))


def _strings(spark: SparkSession, j_seq: Any) -> list[str]:
    jvm: Any = spark.sparkContext._jvm
    return [str(v) for v in jvm.scala.collection.JavaConverters.seqAsJavaList(j_seq)]


def _categories(spark: SparkSession, j_suggestion: Any) -> list[str]:
    """The categories of a (fractional) categorical range suggestion, most frequent first."""
    try:
        return _strings(spark, j_suggestion.value())
    except Exception:  # an older Deequ without ConstraintSuggestionWithValue: read the code
        match = _ARRAY.search(str(j_suggestion.codeForConstraint()))
        if match is None:
            return []
        values: list[str] = yaml.safe_load("[" + match.group(1) + "]")
        return values


def _target(code: str) -> float | None:
    match = _TARGET.search(code)
    return float(match.group(1)) if match else None


def _translate(spark: SparkSession, j_suggestion: Any) -> dict[str, Any] | None:
    """The lakegate constraint for one Deequ suggestion (None for a rule lakegate skips)."""
    rule = j_suggestion.suggestingRule().getClass().getSimpleName()
    column = str(j_suggestion.columnName())
    code = str(j_suggestion.codeForConstraint())
    if rule == "CompleteIfCompleteRule":
        return {"isComplete": column}
    if rule == "RetainCompletenessRule":
        return {"hasCompleteness": {"column": column, "min": _target(code) or 0.0}}
    if rule == "NonNegativeNumbersRule":
        return {"isNonNegative": column}
    if rule == "UniqueIfApproximatelyUniqueRule":
        return {"isUnique": column}
    if rule == "RetainTypeRule":
        match = _DATA_TYPE.search(code)
        return {"hasDataType": {"column": column, "datatype": match.group(1)}} if match else None
    if rule in {"CategoricalRangeRule", "FractionalCategoricalRangeRule"}:
        values = _categories(spark, j_suggestion)
        if not values:
            return None
        args: dict[str, Any] = {"column": column, "values": values}
        target = _target(code)
        if rule == "FractionalCategoricalRangeRule" and target is not None:
            args["min"] = target
        return {"isContainedIn": args}
    return None


def suggest_constraints(spark: SparkSession, df: DataFrame) -> list[Suggestion]:
    """Profile `df` with Deequ's constraint suggestion (default rules); one entry per suggestion.

    Raises:
        DeequNotOnClasspath: the Deequ jar is missing.
    """
    from pydeequ.suggestions import DEFAULT

    ensure_deequ(spark)
    jvm: Any = spark.sparkContext._jvm
    builder = jvm.com.amazon.deequ.suggestions.ConstraintSuggestionRunBuilder(df._jdf)
    for rule in DEFAULT()._set_jvm(jvm).rule_jvm:
        builder.addConstraintRule(rule._set_jvm(jvm).rule_jvm)
    result = builder.run()
    suggestions = []
    by_column = jvm.scala.collection.JavaConverters.mapAsJavaMap(result.constraintSuggestions())
    for column in df.columns:  # the table's column order
        j_list = by_column.get(column)
        if j_list is None:
            continue
        for j_suggestion in jvm.scala.collection.JavaConverters.seqAsJavaList(j_list):
            constraint = _translate(spark, j_suggestion)
            if constraint is None:
                continue
            suggestions.append(
                Suggestion(
                    column=column,
                    rule=str(j_suggestion.suggestingRule().getClass().getSimpleName()),
                    current_value=str(j_suggestion.currentValue()),
                    description=str(j_suggestion.description()),
                    constraint=constraint,
                )
            )
    return suggestions


def _floor(value: float, digits: int = 6) -> float:
    """Round down to `digits` decimals, so that the metric still meets the new bound."""
    scale = 10.0**digits
    return float(math.floor(value * scale)) / scale


def _relaxed(suggestion: Suggestion, metric: float | None) -> Suggestion | None:
    """A ratio constraint lowered to the share the table has; None when there is nothing left."""
    if metric is None or metric <= 0:
        return None
    bound = _floor(metric)
    constraint = dict(suggestion.constraint)
    kind = suggestion.kind
    args = constraint[kind]
    args = {"column": args} if isinstance(args, str) else dict(args)
    if kind == "isComplete":
        kind, args = "hasCompleteness", {"column": args["column"]}
    elif kind == "isUnique":
        kind, args = "hasUniqueness", {"columns": [args["column"]]}
    elif kind not in {"hasCompleteness", "isContainedIn", "isNonNegative", "hasDataType"}:
        return None
    was = args.get("min")
    args["min"] = bound
    note = (
        f"relaxed from >= {was:g} to >= {bound:g}: the table has {metric:.6g}"
        if was is not None
        else f"relaxed to >= {bound:g}: not every row complies (the table has {metric:.6g})"
    )
    return replace(suggestion, constraint={kind: args}, note=note)


def _fits_schema(suggestion: Suggestion, df: DataFrame, name: str) -> bool:
    single = SuggestedSuite(name, (suggestion,))
    try:
        check_against_schema(single.suite(), df.schema)
    except SuiteError:
        return False
    return True


def prove_suggestions(
    spark: SparkSession, df: DataFrame, name: str, suggestions: list[Suggestion]
) -> SuggestedSuite:
    """Check every suggestion on `df` (one `verify`); relax or drop what fails, and say why.

    A constraint whose column type does not fit (Deequ suggests `isNonNegative` for a string
    column that holds numbers) is dropped first. The result passes on `df`.
    """
    dropped: list[Suggestion] = []
    kept: list[Suggestion] = []
    for s in suggestions:
        if _fits_schema(s, df, name):
            kept.append(s)
        else:
            dropped.append(replace(s, note=f"dropped: {s.kind} does not fit the column's type"))
    for attempt in range(2):
        if not kept:
            break
        outcome = verify(spark, df, SuggestedSuite(name, tuple(kept)).suite())
        next_kept: list[Suggestion] = []
        for suggestion, result in zip(kept, outcome.results, strict=True):
            if result.status == "success":
                next_kept.append(suggestion)
                continue
            relaxed = _relaxed(suggestion, result.metric) if attempt == 0 else None
            if relaxed is not None:
                next_kept.append(relaxed)
            else:
                value = "-" if result.metric is None else f"{result.metric:.6g}"
                dropped.append(
                    replace(suggestion, note=f"dropped: fails on the table (value {value})")
                )
        if len(next_kept) == len(kept) and all(
            a is b for a, b in zip(next_kept, kept, strict=True)
        ):
            break
        kept = next_kept
    return SuggestedSuite(name, tuple(kept), tuple(dropped))


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def suggested_suite_yaml(suggested: SuggestedSuite, source: str) -> str:
    """The suggested suite as lakegate YAML, each constraint commented with its evidence."""
    data = suggested.data()
    out = [
        f"# Suggested by `lakegate suggest` from {source}: Deequ's constraint suggestion",
        "# (default rules), every constraint checked on that table before it was written.",
        f"suite: {_flow(data['suite'])}",
        f"description: {_flow(data['description'])}",
        "checks:",
        f"  - name: {_flow(CHECK_NAME)}",
        "    level: error",
        "    constraints:",
    ]
    out += [f"      - {_flow(s.constraint)}  # {s.comment()}" for s in suggested.kept]
    if not suggested.kept:
        out.append("      - {hasSize: {min: 0}}  # Deequ suggested nothing that holds")
    if suggested.dropped:
        out.append("# Not kept:")
        out += [f"#   {_flow(s.constraint)}  # {s.comment()}" for s in suggested.dropped]
    return "\n".join(out) + "\n"
