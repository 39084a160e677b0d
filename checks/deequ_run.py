"""Compile a suite into PyDeequ checks, run one VerificationSuite, and read the results back.

Deequ computes every metric in as few passes as it allows (scan-shared analyzers in one
aggregation, grouping analyzers such as uniqueness in their own). Assertions are the suite's
data, evaluated in Python through PyDeequ's callback.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark

os.environ.setdefault("SPARK_VERSION", ".".join(pyspark.__version__.split(".")[:2]))

from pydeequ.checks import Check as DeequCheck
from pydeequ.checks import CheckLevel
from pydeequ.repository import FileSystemMetricsRepository, InMemoryMetricsRepository, ResultKey
from pydeequ.verification import VerificationSuite
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DataType

from checks.arguments import Assertion
from checks.constraint_types import (
    TABLE_VIEW,
    ReferenceReader,
    deequ_schema_name,
    flag_reference,
    predicate_check,
)
from checks.row_rules import column, quote
from checks.suite import Constraint, Level, Suite, SuiteError, type_family
from lakegate_config.redaction import redact
from lakegate_errors import EnvironmentProblem, UserError

_DEEQU_LEVEL = {Level.ERROR: CheckLevel.Error, Level.WARNING: CheckLevel.Warning}


class DeequNotOnClasspath(EnvironmentProblem):
    """The JVM has no Deequ classes: the jar was not given to Spark."""


def ensure_deequ(spark: SparkSession) -> None:
    """Fail clearly when the Deequ jar is not on the driver's classpath.

    Raises:
        DeequNotOnClasspath: naming the ways to provide the jar.
    """
    from py4j.java_gateway import JavaClass

    jvm: Any = spark.sparkContext._jvm
    if not isinstance(jvm.com.amazon.deequ.checks.Check, JavaClass):
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
    contract: dict[str, Any] | None = None  # the data-contract rule it came from (path, id...)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        found = {
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
        return found | ({"contract": self.contract} if self.contract else {})


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


def _add_constraint(check: DeequCheck, c: Constraint, types: Mapping[str, DataType]) -> DeequCheck:
    a = c.args
    quoted = [name for name in c.columns if "`" in name]
    if quoted and not c.type.dotted_names:
        where = f"{c.check!r} constraint {c.index + 1} ({c.kind})"
        raise SuiteError(
            f"{where}: Deequ's histogram cannot read column {quoted[0]!r} (a back-quote in its "
            f"name); rename it first, e.g. SELECT *, {quote(quoted[0])} AS "
            f"{quoted[0].replace('`', '_')}"
        )
    test = a.holds if isinstance(a, Assertion) and a.has_assertion() else None
    if c.type.predicate is not None:
        check = predicate_check(check, c.type, a, test, types)
    else:
        check = c.type.deequ(check, a, test, a.hint)
    if a.where:
        try:
            check = check.where(a.where)
        except TypeError:
            raise SuiteError(
                f"{c.check!r} constraint {c.index + 1} ({c.kind}): Deequ cannot filter this "
                "constraint with `where`; remove it or move the filter into another constraint"
            ) from None
    return check


def with_reference_flags(
    spark: SparkSession, df: DataFrame, suite: Suite, reader: ReferenceReader | None
) -> DataFrame:
    """`df` with the flag of every `isContainedInTable` constraint (`flag_reference`).

    Each reference table is read once through `reader` (the job layer's table reading) and its
    key columns checked against `df`'s before any Spark job runs.

    Raises:
        SuiteError: no reader, a reference table that cannot be read, a key column it lacks,
            or a key column whose type cannot equal the reference's; naming the suite line.
    """
    constraints = [c for c in suite.constraints if c.type.joins_reference]
    read: dict[str, DataFrame] = {}
    for c in constraints:
        label = f"{suite.path}:{c.line}: check {c.check!r}, constraint {c.index + 1} ({c.kind})"
        table = c.args.table
        if reader is None:
            raise SuiteError(
                f"{label}: this command cannot read reference tables; run the suite with "
                "`lakegate validate` or `lakegate stream validate`"
            )
        if table not in read:
            try:
                read[table] = reader(spark, table)
            except UserError as exc:
                raise SuiteError(
                    f"{label}: reference table {redact(table)!r} cannot be read: {exc}"
                ) from None
        _check_reference_key(label, df, c, read[table])
        df = flag_reference(df, c.args, read[table])
    return df


def _check_reference_key(label: str, df: DataFrame, c: Constraint, reference: DataFrame) -> None:
    """Refuse a reference key column the reference lacks, or one that cannot equal the key."""
    own = {f.name: f.dataType for f in df.schema.fields}
    theirs = {f.name: f.dataType for f in reference.schema.fields}
    table = redact(c.args.table)
    for mine, key in zip(c.args.own_key, c.args.reference_key, strict=True):
        if key not in theirs:
            raise SuiteError(
                f"{label}: the reference table {table!r} has no column {key!r} (it has "
                f"{', '.join(theirs)}); name its key with `key:`"
            )
        if mine not in own:
            continue  # the preflight names an unknown column of the table itself
        a, b = own[mine].simpleString(), theirs[key].simpleString()
        if _comparable_family(a) != _comparable_family(b):
            raise SuiteError(
                f"{label}: column {mine!r} is {a} but the reference key {key!r} of {table!r} "
                f"is {b}; keys compare only within one type, cast one of them first"
            )


def _comparable_family(type_name: str) -> str:
    """Types whose values compare with each other: numbers by value, others by family."""
    family = type_family(type_name)
    return "number" if family in {"integral", "fractional"} else family


def compile_checks(
    spark: SparkSession, suite: Suite, table: DataFrame | None = None
) -> list[DeequCheck]:
    """Build one PyDeequ `Check` per suite check, constraints in suite order.

    A suite whose constraints read the table through SQL (`customSql`) needs `table`: it is
    registered as the temporary view `TABLE_VIEW` their queries name. `table`'s column types
    also type the literals of predicate-judged constraints (`isContainedIn`'s values).
    """
    if table is not None and any(c.type.reads_table for c in suite.constraints):
        table.createOrReplaceTempView(TABLE_VIEW)
    types = {f.name: f.dataType for f in table.schema.fields} if table is not None else {}
    compiled = []
    for check in suite.checks:
        deequ_check = DeequCheck(spark, _DEEQU_LEVEL[check.level], check.name)
        for constraint in check.constraints:
            deequ_check = _add_constraint(deequ_check, constraint, types)
        compiled.append(deequ_check)
    return compiled


def _metric_value(j_result: Any, constraint: Constraint) -> float | None:
    """The number a constraint asserted on.

    A metric that is not a number (a Distribution: `hasDataType`, `hasNumberOfDistinctValues`,
    `hasHistogramValues`) is read by the type's `metric_of`, or by the value picker of Deequ's
    own constraint (for `hasDataType`, the share of values of the type that Deequ asserts on).
    """
    j_metric_option = j_result.metric()
    if not j_metric_option.isDefined():
        return None
    value_try = j_metric_option.get().value()
    if not value_try.isSuccess():
        return None
    value = value_try.get()
    if not isinstance(value, int | float):
        if constraint.type.metric_of is not None:
            value = constraint.type.metric_of(constraint.args, value)
        else:
            value = _deequ_value_picked(j_result.constraint(), value)
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) else number
    return None


def _deequ_value_picked(j_constraint: Any, value: Any) -> Any:
    """Apply the value picker of the analysis-based constraint inside Deequ's decorators."""
    from py4j.protocol import Py4JError

    inner = j_constraint
    for _ in range(8):  # NamedConstraint(RowLevelConstraint(...)): unwrap the decorators
        try:
            inner = inner.inner()
        except Py4JError:
            break
    try:
        picker = inner.valuePicker()
    except Py4JError:
        return None
    return picker.get().apply(value) if picker.isDefined() else None


def verify(
    spark: SparkSession,
    df: DataFrame,
    suite: Suite,
    *,
    repository: Path | None = None,
    tags: dict[str, str] | None = None,
    reference_reader: ReferenceReader | None = None,
) -> VerificationOutcome:
    """Run the suite's checks over `df` in one VerificationSuite and return results in order.

    When `repository` is given, the metrics are appended to a Deequ FileSystemMetricsRepository
    there, keyed by the current time and `tags`. `reference_reader` reads the reference tables
    of `isContainedInTable` constraints (`with_reference_flags`).
    """
    ensure_deequ(spark)
    checks = compile_checks(spark, suite, df)
    flagged = with_reference_flags(spark, df, suite, reference_reader)
    builder = VerificationSuite(spark).onData(deequ_frame(flagged, suite.columns()))
    for check in checks:
        builder = builder.addCheck(check)
    if repository is not None:
        repo = metrics_repository(spark, repository)
        builder = builder.useRepository(repo).saveOrAppendResult(result_key(spark, tags))
    result = builder.run()
    j_results = result.verificationRun.checkResults()
    return read_results(suite, checks, lambda check: j_results.get(check._Check).get())


def deequ_frame(df: DataFrame, columns: Iterable[str]) -> DataFrame:
    """`df` as Deequ's schema checks need it (back-quoted names also under Deequ's spelling).

    A column holding a back-quote is added again under the name Deequ looks it up by
    (`deequ_schema_name`: back-quotes doubled). Deequ's analyzers read such a
    column as `col("`a``b`")`, which Spark resolves to `a`b`, but check the schema for `a``b`;
    the copy (never read, never written) satisfies that check. Other frames are unchanged.
    """
    present = {c.lower() for c in df.columns}
    shadows = {}
    for name in columns:
        shadow = deequ_schema_name(name)
        if shadow != name and shadow.lower() not in present and name in df.columns:
            shadows[shadow] = column(name)
    return df.withColumns(shadows) if shadows else df


def metrics_repository(spark: SparkSession, repository: Path) -> Any:
    """A PyDeequ FileSystemMetricsRepository for one save: a new file under `runs_folder`.

    Each call gets its own `<ms>-<id>.json`, which Deequ writes once and no other run rewrites,
    so concurrent runs lose nothing and a reader never sees a half-rewritten history.
    """
    folder = runs_folder(repository)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex}.json"
    return FileSystemMetricsRepository(spark, str(path))


def runs_folder(repository: Path) -> Path:
    """The folder of the per-run history files next to the (legacy) repository file."""
    return Path(repository).parent / "runs"


# The tag `stream validate` puts on its entries (`batch`, `total`, `event`): a table's runs are
# no stream's history and a stream's batches no table's.
WINDOW_TAG = "window"


def is_stream_entry(tags: Mapping[str, Any]) -> bool:
    """Whether a saved run's tags are a stream's (a window of a stream, not a table's run)."""
    return tags.get(WINDOW_TAG) is not None


def history_files(repository: Path) -> list[Path]:
    """The legacy single repository file (when present) and every run file, oldest first."""
    legacy = [Path(repository)] if Path(repository).is_file() else []
    folder = runs_folder(repository)
    runs = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return legacy + runs


def history_repository(spark: SparkSession, repository: Path) -> Any:
    """A PyDeequ InMemoryMetricsRepository holding every saved run (`history_files`).

    Results saved under the same key (one run saving in several steps) are merged, as Deequ's
    `saveOrAppendResult` would have merged them in a single file.
    """
    jvm: Any = spark.sparkContext._jvm
    merged = InMemoryMetricsRepository(spark)
    for path in history_files(repository):
        saved = FileSystemMetricsRepository(spark, str(path)).repository.load().get()
        for result in jvm.scala.collection.JavaConverters.seqAsJavaList(saved):
            key, context = result.resultKey(), result.analyzerContext()
            earlier = merged.repository.loadByKey(key)
            if earlier.isDefined():
                context = getattr(earlier.get(), "$plus$plus")(context)
            merged.repository.save(key, context)
    return merged


def result_key(spark: SparkSession, tags: dict[str, str] | None, when: int | None = None) -> Any:
    """A PyDeequ ResultKey for `when` (ms; default now), with `tags`."""
    moment = when if when is not None else ResultKey.current_milli_time()
    return ResultKey(spark, moment, tags or {})


def read_results(
    suite: Suite, checks: list[DeequCheck], check_result: Callable[[DeequCheck], Any]
) -> VerificationOutcome:
    """Read Deequ's CheckResults (`check_result(check)` for each check) in suite order."""
    outcomes: list[ConstraintResult] = []
    for check, deequ_check in zip(suite.checks, checks, strict=True):
        j_check_result = check_result(deequ_check)
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
                    metric=_metric_value(j_result, constraint),
                    message=message.get() if message.isDefined() else None,
                    deequ_constraint=j_result.constraint().toString(),
                    blames_rows=constraint.blames_rows,
                    contract=dict(constraint.meta) or None,
                )
            )
    return VerificationOutcome(outcomes)


def load_history(spark: SparkSession, repository: Path, suite: str | None = None) -> DataFrame:
    """The metrics of every saved run (`history_files`), newest first, optionally for one suite."""
    loader = history_repository(spark, repository).load()
    if suite is not None:
        loader = loader.withTagValues({"suite": suite})
    metrics: DataFrame = loader.getSuccessMetricsAsDataFrame()
    return metrics.orderBy("dataset_date", ascending=False)
