"""The model's input gate: a suite derived from training data, applied before scoring.

Models must only score data that looks like what they were trained on: the same columns and
types, categorical values from the training vocabulary, numbers within the trained range, no
missing values where training had none. `derive_input_suite` profiles the training table into
such a suite (plain YAML data, logged beside the model); `apply_input_gate` splits a table
into rows the model may score and rows it must not, with reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from checks.gate import Gate, apply_suite
from checks.suite import Suite, check_against_schema
from checks.suite_formats import parse_suite
from lakegate_config.yaml_document import YamlDocument

GATE_CHECK = "model input gate"


def derive_input_suite(
    df: DataFrame,
    columns: Sequence[str],
    *,
    name: str,
    max_categories: int = 100,
    range_margin: float = 0.1,
) -> dict[str, Any]:
    """Profile `columns` of a training table into an input-gate suite (as YAML-ready data).

    Numeric columns get a range (the training min and max widened by `range_margin` of their
    span); string columns with at most `max_categories` distinct values get their vocabulary;
    columns without nulls in training must be complete. Two aggregations, no rows collected.
    """
    fields = {f.name: f.dataType for f in df.schema.fields if f.name in columns}
    numeric = [c for c in columns if isinstance(fields[c], NumericType)]
    strings = [c for c in columns if isinstance(fields[c], StringType)]
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    for c in columns:
        aggregates.append(F.sum(F.col(c).isNull().cast("long")).alias(f"{c}__nulls"))
    for c in numeric:
        valid = F.when(~F.isnan(F.col(c).cast("double")), F.col(c))
        aggregates += [F.min(valid).alias(f"{c}__min"), F.max(valid).alias(f"{c}__max")]
    for c in strings:
        aggregates.append(F.approx_count_distinct(c).alias(f"{c}__distinct"))
    # A global aggregate has exactly one row.
    profile = df.agg(*aggregates).collect()[0].asDict()
    categorical = [c for c in strings if profile[f"{c}__distinct"] <= max_categories]
    vocabularies: dict[str, list[str]] = {}
    if categorical:
        sets = df.agg(*[F.collect_set(c).alias(c) for c in categorical]).collect()[0].asDict()
        vocabularies = {c: sorted(sets[c]) for c in categorical}

    rows = profile["_rows"] or 1
    constraints: list[dict[str, Any]] = []
    completeness: list[dict[str, Any]] = []
    for c in columns:
        nulls = profile[f"{c}__nulls"]
        if nulls == 0:
            constraints.append({"isComplete": c})
        else:
            observed = 1 - nulls / rows
            completeness.append(
                {"hasCompleteness": {"column": c, "min": round(max(observed - 0.05, 0), 4)}}
            )
        if c in numeric and profile[f"{c}__min"] is not None:
            low, high = float(profile[f"{c}__min"]), float(profile[f"{c}__max"])
            margin = (high - low) * range_margin
            constraints.append(
                {"isInRange": {"column": c, "min": low - margin, "max": high + margin}}
            )
        if c in vocabularies:
            constraints.append({"isContainedIn": {"column": c, "values": vocabularies[c]}})
    checks: list[dict[str, Any]] = [
        {"name": GATE_CHECK, "level": "error", "constraints": constraints}
    ]
    if completeness:
        checks.append(
            {"name": "training null rates", "level": "warning", "constraints": completeness}
        )
    return {
        "suite": name,
        "description": f"Input gate derived from {rows} training rows.",
        "schema": {c: fields[c].simpleString() for c in columns},
        "checks": checks,
    }


def suite_from_data(data: dict[str, Any], source: str) -> Suite:
    """Validate suite data (for example a logged gate) without a file on disk."""
    from pathlib import Path

    return parse_suite(YamlDocument(path=Path(source), data=data))


def suite_yaml(data: dict[str, Any]) -> str:
    """Render suite data as YAML text."""
    return yaml.safe_dump(data, sort_keys=False)


def apply_input_gate(df: DataFrame, suite: Suite) -> Gate:
    """Split `df` into rows the model may score (`valid`) and rows it must not (`quarantine`).

    Raises:
        SuiteError: the table lacks a gated column or has it with another type.
    """
    check_against_schema(suite, df.schema)
    return apply_suite(df.sparkSession, df, suite)
