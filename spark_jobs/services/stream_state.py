"""What `lakegate stream` keeps between micro-batches, beside Spark's checkpoint.

`CHECKPOINT/_lakegate/state/<batch_id>/` holds Deequ's analyzer states of every row committed
up to and including that batch (the running total) and `totals.json` (counts, reasons, key
counts, batches). Batch N merges the newest totals before N with its own states into a fresh
folder, renamed into place last; a batch replayed after a crash merges with the same earlier
totals again, so the totals always describe exactly the committed batches.

`CHECKPOINT/_lakegate/keys/<scope>/` is a Delta table per key scope (columns and filter of a
uniqueness rule or of a counts-only grouping analyzer): each batch appends, once per batch id,
its distinct keys with their number of rows, the batch id and when they were seen. Nothing is
rewritten: a batch reads the earlier batches' rows of its own keys only (a join), so a key an
earlier batch committed is quarantined, and the running key counts (rows, distinct keys, keys
seen once) move by what the batch adds. Deequ's Uniqueness, Distinctness, UniqueValueRatio and
CountDistinct read nothing else, so their running states are rebuilt from those three numbers
instead of a merged frequency table. Other grouping analyzers (Entropy, histograms, ...) keep
the merged frequency table in the Deequ states.

An approx quantile's running state is Spark's `QuantileSummaries` (Greenwald-Khanna). Merged as
Deequ merges it, each entry's rank uncertainty grows by the other side's whole error (2 x error
x rows), so after a few batches no entry can be compressed any more and the state grows with
every batch (159 entries, 3.8 KB, per 300-row batch, without end). The totals therefore take
the batch's digest at a finer error (`QUANTILE_ERROR_SHARE` of the analyzer's) and read the
saved total as a digest of the analyzer's own error: a merge adds little uncertainty to the
total's entries, the merged digest is still within the analyzer's error by Spark's own merge
bound (total + batch uncertainty <= 2 x error x all rows), and Spark's compression (at that
error) has room to fold entries again: about 100 entries, flat (docs/streaming.md).
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JError, Py4JJavaError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DateType, StructType, TimestampNTZType, TimestampType

from checks.arguments import unquote_column
from checks.deequ_run import VerificationOutcome, history_files, read_results
from checks.gate import (
    COUNTS_ONLY,
    Gate,
    frequency_count_column,
    key_columns,
    key_in_scope,
    metrics_of_states,
    scala_items,
)
from checks.row_rules import column
from checks.suite import Constraint, SuiteError
from lakegate_config.yaml_document import (
    DocumentError,
    YamlDocument,
    describe_validation_error,
    load_yaml_document,
)
from spark_jobs.services.session import jvm_of
from spark_jobs.services.stream_io import append_once, delete_where, read_delta
from spark_jobs.services.table_io import Storage

BATCH_COLUMN = "_lakegate_batch"
COUNT_COLUMN = "_lakegate_rows"
SEEN_COLUMN = "_lakegate_seen"
FIRST_PREFIX = "_lakegate_first_"
_PREVIOUS = "_lakegate_previous"
_TOTALS_FILE = "totals.json"
_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)", re.IGNORECASE
)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The running totals take a batch's approx-quantile digest at this share of the analyzer's
# relative error (module docstring).
QUANTILE_ERROR_SHARE = 0.25
_QUANTILE = "ApproxQuantile"


def parse_duration(text: str) -> timedelta:
    """`30s`, `10 minutes`, `1 hour`, `7 days` as a timedelta.

    Raises:
        ValueError: anything else.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no duration; write one like 30s, 10 minutes, 1 hour, 7 days")
    unit = match.group(2).lower()
    return timedelta(seconds=float(match.group(1)) * _SECONDS[unit[0]])


class _WatermarkDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    delay: str

    @model_validator(mode="after")
    def _delay_is_a_duration(self) -> _WatermarkDoc:
        parse_duration(self.delay)
        return self


class _KeyStateDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ttl: str | None = None
    watermark: _WatermarkDoc | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> _KeyStateDoc:
        if self.ttl is not None and self.watermark is not None:
            raise ValueError("give either ttl or watermark, not both")
        if self.ttl is not None:
            parse_duration(self.ttl)
        return self


class _StreamDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key_state: _KeyStateDoc = _KeyStateDoc()
    window: dict[str, Any] | None = None  # parsed by stream_windows.window_config


@dataclass(frozen=True)
class KeyExpiry:
    """How long the key state keeps a key (none: forever).

    `ttl`: a key is forgotten once no batch has committed a row with it for that long (processing
    time, measured at the previous batch). `column` and `delay`: an event-time watermark, the
    latest event time committed so far less `delay`; a key whose rows' latest event time is
    older is forgotten. A forgotten key seen again is a new key: its row is not quarantined, and
    the running uniqueness-family metrics count it as a new key.
    """

    ttl: timedelta | None = None
    column: str | None = None
    delay: timedelta | None = None

    @property
    def bounded(self) -> bool:
        """Whether keys are ever forgotten."""
        return self.ttl is not None or self.column is not None

    def seen_at(self, batch_micros: int) -> Column:
        """When a row's key was seen: the batch's time (TTL) or the row's event time."""
        if self.column is not None:
            return column(self.column).cast("timestamp")
        return F.timestamp_micros(F.lit(batch_micros))

    def cutoff(self, clock: int | None) -> int | None:
        """Keys last seen before this (epoch microseconds) are forgotten; None: none is.

        `clock` is the key clock the totals before the batch recorded.
        """
        if clock is None or not self.bounded:
            return None
        return clock - (self.ttl or self.delay or timedelta(0)) // timedelta(microseconds=1)

    def check(self, schema: StructType, where: str) -> None:
        """Refuse a watermark column the stream does not have, or one of no time type.

        Raises:
            SuiteError: naming the column and the fix.
        """
        if self.column is None:
            return
        check_time_column(
            schema,
            self.column,
            f"{where}: stream.key_state.watermark.column",
            "the watermark needs",
        )


def check_time_column(schema: StructType, name: str, field: str, needs: str) -> None:
    """Refuse an event-time column the stream does not have, or one of no time type.

    Args:
        schema: the stream's schema.
        name: the column the suite names.
        field: `file:line: section.field` of the suite, for the message.
        needs: who needs it, e.g. "the watermark needs".

    Raises:
        SuiteError: naming the column and the fix.
    """
    types = {f.name: f.dataType for f in schema.fields}
    kind = types.get(name)
    if kind is None:
        raise SuiteError(
            f"{field} {name!r} is not a column of the stream (columns: {', '.join(types)})"
        )
    if not isinstance(kind, TimestampType | TimestampNTZType | DateType):
        raise SuiteError(
            f"{field} {name!r} is {kind.simpleString()}; {needs} a timestamp or date column"
        )


def key_expiry(path: Path | None) -> KeyExpiry:
    """The suite file's `stream: {key_state: {ttl: ...}}` or `{watermark: {column, delay}}`.

    Raises:
        SuiteError: a section that does not validate, naming the line.
    """
    if path is None or path.suffix == ".json":
        return KeyExpiry()
    try:
        document = load_yaml_document(path)
    except DocumentError as exc:
        raise SuiteError(str(exc)) from None
    data = document.data if isinstance(document.data, dict) else {}
    return _expiry_of(document, data.get("stream"))


def _expiry_of(document: YamlDocument, section: Any) -> KeyExpiry:
    if section is None:
        return KeyExpiry()
    try:
        doc = _StreamDoc.model_validate(section)
    except ValidationError as exc:
        raise SuiteError(describe_validation_error(document, exc, ("stream",))) from None
    bound = doc.key_state
    if bound.ttl is not None:
        return KeyExpiry(ttl=parse_duration(bound.ttl))
    if bound.watermark is not None:
        return KeyExpiry(column=bound.watermark.column, delay=parse_duration(bound.watermark.delay))
    return KeyExpiry()


def key_clock(before: dict[str, Any]) -> int | None:
    """The key clock (epoch microseconds) the totals before a batch recorded, or None."""
    value = before.get("key_clock")
    return None if value is None else int(value)


def next_key_clock(
    expiry: KeyExpiry, before: int | None, batch_micros: int, latest: list[int | None]
) -> int | None:
    """The key clock after a batch: its time (TTL), or the latest event time so far."""
    if expiry.column is None:
        return batch_micros
    found = [t for t in [before, *latest] if t is not None]
    return max(found) if found else None


def now_micros() -> int:
    """The time now, in epoch microseconds."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@dataclass(frozen=True)
class TotalWindow:
    """The running total after a batch: Deequ's metrics, the verdict, and the summary."""

    context: Any
    outcome: VerificationOutcome
    summary: dict[str, Any]


@dataclass(frozen=True)
class StagedTotals:
    """Merged states in their staging folder, judged, not yet in place."""

    batch_id: int
    before: int | None
    folder: str
    context: Any
    outcome: VerificationOutcome


@dataclass(frozen=True)
class KeyScope:
    """A key grouping as Deequ counts it: the key's columns (each once) and the filter."""

    columns: tuple[str, ...]
    where: str | None

    @property
    def name(self) -> str:
        """The key table's folder name: a digest of columns and filter, stable across restarts."""
        text = json.dumps([list(self.columns), self.where])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def in_scope(self) -> Column:
        """True on the rows the grouping counts (a non-null key column, within the filter)."""
        return key_in_scope(list(self.columns), self.where)

    @staticmethod
    def of_constraint(constraint: Constraint) -> KeyScope:
        """The scope of a uniqueness rule (isUnique, isPrimaryKey, areUnique)."""
        return KeyScope(tuple(key_columns(constraint.columns)), constraint.args.where)

    @staticmethod
    def of_analyzer(analyzer: Any) -> KeyScope | None:
        """The scope of a Deequ grouping analyzer, or None for any other analyzer."""
        try:
            columns = analyzer.groupingColumns()
        except Py4JError:  # not a grouping analyzer: it has no such method
            return None
        names = [unquote_column(str(c)) for c in scala_items(columns)]
        where = analyzer.filterCondition()
        return KeyScope(tuple(key_columns(names)), where.get() if where.isDefined() else None)


@dataclass(frozen=True)
class KeyCounts:
    """Rows in a scope, its distinct keys and the keys seen exactly once (all committed rows)."""

    rows: int = 0
    keys: int = 0
    singles: int = 0

    def plus(self, other: KeyCounts) -> KeyCounts:
        """Both counts summed (`other` a batch's change: `singles` may be negative)."""
        return KeyCounts(
            self.rows + other.rows, self.keys + other.keys, self.singles + other.singles
        )

    def as_dict(self) -> dict[str, int]:
        """For totals.json."""
        return {"rows": self.rows, "keys": self.keys, "singles": self.singles}


def counted_scopes(gate: Gate) -> dict[KeyScope, list[Any]]:
    """The grouping analyzers whose every member reads counts alone, by key scope.

    Their running state is rebuilt from `KeyCounts`; other grouping analyzers are merged.
    """
    by_scope: dict[KeyScope, list[Any]] = {}
    for analyzer in gate.analyzers:
        scope = KeyScope.of_analyzer(analyzer)
        if scope is not None:
            by_scope.setdefault(scope, []).append(analyzer)
    return {
        scope: members
        for scope, members in by_scope.items()
        if all(a.getClass().getSimpleName() in COUNTS_ONLY for a in members)
    }


class RunningTotals:
    """Deequ states and counts of everything committed, one folder per batch id."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.spark = spark
        self.storage = Storage(spark)
        self.folder = f"{root.rstrip('/')}/state"

    def previous(self, batch_id: int) -> int | None:
        """The newest batch id before `batch_id` whose totals were written, or None."""
        ids = [int(n) for n in self.storage.children(self.folder) if n.isdigit()]
        earlier = [i for i in ids if i < batch_id]
        return max(earlier) if earlier else None

    def summary(self, batch_id: int | None) -> dict[str, Any]:
        """The totals written with batch `batch_id` (empty before the first batch)."""
        if batch_id is None:
            return {}
        return dict(json.loads(self.storage.read_text(f"{self.folder}/{batch_id}/{_TOTALS_FILE}")))

    def merge(
        self,
        gate: Gate,
        batch: DataFrame,
        batch_id: int,
        counted: dict[KeyScope, tuple[list[Any], KeyCounts, list[tuple[str, DataType]]]],
    ) -> StagedTotals:
        """Merge batch `batch_id`'s states into the totals before it; judge the suite on them.

        Call after `gate.verdict()` (its provider then holds the batch's states). `batch` is the
        batch as the gate scanned it (no malformed-line column). `counted` gives, per counts-only
        scope, its analyzers, the running `KeyCounts` after this batch and the key's columns and
        types: their states are built from the counts, not merged. The merged states go to a
        staging folder that `commit` moves into place.
        """
        before = self.previous(batch_id)
        staged = f"{self.folder}/_staging-{batch_id}-{uuid.uuid4().hex[:8]}"
        by_counts = {id(a) for members, _, _ in counted.values() for a in members}
        merged = [a for a in gate.analyzers if id(a) not in by_counts]
        loaders = [self._saved(f"{self.folder}/{before}", merged)] if before is not None else []
        loaders.append(_batch_provider(self.spark, merged, gate, batch))
        context = metrics_of_states(
            self.spark, gate.deequ_schema, merged, loaders, self._provider(staged)
        )
        if counted:
            provider = _counts_provider(self.spark, counted)
            members = [a for analyzers, _, _ in counted.values() for a in analyzers]
            found = metrics_of_states(self.spark, gate.deequ_schema, members, [provider])
            context = getattr(context, "$plus$plus")(found)
        outcome = read_results(
            gate.suite,
            gate.compiled_checks,  # judged on the total
            lambda c: c._Check.evaluate(context),
        )
        return StagedTotals(batch_id, before, staged, context, outcome)

    def commit(self, staged: StagedTotals, summary: dict[str, Any]) -> TotalWindow:
        """Write `summary` beside the staged states and move them into place.

        A replayed batch's earlier folder is replaced; folders older than the previous batch's
        are removed.
        """
        self.storage.write_text(f"{staged.folder}/{_TOTALS_FILE}", json.dumps(summary, indent=2))
        final = f"{self.folder}/{staged.batch_id}"
        self.storage.delete(final)
        self.storage.rename(staged.folder, final)
        for name in self.storage.children(self.folder):
            if (name.isdigit() and int(name) < (staged.before or 0)) or name.startswith(
                "_staging-"
            ):
                self.storage.delete(f"{self.folder}/{name}")
        return TotalWindow(staged.context, staged.outcome, summary)

    def _saved(self, folder: str, analyzers: list[Any]) -> Any:
        """The states of `analyzers` saved in `folder`, in memory.

        An analyzer that had seen no value when they were saved (the mean of an empty batch)
        has no state file there: it has no state, as Deequ's own merge expects.
        """
        saved = self._provider(folder)
        provider = jvm_of(self.spark).com.amazon.deequ.analyzers.InMemoryStateProvider()
        for analyzer in analyzers:
            try:
                state = saved.load(analyzer)
            except Py4JJavaError as exc:
                if exc.java_exception.getClass().getName() != "java.io.FileNotFoundException":
                    raise
                continue
            if state.isDefined():
                provider.persist(analyzer, _as_total(self.spark, analyzer, state.get()))
        return provider

    def _provider(self, folder: str) -> Any:
        jvm = jvm_of(self.spark)
        return jvm.com.amazon.deequ.analyzers.HdfsStateProvider(
            self.spark._jsparkSession, f"{folder}/s", 10, False
        )


def _batch_provider(spark: SparkSession, analyzers: list[Any], gate: Gate, batch: DataFrame) -> Any:
    """The batch's states of `analyzers`, mergeable: the gate's, grouping states computed whole.

    The gate may keep a grouping's state as its duplicated keys plus generated count-1 rows of
    NULL keys (enough for one verdict); merging joins frequencies on the keys, so the batch's
    real frequencies are computed here, once per columns and filter.
    """
    jvm = jvm_of(spark)
    provider = jvm.com.amazon.deequ.analyzers.InMemoryStateProvider()
    frequencies: dict[str, Any] = {}
    for analyzer in analyzers:
        try:
            analyzer.groupingColumns()
        except Py4JError:  # not a grouping analyzer: it has no such method
            state = (
                _finer_quantile(spark, analyzer, batch)
                if _is_quantile(analyzer)
                else gate.batch_state(analyzer)
            )
            if state.isDefined():
                provider.persist(analyzer, state.get())
            continue
        persist_frequencies(analyzer, batch, provider, frequencies)
    return provider


def _is_quantile(analyzer: Any) -> bool:
    return bool(analyzer.getClass().getSimpleName() == _QUANTILE)


def _finer_quantile(spark: SparkSession, analyzer: Any, batch: DataFrame) -> Any:
    """The batch's digest of an approx quantile at `QUANTILE_ERROR_SHARE` of its error.

    A scala Option of Deequ's `ApproxQuantileState` (empty: the batch had no value).
    """
    jvm = jvm_of(spark)
    finer = jvm.com.amazon.deequ.analyzers.ApproxQuantile(
        analyzer.column(),
        analyzer.quantile(),
        analyzer.relativeError() * QUANTILE_ERROR_SHARE,
        analyzer.where(),
    )
    return finer.computeStateFrom(batch._jdf, jvm.scala.Option.empty())


def _as_total(spark: SparkSession, analyzer: Any, state: Any) -> Any:
    """A saved running state as the next merge takes it.

    An approx quantile's digest is read as one of the analyzer's own relative error (the first
    batch's was computed finer): the merge then compresses at that error, and adds to the
    batch's entries the uncertainty the total really has. Any other state is returned as is.
    """
    if not _is_quantile(analyzer):
        return state
    jvm = jvm_of(spark)
    summaries = state.percentileDigest().quantileSummaries()
    relabelled = jvm.org.apache.spark.sql.catalyst.util.QuantileSummaries(
        summaries.compressThreshold(),
        analyzer.relativeError(),
        summaries.sampled(),
        summaries.count(),
        True,
    )
    aggregate = jvm.org.apache.spark.sql.catalyst.expressions.aggregate
    digest = getattr(aggregate, "ApproximatePercentile$PercentileDigest")(relabelled)
    return jvm.com.amazon.deequ.analyzers.ApproxQuantileState(digest)


def persist_frequencies(
    analyzer: Any, rows: DataFrame, provider: Any, frequencies: dict[str, Any]
) -> None:
    """A grouping analyzer's whole (mergeable) frequency state over `rows` into `provider`.

    Computed once per grouping columns and filter: `frequencies` holds those already computed.
    """
    where = analyzer.filterCondition()
    key = f"{analyzer.groupingColumns().toString()}|{where.toString()}"
    if key not in frequencies:
        frequencies[key] = analyzer.computeStateFrom(rows._jdf, where)
    if frequencies[key].isDefined():
        provider.persist(analyzer, frequencies[key].get())


def _counts_provider(
    spark: SparkSession,
    counted: dict[KeyScope, tuple[list[Any], KeyCounts, list[tuple[str, DataType]]]],
) -> Any:
    """Deequ's `FrequenciesAndNumRows` of each counts-only scope, from its running counts.

    The table has one count-1 row per key seen once and one count-2 row per other key (NULL
    keys, generated, not stored): Uniqueness, Distinctness, UniqueValueRatio and CountDistinct
    read only these counts and the number of rows, so they come out exactly as over the rows.
    """
    jvm = jvm_of(spark)
    provider = jvm.com.amazon.deequ.analyzers.InMemoryStateProvider()
    count = frequency_count_column(spark)
    for members, counts, fields in counted.values():
        nulls = [F.lit(None).cast(kind).alias(name) for name, kind in fields]
        singles = spark.range(counts.singles).select(*nulls, F.lit(1).cast("long").alias(count))
        others = counts.keys - counts.singles
        repeated = spark.range(others).select(*nulls, F.lit(2).cast("long").alias(count))
        frequencies = singles.unionByName(repeated)
        for analyzer in members:
            state = jvm.com.amazon.deequ.analyzers.FrequenciesAndNumRows(
                frequencies._jdf, counts.rows, jvm.scala.Option.empty()
            )
            provider.persist(analyzer, state)
    return provider


def saved_windows(repository: Path, query_id: str, batch_id: int) -> set[str]:
    """The windows (`batch`, `total`) whose metrics the history already holds for a batch.

    Read from every run file of the metrics history (a replayed batch's first run may have
    saved one window, both, or none before the crash).
    """
    return {
        str(tags.get("window"))
        for tags in saved_tags(repository)
        if tags.get("query_id") == query_id and tags.get("batch_id") == str(batch_id)
    }


def saved_tags(repository: Path) -> Iterator[dict[str, Any]]:
    """The tags of every entry of the metrics history's run files, read as plain JSON."""
    for path in history_files(repository):
        try:
            entries = json.loads(path.read_text(encoding="utf-8") or "[]")
        except (OSError, ValueError):  # a file being written, or not a run file
            continue
        for entry in entries if isinstance(entries, list) else []:
            yield (entry.get("resultKey") or {}).get("tags") or {}


def key_constraints(gate: Gate) -> list[Constraint]:
    """The gate's row rules that group rows by a key (isUnique, isPrimaryKey, areUnique)."""
    return [c for c in gate.row_constraints if c.type.groups_rows]


@dataclass(frozen=True)
class KeyBatch:
    """What every key scope of one batch shares: where, which batch, when, what is forgotten."""

    root: str
    batch_id: int
    seen_at: Column  # when a row's key was seen (`KeyExpiry.seen_at`)
    cutoff: int | None  # keys last seen before this (epoch microseconds) are forgotten
    bounded: bool  # whether keys are ever forgotten (`KeyExpiry.bounded`)


class KeySet:
    """The keys of one scope that earlier batches committed, against one batch's keys.

    Made per batch: it reads the earlier batches' rows of the key table once (a replayed batch
    sees exactly what it saw the first time, whatever of its own keys were already appended),
    counts the batch's keys, and finds which of them earlier batches committed (with the first
    such batch and their rows so far). Only those keys are kept in memory. With a TTL or a
    watermark, the rows of keys last seen before the cutoff are deleted first (the cutoff only
    moves forward, so a replay deletes nothing a later batch would have read).
    """

    def __init__(
        self,
        spark: SparkSession,
        scope: KeyScope,
        batch: DataFrame,
        context: KeyBatch,
        keys_before: int,
    ) -> None:
        self.spark = spark
        self.scope = scope
        self.path = f"{context.root.rstrip('/')}/keys/{scope.name}"
        self.batch_id = context.batch_id
        self.context = context
        self.aliases = [f"_lakegate_k{i}" for i in range(len(scope.columns))]
        named = [column(c).alias(a) for c, a in zip(scope.columns, self.aliases, strict=True)]
        self.fields = [
            (name, field.dataType)
            for name, field in zip(scope.columns, batch.select(*named).schema.fields, strict=True)
        ]
        self.frequencies = (
            batch.where(scope.in_scope())
            .groupBy(*named)
            .agg(F.count(F.lit(1)).alias(COUNT_COLUMN), F.max(context.seen_at).alias(SEEN_COLUMN))
            .persist()
        )
        known = self._earlier()
        self.repeats, self.repeated = self._repeats(known)
        self.added, self.latest = self._added()
        if context.bounded and known is not None:
            live = known.select(*self.aliases).distinct().count()
            self.held = live + self.added.keys  # keys not forgotten after this batch
        else:
            self.held = keys_before + self.added.keys

    def _earlier(self) -> DataFrame | None:
        """The key table's rows of earlier batches not forgotten (their old rows deleted)."""
        cutoff = self.context.cutoff
        if cutoff is not None:
            seen = F.unix_micros(F.col(SEEN_COLUMN))
            delete_where(self.spark, self.path, F.coalesce(seen < F.lit(cutoff), F.lit(True)))
        known = read_delta(self.spark, self.path)
        if known is None:
            return None
        earlier = known.where(F.col(BATCH_COLUMN) < self.batch_id)
        if cutoff is not None:
            earlier = earlier.where(F.unix_micros(F.col(SEEN_COLUMN)) >= F.lit(cutoff))
        return earlier

    def _repeats(self, known: DataFrame | None) -> tuple[DataFrame | None, int]:
        """The batch's keys earlier batches hold (first batch, rows so far; cached), how many."""
        if known is None:
            return None, 0
        old = [f"_lakegate_o{i}" for i in range(len(self.aliases))]
        earlier = known.select(
            *[F.col(a).alias(o) for a, o in zip(self.aliases, old, strict=True)],
            F.col(BATCH_COLUMN),
            F.col(COUNT_COLUMN).alias(_PREVIOUS),
        )
        pairs = zip(self.aliases, old, strict=True)
        same = reduce(operator.and_, [F.col(a).eqNullSafe(F.col(o)) for a, o in pairs])
        repeats = (
            self.frequencies.select(*self.aliases)
            .join(earlier, same, "inner")
            .groupBy(*self.aliases)
            .agg(F.min(BATCH_COLUMN).alias(BATCH_COLUMN), F.sum(_PREVIOUS).alias(_PREVIOUS))
            .persist()
        )
        found = repeats.count()
        if not found:
            repeats.unpersist()
            return None, 0
        return repeats, found

    def _added(self) -> tuple[KeyCounts, int | None]:
        """What the batch adds to the running counts, and when its keys were last seen (one job).

        The counts: rows, new keys, keys seen once; the time: epoch microseconds, or None.

        A key earlier batches hold adds no key; it is seen once no more if its earlier rows
        were one; a new key with one row here is seen once.
        """
        count = F.col(COUNT_COLUMN)
        frame, previous = self.frequencies, F.lit(None).cast("long")
        if self.repeats is not None:
            renamed = [f"_lakegate_r{i}" for i in range(len(self.aliases))]
            prior = self.repeats.select(
                *[F.col(a).alias(r) for a, r in zip(self.aliases, renamed, strict=True)],
                F.col(_PREVIOUS),
            )
            pairs = zip(self.aliases, renamed, strict=True)
            same = reduce(operator.and_, [F.col(a).eqNullSafe(F.col(r)) for a, r in pairs])
            frame, previous = frame.join(prior, same, "left"), F.col(_PREVIOUS)
        new = previous.isNull()
        row = frame.agg(
            F.coalesce(F.sum(count), F.lit(0)).alias("rows"),
            F.count(F.when(new, 1)).alias("keys"),
            F.count(F.when(new & (count == 1), 1)).alias("singles"),
            F.count(F.when(previous == 1, 1)).alias("lost"),
            F.max(F.unix_micros(F.col(SEEN_COLUMN))).alias("latest"),
        ).first()
        assert row is not None
        counts = KeyCounts(
            int(row["rows"]), int(row["keys"]), int(row["singles"]) - int(row["lost"])
        )
        return counts, None if row["latest"] is None else int(row["latest"])

    def record(self, app_id: str, replay_possible: bool) -> None:
        """Append the batch's keys with their rows (once per batch id)."""
        keys = self.frequencies.select(
            *self.aliases,
            F.lit(self.batch_id).cast("long").alias(BATCH_COLUMN),
            F.col(COUNT_COLUMN),
            F.col(SEEN_COLUMN),
        )
        append_once(keys, self.path, app_id, self.batch_id, replay_possible=replay_possible)

    def flag_repeats(self, frame: DataFrame, flag: str) -> DataFrame:
        """`frame` with `flag`: the batch that first committed the row's key, else null."""
        if self.repeats is None:
            return frame.withColumn(flag, F.lit(None).cast("long"))
        renamed = [f"{flag}_k{i}" for i in range(len(self.aliases))]
        earlier = self.repeats.select(
            *[F.col(a).alias(r) for a, r in zip(self.aliases, renamed, strict=True)],
            F.col(BATCH_COLUMN).alias(flag),
        )
        if self.repeated <= _BROADCAST_REPEATS:
            earlier = F.broadcast(earlier)
        pairs = zip(self.scope.columns, renamed, strict=True)
        same_key = reduce(operator.and_, [column(c).eqNullSafe(F.col(r)) for c, r in pairs])
        return frame.join(earlier, same_key & self.scope.in_scope(), "left").drop(*renamed)

    def release(self) -> None:
        """Drop the cached keys."""
        self.frequencies.unpersist()
        if self.repeats is not None:
            self.repeats.unpersist()


# Repeated keys up to this many are broadcast to the join that flags their rows.
_BROADCAST_REPEATS = 1_000_000


@dataclass
class KeyRule:
    """A uniqueness rule over the stream: its constraint, its scope's keys, its flag column."""

    constraint: Constraint
    keys: KeySet
    flag: str

    def flag_repeats(self, frame: DataFrame) -> DataFrame:
        """`frame` with `self.flag`: the batch that first committed the row's key, else null."""
        return self.keys.flag_repeats(frame, self.flag)

    def message(self) -> Column:
        """The failure recorded on a row whose key an earlier batch committed."""
        return F.concat(
            F.lit("duplicate of a key first committed in batch "), F.col(self.flag).cast("string")
        )
