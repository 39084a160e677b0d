"""report.html's quarantined samples: observed while the quarantine is written, or read back.

For each reason (a constraint that blamed rows) the quarantine's observation keeps `rows`
candidates: the quarantined row blaming that reason with the smallest salted hash, one salt per
candidate (`min_by`, one row of state each, so memory stays flat whatever the quarantine's size).
Distinct candidates are the samples: up to `rows` rows per reason, fewer only when the reason
blamed fewer rows or two salts picked the same row. Values come as Spark's `Row.json` gives
them (dates and timestamps as strings, maps as objects), which is what report.html prints.
A table of more than `OBSERVED_SAMPLES_MAX_ROWS` rows is sampled by reading back the
quarantine just written (`read_back_samples`), whose cost does not grow with the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StructType

from checks.gate import ERRORS_COLUMN
from checks.row_rules import column

# Up to this many rows read, the samples ride on the quarantine's write. There they cost about
# 1 microsecond of CPU per quarantined row (3M rows, all quarantined: 3.4 s) plus a share per
# task (a 3M-row table with 20,000 quarantined rows paid 0.4 s, far more than its rows explain),
# while a read back of the written table costs 1-2 s at any size (mostly Delta's planning).
OBSERVED_SAMPLES_MAX_ROWS = 1_000_000
# A read back takes most reasons' samples from one read of the quarantine's first rows.
READ_BACK_FIRST_ROWS = 1000

Samples = dict[str, list[dict[str, Any]]]
"""Quarantined rows per reason (constraint id), each row a dict of its columns."""


def sample_aggregates(schema: StructType, reasons: Sequence[str], rows: int) -> list[Column]:
    """The observed aggregates that pick up to `rows` quarantined rows per reason in `reasons`.

    Args:
        schema: the quarantine's schema (its errors column included).
        reasons: constraint ids that blamed rows.
        rows: samples wanted per reason.
    """
    columns = [column(f.name) for f in schema.fields]
    # xxhash64 takes any type but maps; the errors column alone already tells rows apart.
    hashed = [column(f.name) for f in schema.fields if not isinstance(f.dataType, MapType)]
    record = F.struct(*columns)
    # One hash per row; each candidate orders rows by it XOR a salt of its own.
    hash_ = F.xxhash64(*hashed)
    aggregates = []
    for i, reason in enumerate(reasons):
        blamed = F.array_contains(F.col(f"{ERRORS_COLUMN}.constraint"), reason)
        for salt in range(rows):
            order = F.when(blamed, hash_.bitwiseXOR(F.lit(_salt(salt))))
            aggregates.append(F.min_by(record, order).alias(_name(i, salt)))
    return aggregates


def observed_samples(observed: Mapping[str, Any], reasons: Sequence[str], rows: int) -> Samples:
    """The samples per reason, as row dicts, from the observation `sample_aggregates` fed."""
    samples: Samples = {}
    for i, reason in enumerate(reasons):
        found: list[dict[str, Any]] = []
        for salt in range(rows):
            picked = observed.get(_name(i, salt))
            if picked is None:
                continue
            record = _as_dict(picked)
            if record not in found:
                found.append(record)
        samples[reason] = found
    return samples


def read_back_samples(
    quarantine: DataFrame,
    reasons: dict[str, int],
    rows: int,
    first: int = READ_BACK_FIRST_ROWS,
) -> Samples:
    """A few quarantined rows per reason (`reasons`: rows blamed per constraint), for report.html.

    One limited read of the quarantine's `first` rows fills most reasons; a reason with fewer
    samples there than it has rows gets a limited read of its own (each read is a Spark job of
    0.2-0.4 s, mostly Delta's planning, whatever its size).
    """
    samples: Samples = {reason: [] for reason in reasons}
    if not reasons:
        return samples
    for found in quarantine.limit(first).collect():
        record = found.asDict(recursive=True)
        for reason in {e["constraint"] for e in record[ERRORS_COLUMN]}:
            bucket = samples.get(reason)
            if bucket is not None and len(bucket) < rows:
                bucket.append(record)
    for reason, bucket in samples.items():
        if len(bucket) < min(rows, reasons[reason]):
            broke = quarantine.where(F.array_contains(f"{ERRORS_COLUMN}.constraint", reason))
            samples[reason] = [r.asDict(recursive=True) for r in broke.limit(rows).collect()]
    return samples


def _as_dict(picked: Any) -> dict[str, Any]:
    """An observed struct as a dict: PySpark 3.5 hands it over as a JVM row (`Row.json`)."""
    if isinstance(picked, Row):
        return dict(picked.asDict(recursive=True))
    return dict(json.loads(picked.json()))


def _salt(index: int) -> int:
    """A 64-bit constant per candidate (Fibonacci hashing), as Spark's signed long."""
    value = ((index + 1) * 0x9E3779B97F4A7C15) % (1 << 64)
    return value - (1 << 64) if value >= 1 << 63 else value


def _name(reason: int, salt: int) -> str:
    return f"sample_{reason}_{salt}"
