"""Split a table into valid rows and quarantined rows, each quarantined row saying why.

Pure functions of DataFrames: the job decides which constraints failed (from Deequ's metrics)
and writes the two results; nothing here reads or writes storage.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from checks.row_rules import (
    DUPLICATE_FLAG_PREFIX,
    failures_column,
    malformed_line_failure,
    violation,
)
from checks.suite import Constraint

ERRORS_COLUMN = "_lakegate_errors"
# Up to this many duplicated keys are broadcast to the join; more go through a shuffle join.
BROADCAST_DUPLICATE_KEYS = 2_000_000


@dataclass
class Split:
    """The two halves of a table. `duplicates` must be released after writing."""

    valid: DataFrame
    quarantine: DataFrame
    duplicates: list[DataFrame]
    constraints: list[Constraint]

    def release(self) -> None:
        """Drop the cached duplicate-key tables."""
        for frame in self.duplicates:
            frame.unpersist()


def duplicate_keys(df: DataFrame, constraint: Constraint, flag: str) -> DataFrame:
    """Keys that occur more than once (within the constraint's `where` filter), with a flag."""
    key = constraint.columns
    scope = df.where(F.expr(constraint.args.where)) if constraint.args.where else df
    return (
        scope.where(
            F.greatest(*[F.col(c).isNotNull() for c in key])
            if len(key) > 1
            else F.col(key[0]).isNotNull()
        )
        .groupBy(*key)
        .count()
        .where(F.col("count") > 1)
        .select(*key, F.lit(True).alias(flag))
    )


def split_rows(
    df: DataFrame,
    failing_constraints: Sequence[Constraint],
    patterns: dict[str, str],
    malformed_column: str | None = None,
) -> Split:
    """Annotate every row with the row-level constraints it breaks and split on that.

    Only `failing_constraints` are evaluated: a constraint Deequ found satisfied by every row
    cannot blame any row. `isUnique` blames every row sharing a duplicated key, whatever the
    number of partitions. The valid half keeps the input's schema; the quarantine half adds
    `_lakegate_errors`. When `malformed_column` names a column holding the raw text of lines
    that did not parse, those rows are quarantined with it and the column itself is dropped.
    """
    original = [c for c in df.columns if c != malformed_column]
    annotated = df
    flags: dict[str, str] = {}
    cached: list[DataFrame] = []
    for i, constraint in enumerate(c for c in failing_constraints if c.kind == "isUnique"):
        flag = f"{DUPLICATE_FLAG_PREFIX}{i}"
        dups = duplicate_keys(df, constraint, flag).cache()
        cached.append(dups)
        many = dups.count() > BROADCAST_DUPLICATE_KEYS
        annotated = annotated.join(
            dups if many else F.broadcast(dups), on=constraint.columns, how="left"
        )
        flags[constraint.id] = flag
    # Decide the split on plain boolean tests (code-generated); build the failure records,
    # with their messages, only for the rows that go to quarantine.
    tests = [violation(c, patterns, flags.get(c.id))[0] for c in failing_constraints]
    if malformed_column is not None:
        tests.append(F.col(malformed_column).isNotNull())
    is_quarantined = reduce(operator.or_, tests, F.lit(False))
    failures = failures_column(failing_constraints, patterns, flags)
    if malformed_column is not None:
        failures = F.concat(malformed_line_failure(malformed_column), failures)
    valid = annotated.where(~is_quarantined).select(*original)
    quarantine = annotated.where(is_quarantined).select(*original, failures.alias(ERRORS_COLUMN))
    return Split(valid, quarantine, cached, list(failing_constraints))


def rows_breaking(constraint_id: str) -> Column:
    """Aggregate over quarantined rows: how many broke `constraint_id` (named after it)."""
    broke = F.exists(ERRORS_COLUMN, lambda e: e["constraint"] == F.lit(constraint_id))
    return F.sum(broke.cast("long")).alias(constraint_id)
