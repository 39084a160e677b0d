"""What `lakegate stream` keeps between micro-batches, beside Spark's checkpoint.

`CHECKPOINT/_lakegate/state/<batch_id>/` holds Deequ's analyzer states of every row committed
up to and including that batch (the running total) and `totals.json` (counts, reasons, batches).
Batch N merges the newest totals before N with its own states into a fresh folder, renamed into
place last; a batch replayed after a crash merges with the same earlier totals again, so the
totals always describe exactly the committed batches.

`CHECKPOINT/_lakegate/keys/<i>/` is a Delta table per uniqueness rule (`isUnique`,
`isPrimaryKey`, `areUnique`): each key seen, with the batch that first committed it. A later
batch's rows with such a key are quarantined.
"""

from __future__ import annotations

import json
import operator
import uuid
from dataclasses import dataclass
from functools import reduce
from typing import Any

from py4j.protocol import Py4JError
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from checks.deequ_run import VerificationOutcome, read_results

# Private helpers and fields (`_analyzers`, `_provider`, `_checks`, `_schema`) of the one-pass
# gate, read as they are (the same rounds, sequences and empty-state metrics as `Gate.verdict`);
# checks/gate.py belongs to the gate's owner and exposes no public form of them yet.
from checks.gate import Gate, _in_scope, _rounds, _to_seq, _with_empty_states
from checks.row_rules import column
from checks.suite import Constraint
from spark_jobs.services.session import jvm_of
from spark_jobs.services.stream_io import append_once, read_delta
from spark_jobs.services.table_io import Storage

BATCH_COLUMN = "_lakegate_batch"
FIRST_PREFIX = "_lakegate_first_"
_TOTALS_FILE = "totals.json"


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

    def merge(self, gate: Gate, batch: DataFrame, batch_id: int) -> StagedTotals:
        """Merge batch `batch_id`'s states into the totals before it; judge the suite on them.

        Call after `gate.verdict()` (its provider then holds the batch's states). `batch` is the
        batch as the gate scanned it (no malformed-line column). The merged states go to a
        staging folder that `commit` moves into place.
        """
        before = self.previous(batch_id)
        staged = f"{self.folder}/_staging-{batch_id}-{uuid.uuid4().hex[:8]}"
        loaders = [self._provider(f"{self.folder}/{before}")] if before is not None else []
        loaders.append(_batch_provider(self.spark, gate, batch))
        context = _merge(self.spark, gate, loaders, self._provider(staged))
        outcome = read_results(
            gate.suite,
            gate._checks,  # the gate's compiled checks, judged on the total
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

    def _provider(self, folder: str) -> Any:
        jvm = jvm_of(self.spark)
        return jvm.com.amazon.deequ.analyzers.HdfsStateProvider(
            self.spark._jsparkSession, f"{folder}/s", 10, False
        )


def _batch_provider(spark: SparkSession, gate: Gate, batch: DataFrame) -> Any:
    """The batch's states, mergeable: the gate's, with grouping states computed whole.

    The gate may keep a grouping's state as its duplicated keys plus generated count-1 rows of
    NULL keys (enough for one verdict); merging joins frequencies on the keys, so the batch's
    real frequencies are computed here, once per columns and filter.
    """
    jvm = jvm_of(spark)
    provider = jvm.com.amazon.deequ.analyzers.InMemoryStateProvider()
    frequencies: dict[str, Any] = {}
    for analyzer in gate._analyzers:
        try:
            columns = analyzer.groupingColumns()
        except Py4JError:  # not a grouping analyzer: it has no such method
            state = gate._provider.load(analyzer)
            if state.isDefined():
                provider.persist(analyzer, state.get())
            continue
        where = analyzer.filterCondition()
        key = f"{columns.toString()}|{where.toString()}"
        if key not in frequencies:
            frequencies[key] = analyzer.computeStateFrom(batch._jdf, where)
        if frequencies[key].isDefined():
            provider.persist(analyzer, frequencies[key].get())
    return provider


def _merge(spark: SparkSession, gate: Gate, loaders: list[Any], save_to: Any) -> Any:
    """Deequ's metrics of the merged states (saved to `save_to`), round by round."""
    jvm = jvm_of(spark)
    runner = jvm.com.amazon.deequ.analyzers.runners.AnalysisRunner
    none = jvm.scala.Option.empty()
    analyzers = gate._analyzers
    empty = [a for a in analyzers if not any(p.load(a).isDefined() for p in loaders)]
    stated = [a for a in analyzers if a not in empty]
    context = None
    for analyzers_of_round in _rounds(stated):
        analysis = jvm.com.amazon.deequ.analyzers.Analysis(_to_seq(spark, analyzers_of_round))
        storage_level = getattr(runner, "runOnAggregatedStates$default$5")()
        found = runner.runOnAggregatedStates(
            gate._schema,
            analysis,
            _to_seq(spark, loaders),
            jvm.scala.Option.apply(save_to),
            storage_level,
            none,
            none,
        )
        context = found if context is None else getattr(context, "$plus$plus")(found)
    return _with_empty_states(spark, context, empty)


def key_constraints(gate: Gate) -> list[Constraint]:
    """The gate's row rules that group rows by a key (isUnique, isPrimaryKey, areUnique)."""
    return [c for c in gate.row_constraints if c.type.groups_rows]


class KeyState:
    """The keys one uniqueness rule has seen, with the batch that first committed each.

    Made per batch: it reads the keys of earlier batches once (a replayed batch sees exactly
    what it saw the first time, whatever of its own keys were already appended).
    """

    def __init__(
        self, spark: SparkSession, root: str, index: int, constraint: Constraint, batch_id: int
    ) -> None:
        self.spark = spark
        self.path = f"{root.rstrip('/')}/keys/{index}"
        self.constraint = constraint
        self.batch_id = batch_id
        self.flag = f"{FIRST_PREFIX}{index}"
        self._aliases = [f"_lakegate_k{i}" for i in range(len(constraint.columns))]
        known = read_delta(spark, self.path)
        self._earlier = None if known is None else known.where(F.col(BATCH_COLUMN) < batch_id)

    def flag_repeats(self, frame: DataFrame) -> DataFrame:
        """`frame` with `self.flag`: the batch that first committed the row's key, else null."""
        if self._earlier is None:
            return frame.withColumn(self.flag, F.lit(None).cast("long"))
        earlier = self._earlier.withColumnRenamed(BATCH_COLUMN, self.flag)
        pairs = zip(self.constraint.columns, self._aliases, strict=True)
        same_key = reduce(operator.and_, [column(c).eqNullSafe(F.col(a)) for c, a in pairs])
        return frame.join(earlier, same_key & self._in_scope(), "left").drop(*self._aliases)

    def record(self, batch: DataFrame, app_id: str, replay_possible: bool) -> int:
        """Append the batch's keys no earlier batch had (once per batch id); return how many."""
        named = zip(self.constraint.columns, self._aliases, strict=True)
        keys = batch.where(self._in_scope()).select(*[column(c).alias(a) for c, a in named])
        keys = keys.distinct()
        if self._earlier is not None:
            pairs = [F.col(f"new.{a}").eqNullSafe(F.col(f"old.{a}")) for a in self._aliases]
            old = self._earlier.alias("old")
            keys = keys.alias("new").join(old, reduce(operator.and_, pairs), "anti")
        counted = Observation(f"lakegate_keys_{uuid.uuid4().hex[:8]}")
        keys = keys.withColumn(BATCH_COLUMN, F.lit(self.batch_id).cast("long"))
        keys = keys.observe(counted, F.count(F.lit(1)).alias("keys"))
        append_once(keys, self.path, app_id, self.batch_id, replay_possible=replay_possible)
        return int(counted.get["keys"])

    def message(self) -> Column:
        """The failure recorded on a row whose key an earlier batch committed."""
        return F.concat(
            F.lit("duplicate of a key first committed in batch "), F.col(self.flag).cast("string")
        )

    def _in_scope(self) -> Column:
        return _in_scope(self.constraint.columns, self.constraint.args.where)
