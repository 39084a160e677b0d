"""The one entry point to the quality gate: `apply_suite`; Deequ's metrics ride on the write.

`apply_suite(spark, df, suite)` returns a `Gate`: its `valid` frame (the input's schema) carries
every metric Deequ needs as an observation, so the pass that writes the valid rows also computes
the metrics; its `quarantine` frame adds `_lakegate_errors` to every row an error-level row rule
blames. After the writes, `gate.verdict()` hands the observed states to Deequ
(`VerificationSuite.runOnAggregatedStates`), which judges exactly as a plain run would;
`gate.save_metrics()` appends the metrics to the repository.

How each of the suite's analyzers gets its state:
- scan-shareable ones (Size, Completeness, Compliance, PatternMatch, Mean, quantiles, ...): their
  aggregation functions ride in one struct on `Dataset.observe` of the valid write;
- grouping ones (Uniqueness, Distinctness, Entropy, ...): one key-only grouping per key and filter
  gives Deequ its `FrequenciesAndNumRows` and the split its duplicated keys. Where every analyzer
  of a grouping reads only the counts (Uniqueness, Distinctness, UniqueValueRatio, CountDistinct),
  only the duplicated keys are cached and Deequ gets them with one count-1 row per unique key
  (generated, not stored); otherwise the whole frequency table is cached;
- the rest (DataType's aggregate does not observe): a Deequ pass of their own, only when present.

An `isContainedInTable` constraint's reference table is read through the caller's reader and its
distinct keys joined to the table as a flag column (`constraint_types.flag_reference`) before
anything else: its Deequ `Compliance` rides on the same observation and its row rule reads the
same flag, so the quarantine split and the metric agree.

Every error-level row rule is evaluated in the same pass and the rows it blames are counted; a rule
and its Deequ metric must agree (rows blamed <=> metric below 1), else `GateInconsistent`.
Nothing here reads or writes storage.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
)

from checks.arguments import unquote_column
from checks.constraint_types import ReferenceReader
from checks.deequ_run import (
    VerificationOutcome,
    compile_checks,
    deequ_frame,
    ensure_deequ,
    metrics_repository,
    read_results,
    result_key,
    with_reference_flags,
)
from checks.row_rules import (
    DUPLICATE_FLAG_PREFIX,
    MALFORMED_CONSTRAINT,
    RowContext,
    column,
    deequ_patterns,
    failures_column,
    malformed_line_failure,
    violation,
)
from checks.suite import (
    Constraint,
    Level,
    Suite,
    SuiteError,
    check_against_schema,
    check_sql_conditions,
)

ERRORS_COLUMN = "_lakegate_errors"
RESERVED_PREFIX = "_lakegate_"
# Up to this many duplicated keys of one column whose values compare exactly in Python (strings,
# integers) are inlined as an IN list: a hash-set lookup per row, cheaper than a join.
INLINE_DUPLICATE_KEYS = 1_000
_INLINE_KEY_TYPES = (StringType, ByteType, ShortType, IntegerType, LongType)
# Up to this many duplicated keys are broadcast to the join; more go through a shuffle join.
BROADCAST_DUPLICATE_KEYS = 2_000_000
# Analyzers whose aggregate cannot run inside `observe` (NotSerializableException), and the
# higher moments, whose partial states `observe` merges in task-completion order: their last
# digits would vary from run to run and from a plain Deequ run.
NOT_OBSERVABLE = frozenset({"DataType", "Kurtosis", "Skewness"})
_PACKED = "deequ_states"
# Grouping analyzers whose metric is an exact integer sum over the frequency table's counts
# (Deequ's `aggregationFunctions(numRows)`): any table with the same counts gives the same metric.
COUNTS_ONLY = frozenset({"Uniqueness", "Distinctness", "UniqueValueRatio", "CountDistinct"})


class GateInconsistent(RuntimeError):
    """A row rule and Deequ's metric disagree: a bug in lakegate's rule for that constraint."""


def check_reserved_columns(df: DataFrame, allowed: Sequence[str] = ()) -> None:
    """Refuse input columns named like lakegate's own (`_lakegate_...`, in any case).

    Spark resolves names case-insensitively, so `_LAKEGATE_ERRORS` is the errors column too.

    Raises:
        SuiteError: naming the columns and the fix.
    """
    clash = [c for c in df.columns if c.lower().startswith(RESERVED_PREFIX) and c not in allowed]
    if clash:
        raise SuiteError(
            f"the input has column(s) {', '.join(repr(c) for c in clash)}, a name lakegate "
            f"reserves for its own output; drop or rename them first (a quarantine table is "
            f"validated again with `SELECT * EXCEPT ({ERRORS_COLUMN})`)"
        )


def check_filters(df: DataFrame, suite: Suite) -> None:
    """Refuse `where` filters that do not analyse against the table (no Spark job runs).

    Raises:
        SuiteError: naming the suite line and the filter.
    """
    conditions = [
        (c.line, f"check {c.check!r}, constraint {c.index + 1} ({c.kind})", "where", c.args.where)
        for c in suite.constraints
    ]
    for entry in suite.anomalies:
        label = f"anomaly check {entry.index + 1} ({entry.label})"
        conditions.append((entry.line, label, "where", entry.args.where))
        conditions.append((entry.line, label, "predicate", entry.args.predicate))
    for line, label, role, condition in conditions:
        if not condition:
            continue
        try:
            df.where(condition).schema  # noqa: B018
        except AnalysisException as exc:
            reason = str(exc).splitlines()[0]
            raise SuiteError(
                f"{suite.path}:{line}: {label}: {role} {condition!r} is not a valid filter here: "
                f"{reason}"
            ) from None


def preflight(df: DataFrame, suite: Suite, malformed_column: str | None = None) -> None:
    """What every caller of the gate gets checked before any Spark job runs.

    Reserved column names, the suite's `schema:` and column types, its `where` filters and its
    `satisfies` conditions, all against `df` (less its malformed-line column).

    Raises:
        SuiteError: naming the suite line (or the column) and the fix.
    """
    check_reserved_columns(df, [malformed_column] if malformed_column else [])
    data = df.drop(malformed_column) if malformed_column else df
    check_against_schema(suite, data.schema)
    check_filters(df, suite)
    check_sql_conditions(data, suite)


def _scala_iter(collection: Any) -> list[Any]:
    items, iterator = [], collection.iterator()
    while iterator.hasNext():
        items.append(iterator.next())
    return items


def _call_or_none(obj: Any, method: str) -> Any:
    """Call a no-argument JVM method, or None when the object has no such method."""
    from py4j.protocol import Py4JError

    try:
        return getattr(obj, method)()
    except Py4JError:
        return None


@dataclass
class _Grouping:
    """One key grouping (columns and filter): Deequ's frequencies, the duplicated keys, totals.

    `cached` is what `Gate.release` drops: the whole frequency table, or only its duplicated keys.
    """

    columns: list[str]
    where: str | None
    frequencies: DataFrame | None
    num_rows: int = 0
    duplicated: int = 0
    duplicates: DataFrame | None = None
    cached: DataFrame | None = None
    analyzers: list[Any] = field(default_factory=list)
    duplicate_rows: int = 0

    def duplicated_keys(self) -> DataFrame:
        """The frequency rows of keys that occur more than once."""
        if self.duplicates is not None:
            return self.duplicates
        assert self.frequencies is not None
        return self.frequencies.where(F.col(_count_column(self.frequencies.sparkSession)) > 1)

    def persist(
        self, spark: SparkSession, provider: Any, frequencies: DataFrame, rows: int
    ) -> None:
        """Deequ's state (`FrequenciesAndNumRows`) for each of the grouping's analyzers."""
        jvm: Any = spark._jvm
        for analyzer in self.analyzers:
            state = jvm.com.amazon.deequ.analyzers.FrequenciesAndNumRows(
                frequencies._jdf, rows, jvm.scala.Option.empty()
            )
            provider.persist(analyzer, state)

    def persist_counted(self, spark: SparkSession, provider: Any, rows: int) -> None:
        """Deequ's state from the duplicated keys and `rows`: one count-1 row per unique key."""
        assert self.duplicates is not None
        fields = self.duplicates.schema.fields
        ones = spark.range(rows - self.duplicate_rows).select(
            *[F.lit(None).cast(f.dataType).alias(f.name) for f in fields[:-1]],
            F.lit(1).cast(fields[-1].dataType).alias(fields[-1].name),
        )
        self.persist(spark, provider, self.duplicates.unionByName(ones), rows)


@dataclass
class Gate:
    """A suite applied to a table, ready to write: see the module docstring."""

    spark: SparkSession
    suite: Suite
    valid: DataFrame
    quarantine: DataFrame
    row_constraints: list[Constraint]
    repository: Path | None
    tags: dict[str, str]
    _checks: list[Any]
    _schema: Any
    _provider: Any
    _observation: Observation
    _observable: list[tuple[Any, int]]
    _analyzers: list[Any]
    _has_malformed: bool
    _cached: list[DataFrame] = field(default_factory=list)
    _standalone: list[Any] = field(default_factory=list)
    _context: Any = None
    _judged_at: int = 0
    _counted: list[_Grouping] = field(default_factory=list)
    _observed: dict[str, Any] | None = None
    _unobserved_valid: DataFrame | None = None

    def valid_without_metrics(self) -> DataFrame:
        """The valid rows as `valid` selects them, without the metrics' observation.

        For a second pass over (a part of) the valid rows after `valid` was written: a pass
        over `valid` itself computes every metric of the table again.
        """
        return self._unobserved_valid if self._unobserved_valid is not None else self.valid

    @property
    def analyzers(self) -> list[Any]:
        """Every JVM Deequ analyzer the gate computes (the checks' and the extra ones), once."""
        return list(self._analyzers)

    @property
    def compiled_checks(self) -> list[Any]:
        """The suite's checks compiled for Deequ (pydeequ `Check`s), to judge other metrics."""
        return list(self._checks)

    @property
    def deequ_schema(self) -> Any:
        """The JVM schema of the table Deequ judged (its analyzers' preconditions read it)."""
        return self._schema

    def batch_state(self, analyzer: Any) -> Any:
        """The JVM `Option` of `analyzer`'s state in this table (filled once `verdict` ran).

        A grouping analyzer's state may hold only the duplicated keys plus generated count-1
        rows (enough for this verdict, not for merging by key).
        """
        return self._provider.load(analyzer)

    @property
    def analyzer_context(self) -> Any:
        """Deequ's JVM `AnalyzerContext` of every metric (available once `verdict` ran)."""
        if self._context is None:
            raise RuntimeError("the gate has no metrics before verdict() ran")
        return self._context

    @property
    def observed(self) -> dict[str, Any]:
        """What the valid write counted: rows, quarantined rows, rows blamed per rule."""
        if self._observed is None:
            # `Observation.get` copies the JVM's map entry by entry, a py4j call each; the
            # values are final once the valid write finished.
            self._observed = self._observation.get
        return self._observed

    @property
    def rows_in(self) -> int:
        """Rows read (available once `valid` was written)."""
        return int(self.observed["rows"])

    @property
    def rows_to_quarantine(self) -> int:
        """Rows the valid write left out (available once `valid` was written)."""
        return int(self.observed["quarantined"] or 0)

    def reasons(self) -> dict[str, int]:
        """Rows blamed per constraint id, for constraints that blamed any (`parseable` first)."""
        observed = self.observed
        counts = (
            {MALFORMED_CONSTRAINT: int(observed["malformed"] or 0)} if self._has_malformed else {}
        )
        for i, constraint in enumerate(self.row_constraints):
            counts[constraint.id] = int(observed[f"blamed_{i}"] or 0)
        return {cid: n for cid, n in counts.items() if n}

    def quarantine_to_write(self) -> DataFrame:
        """The quarantine frame, or an empty one without a scan when the valid write left none."""
        if self.rows_to_quarantine:
            return self.quarantine
        return self.quarantine.limit(0)  # optimized to an empty LocalRelation: no scan

    def verdict(self) -> VerificationOutcome:
        """Deequ's verdict from the observed states (call after `valid` was written).

        The metrics are not saved yet: `save_metrics` does that (validate calls it once every
        output is written, so a failed run saves none).

        Raises:
            GateInconsistent: a row rule blamed rows Deequ's metric did not count, or the reverse.
        """
        observed = self.observed
        for i, grouping in enumerate(self._counted):
            grouping.persist_counted(self.spark, self._provider, int(observed[f"keyed_{i}"]))
        row = self._observation._jo.get().apply(_PACKED)  # type: ignore[union-attr]
        empty = []
        for analyzer, offset in self._observable:
            state = analyzer.fromAggregationResult(row, offset)
            if state.isDefined():
                self._provider.persist(analyzer, state.get())
            else:
                empty.append(analyzer)
        # A standalone analyzer that saw no value (Kurtosis of no rows) persisted no state.
        empty += [a for a in self._standalone if not self._provider.load(a).isDefined()]
        stated = [a for a in self._analyzers if a not in empty]
        context = _metrics_from_states(self.spark, self._schema, stated, self._provider)
        context = _with_empty_states(self.spark, context, empty)
        self._context = context
        self._judged_at = int(time.time() * 1000)
        outcome = read_results(self.suite, self._checks, lambda c: c._Check.evaluate(context))
        self._check_consistency(outcome)
        return outcome

    def save_metrics(self) -> None:
        """Append the verdict's metrics to the repository (when the gate has one)."""
        if self.repository is None:
            return
        repository = metrics_repository(self.spark, self.repository).repository
        key = result_key(self.spark, self.tags, self._judged_at)
        repository.save(key.resultKey, self.analyzer_context)

    def metric_records(self) -> list[dict[str, Any]]:
        """The verdict's metrics as the repository gives them back, with date and tags.

        The rows `history_records` reads once `save_metrics` ran: Deequ's own flattening
        (`successMetricsAsDataFrame`), stamped with the verdict's time and the gate's tags.
        """
        jvm: Any = self.spark._jvm
        contexts = jvm.com.amazon.deequ.analyzers.runners.AnalyzerContext
        every = getattr(contexts, "successMetricsAsDataFrame$default$3")()
        metrics = contexts.successMetricsAsDataFrame(
            self.spark._jsparkSession, self.analyzer_context, every
        )
        rows = DataFrame(metrics, self.spark).collect()
        stamp = {"dataset_date": self._judged_at, **self.tags}
        return [row.asDict() | stamp for row in rows]

    def _check_consistency(self, outcome: VerificationOutcome) -> None:
        by_id = {r.constraint: r for r in outcome.results}
        reasons = self.reasons()
        for constraint in self.row_constraints:
            result, blamed = by_id[constraint.id], reasons.get(constraint.id, 0)
            below_one = result.metric is not None and result.metric < 1
            if (blamed > 0 and result.status == "success") or (blamed == 0 and below_one):
                raise GateInconsistent(
                    f"{constraint.id}: the row rule blamed {blamed} row(s) but Deequ's metric is "
                    f"{result.metric} ({result.status}); a bug in lakegate, please report it"
                )

    def release(self) -> None:
        """Drop the cached key groupings."""
        for frame in self._cached:
            frame.unpersist()


def _rounds(analyzers: Sequence[Any]) -> list[list[Any]]:
    """Split analyzers so no round has two groupings of the same columns with other filters.

    Deequ's `runOnAggregatedStates` finds a grouping analyzer's state by its columns alone, so
    `isUnique(id)` and `isUnique(id) where ...` in one call would share one state.
    """
    rounds: list[list[Any]] = [[]]
    seen: dict[tuple[str, ...], list[str | None]] = {}
    for analyzer in analyzers:
        columns = _call_or_none(analyzer, "groupingColumns")
        index = 0
        if columns is not None:
            key = tuple(sorted(str(c) for c in _scala_iter(columns)))
            where = _option(_call_or_none(analyzer, "filterCondition"))
            filters = seen.setdefault(key, [])
            if where not in filters:
                filters.append(where)
            index = filters.index(where)
        while len(rounds) <= index:
            rounds.append([])
        rounds[index].append(analyzer)
    return rounds


def _metrics_from_states(
    spark: SparkSession, schema: Any, analyzers: Sequence[Any], provider: Any
) -> Any:
    """Deequ's AnalyzerContext computed from the persisted states, round by round."""
    return _run_rounds(spark, schema, analyzers, [provider], None)


def _run_rounds(
    spark: SparkSession,
    schema: Any,
    analyzers: Sequence[Any],
    loaders: Sequence[Any],
    save_to: Any,
) -> Any:
    """`runOnAggregatedStates` over `loaders` (summed), round by round (None: no analyzer)."""
    jvm: Any = spark._jvm
    runner = jvm.com.amazon.deequ.analyzers.runners.AnalysisRunner
    none = jvm.scala.Option.empty()
    save = none if save_to is None else jvm.scala.Option.apply(save_to)
    context = None
    for analyzers_of_round in _rounds(analyzers):
        analysis = jvm.com.amazon.deequ.analyzers.Analysis(_to_seq(spark, analyzers_of_round))
        storage_level = getattr(runner, "runOnAggregatedStates$default$5")()
        found = runner.runOnAggregatedStates(
            schema, analysis, _to_seq(spark, loaders), save, storage_level, none, none
        )
        context = found if context is None else getattr(context, "$plus$plus")(found)
    return context


def metrics_of_states(
    spark: SparkSession,
    schema: Any,
    analyzers: Sequence[Any],
    loaders: Sequence[Any],
    save_to: Any = None,
) -> Any:
    """Deequ's AnalyzerContext of `analyzers` from the states `loaders` hold, summed.

    Deequ's state providers (`InMemoryStateProvider`, `HdfsStateProvider`) are merged as
    `Gate.verdict` merges its own: round by round (`_rounds`), and an analyzer no loader has a
    state of gets the metric Deequ gives an empty table. With `save_to` (a state provider) the
    merged states are persisted there too.
    """
    empty = [a for a in analyzers if not any(p.load(a).isDefined() for p in loaders)]
    stated = [a for a in analyzers if a not in empty]
    context = _run_rounds(spark, schema, stated, loaders, save_to)
    context = _with_empty_states(spark, context, empty)
    if context is None:  # no analyzer at all
        jvm: Any = spark._jvm
        context = jvm.com.amazon.deequ.analyzers.runners.AnalyzerContext.empty()
    return context


def _with_empty_states(spark: SparkSession, context: Any, analyzers: Sequence[Any]) -> Any:
    """Add the metric Deequ gives an analyzer that saw no value (no rows, or all null)."""
    if not analyzers:
        return context
    jvm: Any = spark._jvm
    metrics = getattr(getattr(jvm.scala.collection.immutable, "Map$"), "MODULE$").empty()
    for analyzer in analyzers:
        metric = analyzer.computeMetricFrom(jvm.scala.Option.empty())
        metrics = metrics.updated(analyzer, metric)
    found = jvm.com.amazon.deequ.analyzers.runners.AnalyzerContext(metrics)
    return found if context is None else getattr(context, "$plus$plus")(found)


def _to_seq(spark: SparkSession, items: Sequence[Any]) -> Any:
    from pyspark.sql.column import _to_seq as to_seq

    return to_seq(spark.sparkContext, list(items))


def _classify(analyzers: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Split analyzers into (observable, grouping, standalone)."""
    observable, grouping, standalone = [], [], []
    for analyzer in analyzers:
        name = analyzer.getClass().getSimpleName()
        if _call_or_none(analyzer, "groupingColumns") is not None:
            grouping.append(analyzer)
        elif name not in NOT_OBSERVABLE and _call_or_none(analyzer, "aggregationFunctions"):
            observable.append(analyzer)
        else:
            standalone.append(analyzer)
    return observable, grouping, standalone


def scala_items(collection: Any) -> list[Any]:
    """The items of a JVM Scala collection (an analyzer's `groupingColumns()`, ...)."""
    return _scala_iter(collection)


def frequency_count_column(spark: SparkSession) -> str:
    """The name Deequ gives the count column of a frequencies table."""
    return _count_column(spark)


def key_columns(columns: Sequence[str]) -> list[str]:
    """A key's columns, each once, as the gate groups them (`[d, d]` groups as `d`)."""
    return _distinct(columns)


def key_in_scope(columns: list[str], where: str | None) -> Column:
    """True on the rows a key grouping counts: at least one non-null key, within `where`."""
    return _in_scope(columns, where)


def _option(value: Any) -> str | None:
    return value.get() if value is not None and value.isDefined() else None


def _count_column(spark: SparkSession) -> str:
    """The name Deequ gives the count column of a frequencies table."""
    return str(spark._jvm.com.amazon.deequ.analyzers.Analyzers.COUNT_COL())  # type: ignore[union-attr]


def _in_scope(columns: list[str], where: str | None) -> Column:
    """True on the rows a grouping counts: at least one non-null key, within the filter."""
    any_key = reduce(operator.or_, [column(c).isNotNull() for c in columns])
    return any_key & F.coalesce(F.expr(where), F.lit(False)) if where else any_key


def _distinct(columns: Sequence[str]) -> list[str]:
    """A key's columns, each once: a key naming a column twice groups as that column once."""
    return list(dict.fromkeys(columns))


def _frequencies(df: DataFrame, columns: list[str], where: str | None) -> DataFrame:
    """Deequ's frequencies: rows with at least one non-null key, filtered, counted per key.

    A column named twice in the key (`[d, d]`) is grouped once: the same groups, and the
    frequency table keeps distinct column names.
    """
    keys = [column(c) for c in _distinct(columns)]
    count = _count_column(df.sparkSession)
    scoped = df.where(_in_scope(columns, where)).select(*keys)
    return scoped.groupBy(*keys).agg(F.count(F.lit(1)).alias(count))


def _group(
    spark: SparkSession, df: DataFrame, analyzers: list[Any], provider: Any
) -> list[_Grouping]:
    """One grouping per (columns, filter).

    A grouping whose analyzers all read counts alone (`COUNTS_ONLY`) caches only its duplicated
    keys; its rows in scope are counted by the valid write and Deequ's state is persisted at
    the verdict (`_Grouping.persist_counted`). Any other caches the whole frequency table and
    its state is persisted now.
    """
    by_key: dict[tuple[tuple[str, ...], str | None], list[Any]] = {}
    for analyzer in analyzers:
        # Deequ is given `a.b` back-quoted; the frequencies are keyed by the exact names.
        columns = [unquote_column(str(c)) for c in _scala_iter(analyzer.groupingColumns())]
        where = _option(_call_or_none(analyzer, "filterCondition"))
        by_key.setdefault((tuple(columns), where), []).append(analyzer)
    groupings = []
    for (key_columns, where), members in by_key.items():
        if all(a.getClass().getSimpleName() in COUNTS_ONLY for a in members):
            groupings.append(_counted_grouping(df, list(key_columns), where, members))
            continue
        grouping = _cached_grouping(df, list(key_columns), where, members)
        assert grouping.frequencies is not None
        grouping.persist(spark, provider, grouping.frequencies, grouping.num_rows)
        groupings.append(grouping)
    return groupings


def _cached_grouping(
    df: DataFrame, columns: list[str], where: str | None, analyzers: list[Any]
) -> _Grouping:
    """The whole frequency table, cached, with its totals."""
    frequencies = _frequencies(df, columns, where).cache()
    count = F.col(_count_column(df.sparkSession))
    totals = frequencies.agg(
        F.coalesce(F.sum(count), F.lit(0)).alias("rows"),
        F.count(F.when(count > 1, 1)).alias("duplicated"),
    ).collect()[0]
    return _Grouping(
        columns,
        where,
        frequencies,
        int(totals["rows"]),
        int(totals["duplicated"]),
        cached=frequencies,
        analyzers=analyzers,
    )


def _counted_grouping(
    df: DataFrame, columns: list[str], where: str | None, analyzers: list[Any]
) -> _Grouping:
    """Only the duplicated keys, cached, with their number and rows (one job).

    A unique key column is not cached whole (a billion rows, a billion keys).
    """
    count = F.col(_count_column(df.sparkSession))
    duplicates = _frequencies(df, columns, where).where(count > 1).cache()
    totals = duplicates.agg(
        F.count(F.lit(1)).alias("keys"), F.coalesce(F.sum(count), F.lit(0)).alias("rows")
    ).collect()[0]
    return _Grouping(
        columns,
        where,
        None,
        duplicated=int(totals["keys"]),
        duplicates=duplicates,
        cached=duplicates,
        analyzers=analyzers,
        duplicate_rows=int(totals["rows"]),
    )


def _flag_duplicates(
    df: DataFrame, constraint: Constraint, grouping: _Grouping | None, flag: str
) -> DataFrame:
    """Add `flag`: true on rows whose key (within the filter) occurs more than once.

    A few duplicated values of one string or integer key are an IN list; any other key is joined
    null-safely. Either way rows (a, NULL) and (a, NULL) are duplicates, as Deequ counts.
    """
    key = _distinct(constraint.columns)
    count = F.col(_count_column(df.sparkSession))
    if grouping is None:
        frequencies = _frequencies(df, key, constraint.args.where)
        duplicated = frequencies.where(count > 1).count()
    else:
        frequencies, duplicated = grouping.duplicated_keys(), grouping.duplicated
    if not duplicated:
        return df.withColumn(flag, F.lit(False))
    in_scope = (
        F.coalesce(F.expr(constraint.args.where), F.lit(False)) if constraint.args.where else None
    )
    if _inlinable(df, key, duplicated):
        values = [r[0] for r in frequencies.where(count > 1).select(column(key[0])).collect()]
        flagged = _in_list(column(key[0]), values)
        return df.withColumn(flag, flagged if in_scope is None else flagged & in_scope)
    aliases = [f"{flag}_k{i}" for i in range(len(key))]
    dups = frequencies.where(count > 1).select(
        *[column(c).alias(a) for c, a in zip(key, aliases, strict=True)],
        F.lit(True).alias(flag),
    )
    dups = dups if duplicated > BROADCAST_DUPLICATE_KEYS else F.broadcast(dups)
    condition = reduce(
        operator.and_,
        [column(c).eqNullSafe(F.col(a)) for c, a in zip(key, aliases, strict=True)],
    )
    joined = df.join(dups, condition, "left").drop(*aliases)
    if in_scope is not None:
        joined = joined.withColumn(flag, F.col(flag) & in_scope)
    return joined


def _inlinable(df: DataFrame, key: list[str], duplicated: int) -> bool:
    """Whether the duplicated keys go inline: one string or integer column, few values."""
    if len(key) != 1 or duplicated > INLINE_DUPLICATE_KEYS:
        return False
    return isinstance(df.select(column(key[0])).schema.fields[0].dataType, _INLINE_KEY_TYPES)


def _in_list(key: Column, values: list[Any]) -> Column:
    """True on rows whose key is one of `values`, a null key included when None is one of them."""
    present = [v for v in values if v is not None]
    # One JVM call for the whole list (`isin` makes a literal per value, a call each).
    found = Column(key._jc.isInCollection(present)) if present else F.lit(False)
    if len(present) < len(values):
        found = found | key.isNull()
    return F.coalesce(found, F.lit(False))


def apply_suite(
    spark: SparkSession,
    df: DataFrame,
    suite: Suite,
    *,
    repository: Path | None = None,
    tags: dict[str, str] | None = None,
    malformed_column: str | None = None,
    extra_analyzers: Sequence[Any] = (),
    reference_reader: ReferenceReader | None = None,
) -> Gate:
    """Apply `suite` to `df`: see the module docstring. Nothing runs until `valid` is written.

    `extra_analyzers` (JVM Deequ analyzers, say the suite's anomaly metrics) are computed in the
    same pass and saved with the checks' metrics; read them from `Gate.analyzer_context`.
    `reference_reader` reads the reference tables of `isContainedInTable` constraints (each is
    read once per call, so a stream's batch sees the reference as it is then); their flags are
    joined to `df` before the row rules and Deequ's scan read them.

    Raises:
        SuiteError: an input column is named like lakegate's reserved columns; a reference
            table cannot be read or lacks its key.
        DeequNotOnClasspath: the Deequ jar is missing.
    """
    ensure_deequ(spark)
    preflight(df, suite, malformed_column)
    referenced = with_reference_flags(spark, df, suite, reference_reader)
    jvm: Any = spark._jvm
    checks = compile_checks(spark, suite, df.drop(malformed_column) if malformed_column else df)
    analyzers = _required_analyzers(checks, extra_analyzers)
    observable, grouping_analyzers, standalone = _classify(list(analyzers.values()))
    provider = jvm.com.amazon.deequ.analyzers.InMemoryStateProvider()
    original = [c for c in df.columns if c != malformed_column]
    scan = df.drop(malformed_column) if malformed_column else df
    none = jvm.scala.Option.empty()
    deequ_view = deequ_frame(scan, suite.columns())  # the schema Deequ's preconditions check
    for analyzer in standalone:
        analyzer.calculate(deequ_view._jdf, none, jvm.scala.Option.apply(provider), none)
    groupings = _group(spark, scan, grouping_analyzers, provider)

    row_constraints = _row_constraints(suite)
    annotated, flags = _flag_grouped_rules(referenced, row_constraints, groupings)
    patterns = deequ_patterns(spark) if row_constraints else {}
    types = {f.name: f.dataType for f in scan.schema.fields}
    tests = [violation(c, RowContext(patterns, flags.get(c.id), types))[0] for c in row_constraints]
    if malformed_column is not None:
        tests.append(column(malformed_column).isNotNull())
    quarantined = reduce(operator.or_, tests, F.lit(False))

    offsets, functions = _aggregation_functions(observable)
    counted = [g for g in groupings if g.frequencies is None]
    counts = _gate_counts(quarantined, tests[: len(row_constraints)], malformed_column, counted)
    observation = Observation(f"lakegate_gate_{id(df)}")
    observed = annotated.observe(observation, *counts, _pack(functions).alias(_PACKED))
    failures = failures_column(row_constraints, patterns, flags, types)
    if malformed_column is not None:
        failures = F.concat(malformed_line_failure(malformed_column), failures)
    valid = observed.where(~quarantined).select(*[column(c) for c in original])
    unobserved_valid = annotated.where(~quarantined).select(*[column(c) for c in original])
    quarantine = annotated.where(quarantined).select(
        *[column(c) for c in original], failures.alias(ERRORS_COLUMN)
    )
    return Gate(
        spark=spark,
        suite=suite,
        valid=valid,
        quarantine=quarantine,
        row_constraints=row_constraints,
        repository=repository,
        tags=dict(tags or {}),
        _checks=checks,
        _schema=deequ_view._jdf.schema(),
        _provider=provider,
        _observation=observation,
        _observable=offsets,
        _analyzers=list(analyzers.values()),
        _has_malformed=malformed_column is not None,
        _cached=[g.cached for g in groupings if g.cached is not None],
        _counted=counted,
        _standalone=standalone,
        _unobserved_valid=unobserved_valid,
    )


def _row_constraints(suite: Suite) -> list[Constraint]:
    """The constraints whose failing rows are quarantined: error level, judging single rows."""
    return [
        c
        for check in suite.checks
        if check.level is Level.ERROR
        for c in check.constraints
        if c.blames_rows
    ]


def _aggregation_functions(observable: Sequence[Any]) -> tuple[list[tuple[Any, int]], list[Column]]:
    """Every observable analyzer's aggregation functions, and each analyzer's offset into them."""
    offsets: list[tuple[Any, int]] = []
    functions: list[Column] = []
    for analyzer in observable:
        offsets.append((analyzer, len(functions)))
        functions += [Column(jc) for jc in _scala_iter(analyzer.aggregationFunctions())]
    return offsets, functions


def _required_analyzers(checks: Sequence[Any], extra: Sequence[Any]) -> dict[str, Any]:
    """Every analyzer the checks need, then `extra`, once each (by Deequ's own name)."""
    analyzers: dict[str, Any] = {}
    for check in checks:
        for analyzer in _scala_iter(check._Check.requiredAnalyzers()):
            analyzers.setdefault(analyzer.toString(), analyzer)
    for analyzer in extra:
        analyzers.setdefault(analyzer.toString(), analyzer)
    return analyzers


def _flag_grouped_rules(
    df: DataFrame, row_constraints: Sequence[Constraint], groupings: Sequence[_Grouping]
) -> tuple[DataFrame, dict[str, str]]:
    """`df` with a duplicate flag per rule that groups rows (`isUnique`), and the flag names."""
    annotated = df
    flags: dict[str, str] = {}
    for i, constraint in enumerate(c for c in row_constraints if c.type.groups_rows):
        flag = f"{DUPLICATE_FLAG_PREFIX}{i}"
        match = next(
            (
                g
                for g in groupings
                if g.columns == constraint.columns and g.where == constraint.args.where
            ),
            None,
        )
        annotated = _flag_duplicates(annotated, constraint, match, flag)
        flags[constraint.id] = flag
    return annotated, flags


def _gate_counts(
    quarantined: Column,
    rule_tests: Sequence[Column],
    malformed_column: str | None,
    counted: Sequence[_Grouping],
) -> list[Column]:
    """What the valid write counts besides Deequ's states.

    Rows, quarantined rows, rows blamed per rule, malformed lines, and the rows in scope of each
    counts-only grouping.
    """
    counts = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(quarantined.cast("long")).alias("quarantined"),
    ]
    counts += [F.sum(test.cast("long")).alias(f"blamed_{i}") for i, test in enumerate(rule_tests)]
    if malformed_column is not None:
        counts.append(F.sum(column(malformed_column).isNotNull().cast("long")).alias("malformed"))
    counts += [
        F.count(F.when(_in_scope(g.columns, g.where), 1)).alias(f"keyed_{i}")
        for i, g in enumerate(counted)
    ]
    return counts


def _pack(functions: list[Column]) -> Column:
    """All observable analyzers' aggregation functions as one struct (one observed value)."""
    if not functions:
        return F.struct(F.lit(0).alias("none"))
    return F.struct(*[f.alias(f"a{i}") for i, f in enumerate(functions)])
