"""Compile a suite into PyDeequ checks, run one VerificationSuite, and read the results back.

Deequ computes every metric in as few passes as it allows (scan-shared analyzers in one
aggregation, grouping analyzers such as uniqueness in their own). Assertions are the suite's
data, evaluated in Python through PyDeequ's callback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark

os.environ.setdefault("SPARK_VERSION", ".".join(pyspark.__version__.split(".")[:2]))

from pydeequ.checks import Check as DeequCheck
from pydeequ.checks import CheckLevel, ConstrainableDataTypes
from pydeequ.repository import FileSystemMetricsRepository, ResultKey
from pydeequ.verification import VerificationSuite
from pyspark.sql import DataFrame, SparkSession

from checks.suite import Constraint, Level, Suite, SuiteError
from lakegate_errors import EnvironmentProblem

_DEEQU_LEVEL = {Level.ERROR: CheckLevel.Error, Level.WARNING: CheckLevel.Warning}


class DeequNotOnClasspath(EnvironmentProblem):
    """The JVM has no Deequ classes: the jar was not given to Spark."""


def ensure_deequ(spark: SparkSession) -> None:
    """Fail clearly when the Deequ jar is not on the driver's classpath.

    Raises:
        DeequNotOnClasspath: naming the ways to provide the jar.
    """
    from py4j.java_gateway import JavaClass

    if not isinstance(spark.sparkContext._jvm.com.amazon.deequ.checks.Check, JavaClass):
        raise DeequNotOnClasspath(
            "Deequ is not on Spark's classpath. Run the job through `lakegate submit`, which "
            "adds it, or give spark-submit the jar (--jars or --packages "
            "com.amazon.deequ:deequ:2.1.0-spark-3.5)"
        )


@dataclass(frozen=True)
class ConstraintResult:
    """Deequ's verdict on one constraint."""

    check: str
    level: Level
    constraint: str
    kind: str
    columns: list[str]
    expectation: str
    status: str  # "success" or "failure"
    metric: float | None
    message: str | None
    deequ_constraint: str
    blames_rows: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "check": self.check,
            "level": self.level.value,
            "constraint": self.constraint,
            "type": self.kind,
            "columns": self.columns,
            "expectation": self.expectation,
            "status": self.status,
            "metric": self.metric,
            "message": self.message,
            "deequ_constraint": self.deequ_constraint,
            "row_level": self.blames_rows,
        }


@dataclass(frozen=True)
class VerificationOutcome:
    """All constraint results of one run, in suite order."""

    results: list[ConstraintResult]

    def failed(self, level: Level | None = None) -> list[ConstraintResult]:
        """The failing constraints, optionally of one level."""
        return [
            r for r in self.results if r.status == "failure" and (level is None or r.level == level)
        ]

    @property
    def status(self) -> str:
        """`failure` if an error-level constraint failed, `warning` if only warnings did."""
        if self.failed(Level.ERROR):
            return "failure"
        return "warning" if self.failed(Level.WARNING) else "success"


def _add_constraint(check: DeequCheck, c: Constraint) -> DeequCheck:
    a = c.args
    hint = a.hint
    test = a.holds if getattr(a, "has_assertion", lambda: False)() else None
    k = c.kind
    if k == "hasSize":
        check = check.hasSize(test, hint)
    elif k == "isComplete":
        check = check.isComplete(a.column, hint)
    elif k == "areComplete":
        check = check.areComplete(a.columns, hint)
    elif k == "hasCompleteness":
        check = check.hasCompleteness(a.column, test, hint)
    elif k == "isUnique":
        key = a.key
        check = (
            check.isUnique(key[0], hint)
            if len(key) == 1
            else check.hasUniqueness(key, lambda x: x == 1.0, hint)
        )
    elif k == "hasUniqueness":
        check = check.hasUniqueness(a.columns, test, hint)
    elif k == "hasDistinctness":
        check = check.hasDistinctness(a.columns, test, hint)
    elif k == "isContainedIn":
        check = check.isContainedIn(a.column, [str(v) for v in a.values], test, hint)
    elif k == "isInRange":
        check = check.satisfies(_range_predicate(a.column, a.min, a.max), c.id, None, hint)
    elif k == "isNonNegative":
        check = check.isNonNegative(a.column, test, hint)
    elif k == "isPositive":
        check = check.isPositive(a.column, test, hint)
    elif k == "containsURL":
        check = check.containsURL(a.column, test, hint)
    elif k == "containsEmail":
        check = check.containsEmail(a.column, test, hint)
    elif k == "hasPattern":
        check = check.hasPattern(a.column, a.pattern, test, None, hint)
    elif k == "hasApproxQuantile":
        check = check.hasApproxQuantile(a.column, a.quantile, test, hint)
    elif k in {
        "hasMin",
        "hasMax",
        "hasMean",
        "hasSum",
        "hasStandardDeviation",
        "hasEntropy",
        "hasMinLength",
        "hasMaxLength",
        "hasApproxCountDistinct",
    }:
        check = getattr(check, k)(a.column, test, hint)
    elif k == "hasDataType":
        check = check.hasDataType(a.column, getattr(ConstrainableDataTypes, a.datatype), test, hint)
    elif k == "hasCorrelation":
        check = check.hasCorrelation(a.column_a, a.column_b, test, hint)
    elif k in {"isLessThan", "isLessThanOrEqualTo", "isGreaterThan", "isGreaterThanOrEqualTo"}:
        check = getattr(check, k)(a.column_a, a.column_b, test, hint)
    else:  # pragma: no cover - CONSTRAINT_TYPES and this function move together
        raise AssertionError(f"no Deequ compilation for {k}")
    if a.where:
        try:
            check = check.where(a.where)
        except TypeError:
            raise SuiteError(
                f"{c.check!r} constraint {c.index + 1} ({k}): Deequ cannot filter this "
                "constraint with `where`; remove it or move the filter into another constraint"
            ) from None
    return check


def _quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def _range_predicate(column: str, low: float | None, high: float | None) -> str:
    parts = []
    if low is not None:
        parts.append(f"{_quote(column)} >= {low!r}")
    if high is not None:
        parts.append(f"{_quote(column)} <= {high!r}")
    # Null values are the business of completeness constraints.
    return f"{_quote(column)} IS NULL OR ({' AND '.join(parts)})"


def compile_checks(spark: SparkSession, suite: Suite) -> list[DeequCheck]:
    """Build one PyDeequ `Check` per suite check, constraints in suite order."""
    compiled = []
    for check in suite.checks:
        deequ_check = DeequCheck(spark, _DEEQU_LEVEL[check.level], check.name)
        for constraint in check.constraints:
            deequ_check = _add_constraint(deequ_check, constraint)
        compiled.append(deequ_check)
    return compiled


def _metric_value(j_metric_option: Any) -> float | None:
    if not j_metric_option.isDefined():
        return None
    value_try = j_metric_option.get().value()
    if not value_try.isSuccess():
        return None
    value = value_try.get()
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) else number
    return None


def verify(
    spark: SparkSession,
    df: DataFrame,
    suite: Suite,
    *,
    repository: Path | None = None,
    tags: dict[str, str] | None = None,
) -> VerificationOutcome:
    """Run the suite's checks over `df` in one VerificationSuite and return results in order.

    When `repository` is given, the metrics are appended to a Deequ FileSystemMetricsRepository
    there, keyed by the current time and `tags`.
    """
    ensure_deequ(spark)
    checks = compile_checks(spark, suite)
    builder = VerificationSuite(spark).onData(df)
    for check in checks:
        builder = builder.addCheck(check)
    if repository is not None:
        repository.parent.mkdir(parents=True, exist_ok=True)
        repo = FileSystemMetricsRepository(spark, str(repository))
        key = ResultKey(spark, ResultKey.current_milli_time(), tags or {})
        builder = builder.useRepository(repo).saveOrAppendResult(key)
    result = builder.run()
    j_results = result.verificationRun.checkResults()
    outcomes: list[ConstraintResult] = []
    for check, deequ_check in zip(suite.checks, checks, strict=True):
        j_check_result = j_results.get(deequ_check._Check).get()
        j_constraints = j_check_result.constraintResults()
        for i, constraint in enumerate(check.constraints):
            j_result = j_constraints.apply(i)
            message = j_result.message()
            outcomes.append(
                ConstraintResult(
                    check=check.name,
                    level=check.level,
                    constraint=constraint.id,
                    kind=constraint.kind,
                    columns=constraint.columns,
                    expectation=constraint.assertion_text(),
                    status=j_result.status().toString().lower(),
                    metric=_metric_value(j_result.metric()),
                    message=message.get() if message.isDefined() else None,
                    deequ_constraint=j_result.constraint().toString(),
                    blames_rows=constraint.blames_rows,
                )
            )
    return VerificationOutcome(outcomes)


def load_history(spark: SparkSession, repository: Path, suite: str | None = None) -> DataFrame:
    """The metrics stored in a Deequ repository, newest first, optionally for one suite."""
    loader = FileSystemMetricsRepository(spark, str(repository)).load()
    if suite is not None:
        loader = loader.withTagValues({"suite": suite})
    return loader.getSuccessMetricsAsDataFrame().orderBy("dataset_date", ascending=False)
