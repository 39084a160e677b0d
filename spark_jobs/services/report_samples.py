"""report.html's quarantined samples, observed while the quarantine is written (no read back).

For each reason (a constraint that blamed rows) the quarantine's observation keeps `rows`
candidates: the quarantined row blaming that reason with the smallest salted hash, one salt per
candidate (`min_by`, one row of state each, so memory stays flat whatever the quarantine's size).
Distinct candidates are the samples: up to `rows` rows per reason, fewer only when the reason
blamed fewer rows or two salts picked the same row. Values come as JSON gives them (dates and
timestamps as ISO strings, maps as objects), which is what report.html prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StructType

from checks.gate import ERRORS_COLUMN


def sample_aggregates(schema: StructType, reasons: Sequence[str], rows: int) -> list[Column]:
    """The observed aggregates that pick up to `rows` quarantined rows per reason in `reasons`.

    Args:
        schema: the quarantine's schema (its errors column included).
        reasons: constraint ids that blamed rows.
        rows: samples wanted per reason.
    """
    columns = [F.col(_quoted(f.name)) for f in schema.fields]
    # xxhash64 takes any type but maps; the errors column alone already tells rows apart.
    hashed = [F.col(_quoted(f.name)) for f in schema.fields if not isinstance(f.dataType, MapType)]
    # As JSON: an observed struct reaches Python as a JVM row; nulls kept so every column shows.
    record = F.to_json(F.struct(*columns), {"ignoreNullFields": "false"})
    aggregates = []
    for i, reason in enumerate(reasons):
        blamed = F.array_contains(F.col(f"{ERRORS_COLUMN}.constraint"), reason)
        for salt in range(rows):
            order = F.when(blamed, F.xxhash64(F.lit(salt), *hashed))
            aggregates.append(F.min_by(record, order).alias(_name(i, salt)))
    return aggregates


def observed_samples(
    observed: Mapping[str, Any], reasons: Sequence[str], rows: int
) -> dict[str, list[dict[str, Any]]]:
    """The samples per reason, as row dicts, from the observation `sample_aggregates` fed."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for i, reason in enumerate(reasons):
        found: list[dict[str, Any]] = []
        for salt in range(rows):
            picked = observed.get(_name(i, salt))
            if picked is None:
                continue
            record = json.loads(picked)
            if record not in found:
                found.append(record)
        samples[reason] = found
    return samples


def _name(reason: int, salt: int) -> str:
    return f"sample_{reason}_{salt}"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
