"""`lakegate stream validate SUITE --source SRC --output OUT --checkpoint DIR`: gate a stream.

Every micro-batch is split by the suite as `lakegate validate` splits a table and appended to
`OUT/valid` and `OUT/quarantine` (Delta, written once per batch id: a replay adds nothing twice).
Table-wide checks are judged on the batch and on everything committed so far (Deequ's states,
merged batch by batch beside the checkpoint); a key an earlier batch committed is quarantined.
`OUT/report.json` (with the per-batch history) and `OUT/report.html` are rewritten after every
batch; `--metrics-port` serves Prometheus metrics on 127.0.0.1 while the query runs.
"""

from __future__ import annotations

import functools
import operator
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from checks.anomalies import AnomalyResult, anomaly_analyzers, worsened_status
from checks.deequ_run import VerificationOutcome, metrics_repository, result_key
from checks.gate import ERRORS_COLUMN, Gate, apply_suite, check_filters
from checks.row_rules import FAILURE_TYPE, failure_struct
from checks.suite import Level, Suite, check_against_schema, check_sql_conditions
from checks.suite_formats import load_suite
from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import ExitCode, RowsLost
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.reporting import validation_summary
from spark_jobs.services.stream_io import (
    GuardedBatches,
    ReadOptions,
    StreamSource,
    append_once,
    await_query,
    check_delta_drift,
    checked_batch,
    parse_source,
    parse_trigger,
    previous_report,
    query_id,
    read_stream,
    start_query,
    stream_schema,
    stream_settings,
    with_file_names,
)
from spark_jobs.services.stream_metrics import BatchRecord, StreamMetrics, with_batch
from spark_jobs.services.stream_report import (
    BatchAnomalies,
    BatchesSeen,
    LastBatch,
    StreamCounts,
    StreamReport,
    WindowVerdict,
    batch_records,
)
from spark_jobs.services.stream_state import (
    FIRST_PREFIX,
    KeyBatch,
    KeyCounts,
    KeyExpiry,
    KeyRule,
    KeyScope,
    KeySet,
    RunningTotals,
    TotalWindow,
    counted_scopes,
    key_clock,
    key_constraints,
    key_expiry,
    next_key_clock,
    now_micros,
    saved_windows,
)
from spark_jobs.services.stream_windows import EventWindows, WindowOutcome, window_config
from spark_jobs.services.table_io import MALFORMED_COLUMN, Storage
from spark_jobs.stream_predict import command as predict_command
from spark_jobs.validate import read_reference

HISTORY_LIMIT = 500  # batches kept in report.json's batch_history


class StreamValidateSpec(BaseModel):
    """What to gate: a suite, a source, the output folder and the checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    source: str
    output: str
    checkpoint: str
    trigger: str = "available-now"
    options: ReadOptions = Field(default_factory=dict)
    kafka_bootstrap: str | None = None
    on_failure: Literal["continue", "stop"] = "continue"
    keep_history: bool = True
    metrics_port: int | None = None
    quiet: bool = False


@dataclass(frozen=True)
class StreamResult:
    """How the query ended: batches processed in this run, the last report, the exit code."""

    batches: int
    exit_code: ExitCode
    report: StreamReport | None  # after the last batch (None: no batch yet)
    stopped_by: str | None = None
    metrics: StreamMetrics | None = None
    metrics_port: int | None = None
    suite_name: str = ""


@dataclass
class _BatchCounts:
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    reasons: dict[str, int]


@dataclass
class _Batch:
    """One micro-batch in flight: its id, start, the totals before it, its key sets."""

    batch_id: int
    clock: float  # time.monotonic() at its start
    totals: RunningTotals
    before: dict[str, Any]  # the totals of the batches before it
    micros: int  # its time, epoch microseconds (the key clock of a TTL)
    keysets: dict[KeyScope, KeySet] = field(default_factory=dict)


@dataclass
class _BatchProcessor(GuardedBatches):
    """The foreachBatch function: split, write once, judge both windows, report."""

    spark: SparkSession
    settings: Settings
    spec: StreamValidateSpec
    suite: Suite
    source: StreamSource
    schema: Any
    malformed: str | None
    expiry: KeyExpiry = field(default_factory=KeyExpiry)
    windows: EventWindows | None = None  # the suite's tumbling event-time windows
    metrics: StreamMetrics = field(default_factory=lambda: StreamMetrics("lakegate_stream"))
    history: tuple[BatchRecord, ...] = ()  # report.json's batch_history
    app_id: str | None = None
    stop_reason: str | None = None
    error: BaseException | None = None
    failed_any: bool = False
    processed: int = 0
    last_batch_id: int = -1
    report: StreamReport | None = None
    in_batch: bool = field(default=False)

    def check_source(self) -> None:
        """The query failed before a batch began: a schema change of a Delta source?"""
        if self.source.scheme == "delta":
            check_delta_drift(self.spark, self.source, self.schema)

    @property
    def root(self) -> str:
        return f"{self.spec.checkpoint.rstrip('/')}/_lakegate"

    @functools.cached_property
    def anomaly_checks(self) -> BatchAnomalies:
        """The suite's `anomalies:` judged per batch, the query's history read once."""
        path = self.settings.metrics_repository_path
        return BatchAnomalies(self.suite, path, keep=self.spec.keep_history)

    def _process(self, batch: DataFrame, batch_id: int) -> None:
        clock = time.monotonic()
        if self.app_id is None:
            self.app_id = query_id(self.spark, self.spec.checkpoint)
        persisted = batch.persist()
        try:
            batch = checked_batch(self.spark, self.source, persisted, self.schema)
            self._split_and_judge(batch, batch_id, clock)
        finally:
            persisted.unpersist()

    def _split_and_judge(self, batch: DataFrame, batch_id: int, clock: float) -> None:
        """Gate the batch, append both outputs once, record keys and totals, report."""
        assert self.app_id is not None
        scan = batch.drop(self.malformed) if self.malformed else batch
        gate = apply_suite(
            self.spark,
            batch,
            self.suite,
            repository=self.settings.metrics_repository_path if self.spec.keep_history else None,
            tags=self._tags("batch", batch_id),
            malformed_column=self.malformed,
            extra_analyzers=anomaly_analyzers(self.spark, self.suite.anomalies),
            reference_reader=read_reference,
        )
        totals = RunningTotals(self.spark, self.root)
        before = totals.summary(totals.previous(batch_id))
        current = _Batch(batch_id, clock, totals, before, now_micros())
        try:
            keys = self._key_rules(gate, scan, current)
            self._write_and_judge(gate, keys, scan, current)
        finally:
            for keyset in current.keysets.values():
                keyset.release()
            gate.release()

    def _key_rules(self, gate: Gate, scan: DataFrame, current: _Batch) -> list[KeyRule]:
        """Fill `current.keysets` (each uniqueness rule's and counts-only grouping's scope).

        Returns the uniqueness rules, each with its scope's keys.
        """
        context = KeyBatch(
            self.root,
            current.batch_id,
            self.expiry.seen_at(current.micros),
            self.expiry.cutoff(key_clock(current.before)),
            self.expiry.bounded,
        )
        known = current.before.get("key_counts") or {}
        rules = key_constraints(gate)
        for scope in [*counted_scopes(gate), *[KeyScope.of_constraint(c) for c in rules]]:
            if scope not in current.keysets:
                before = int((known.get(scope.name) or {}).get("keys", 0))
                current.keysets[scope] = KeySet(self.spark, scope, scan, context, before)
        return [
            KeyRule(c, current.keysets[KeyScope.of_constraint(c)], f"{FIRST_PREFIX}{i}")
            for i, c in enumerate(rules)
        ]

    def _write_and_judge(
        self, gate: Gate, keys: list[KeyRule], scan: DataFrame, current: _Batch
    ) -> None:
        """The keys' append beside the valid rows', then the quarantine's beside the totals.

        The valid rows' append computes the metrics the totals merge. Each append is idempotent
        per batch id and none reads what another writes (the keys of earlier batches only), so
        a crash between them leaves a state a replay completes; the totals move into place last.
        """
        assert self.app_id is not None
        batch_id, totals, keysets = current.batch_id, current.totals, current.keysets
        replay = self.processed == 0  # only a query's first batch can be a replay
        with ThreadPoolExecutor(2, thread_name_prefix="lakegate-stream") as pool:
            recording = pool.submit(_record_keys, keysets, self.app_id, replay)
            valid_rows, repeated, outcome = self._write_valid(gate, keys, batch_id, replay)
            writing = pool.submit(self._write_quarantine, gate, keys, repeated, batch_id, replay)
            key_counts = _key_counts(current.before, keysets)
            counted = {
                scope: (members, key_counts[scope.name], keysets[scope].fields)
                for scope, members in counted_scopes(gate).items()
            }
            staged = totals.merge(gate, scan, batch_id, counted)
            quarantined, reasons = writing.result()
            recording.result()
        counts = _BatchCounts(gate.rows_in, valid_rows, quarantined, reasons)
        if counts.rows_in != counts.rows_valid + counts.rows_quarantined:
            raise RowsLost(
                f"batch {batch_id}: {counts.rows_in} rows in but {counts.rows_valid} valid + "
                f"{counts.rows_quarantined} quarantined; the query stops before its checkpoint "
                "records the batch"
            )
        summary = _accumulate(current.before, counts, batch_id)
        summary["key_counts"] = {name: c.as_dict() for name, c in key_counts.items()}
        summary["key_state"] = {rule.constraint.id: rule.keys.held for rule in keys}
        summary["key_clock"] = next_key_clock(
            self.expiry,
            key_clock(current.before),
            current.micros,
            [k.latest for k in keysets.values()],
        )
        total = totals.commit(staged, summary)
        windowed = (
            None
            if self.windows is None
            else self.windows.after_batch(
                gate, scan, batch_id, replay, self._tags("event", batch_id)
            )
        )
        anomalies = self.anomaly_checks.judge(self.spark, gate, self.app_id, batch_id)
        self._save_history(gate, total, batch_id, replay)
        seconds = time.monotonic() - current.clock
        self._report(batch_id, counts, outcome, total, seconds, anomalies, windowed)

    def _write_valid(
        self, gate: Gate, keys: list[KeyRule], batch_id: int, replay: bool
    ) -> tuple[int, DataFrame | None, VerificationOutcome]:
        """Append the valid rows (the pass that computes the metrics) and judge the batch.

        Returns the rows written, the rows held back as repeats of earlier keys, the verdict.
        """
        assert self.app_id is not None
        valid, repeated = _without_repeats(gate.valid, gate.valid_without_metrics(), keys)
        observation = Observation(f"lakegate_stream_valid_{batch_id}")
        valid = valid.observe(observation, F.count(F.lit(1)).alias("rows"))
        path = f"{self.spec.output.rstrip('/')}/valid"
        append_once(valid, path, self.app_id, batch_id, replay_possible=replay)
        return int(observation.get["rows"]), repeated, gate.verdict()

    def _write_quarantine(
        self,
        gate: Gate,
        keys: list[KeyRule],
        repeated: DataFrame | None,
        batch_id: int,
        replay: bool,
    ) -> tuple[int, dict[str, int]]:
        """Append the quarantine; return its rows and the rows blamed per constraint."""
        assert self.app_id is not None
        observation = Observation(f"lakegate_stream_quarantine_{batch_id}")
        quarantine = _quarantine_with_repeats(gate, keys, repeated, observation)
        path = f"{self.spec.output.rstrip('/')}/quarantine"
        append_once(quarantine, path, self.app_id, batch_id, replay_possible=replay)
        observed = observation.get
        reasons = gate.reasons()
        for state in keys:
            extra = int(observed[state.flag] or 0)
            if extra:
                reasons[state.constraint.id] = reasons.get(state.constraint.id, 0) + extra
        return int(observed["rows"]), reasons

    def _tags(self, window: str, batch_id: int) -> dict[str, str]:
        return {
            "suite": self.suite.name,
            "window": window,
            "batch_id": str(batch_id),
            "query_id": self.app_id or "",
        }

    def _save_history(self, gate: Gate, total: TotalWindow, batch_id: int, replay: bool) -> None:
        """Both windows' metrics to the repository (tags `window: batch` / `window: total`).

        A replayed batch saves only the windows its first run did not save.
        """
        if not self.spec.keep_history:
            return
        path = self.settings.metrics_repository_path
        saved = saved_windows(path, self.app_id or "", batch_id) if replay else set()
        if "batch" not in saved:
            gate.save_metrics()
        if "total" not in saved:
            repository = metrics_repository(self.spark, path)
            key = result_key(self.spark, self._tags("total", batch_id))
            repository.repository.save(key.resultKey, total.context)

    def _report(
        self,
        batch_id: int,
        counts: _BatchCounts,
        outcome: VerificationOutcome,
        total: TotalWindow,
        seconds: float,
        anomalies: tuple[AnomalyResult, ...] = (),
        windowed: WindowOutcome | None = None,
    ) -> None:
        """Rewrite OUT/report.json and .html, count the metrics, print the progress line.

        Also decides whether to stop (`on_failure: stop`): an error-level constraint failed on
        the batch or the total, or an error-level anomaly check on the batch.
        """
        batch_counts = StreamCounts(counts.rows_in, counts.rows_valid, counts.rows_quarantined)
        last = LastBatch(
            batch_id,
            round(seconds, 3),
            WindowVerdict(
                worsened_status(outcome.status, anomalies),
                batch_counts,
                dict(counts.reasons),
                tuple(outcome.results),
            ),
            anomalies,
        )
        failed = last.failed() or bool(total.outcome.failed(Level.ERROR))
        failed = failed or (windowed is not None and windowed.failed)  # a window it closed
        self.failed_any = self.failed_any or failed
        key_sizes: dict[str, int] = total.summary["key_state"]
        record = BatchRecord(
            batch_id=batch_id,
            rows_in=counts.rows_in,
            rows_valid=counts.rows_valid,
            rows_quarantined=counts.rows_quarantined,
            duration_seconds=last.duration_seconds,
            status=last.status,
            finished_at=datetime.now(UTC).isoformat(),
            state_rows=sum(key_sizes.values()) if key_sizes else None,
        )
        self.history = with_batch(self.history, record, HISTORY_LIMIT)
        self.report = report = self._typed_report(total, last, record, windowed)
        storage, root = Storage(self.spark), self.spec.output.rstrip("/")
        storage.write_text(f"{root}/report.json", _json(report.as_dict()))
        storage.write_text(f"{root}/report.html", report.html())
        self.metrics.observe_batch(record)
        self.processed += 1
        self.last_batch_id = batch_id
        if not self.spec.quiet:
            keys = f"; {sum(key_sizes.values())} keys held" if key_sizes else ""
            closed = "" if windowed is None else windowed.progress()
            print(
                f"batch {batch_id}: {counts.rows_in} rows in, {counts.rows_valid} valid, "
                f"{counts.rows_quarantined} quarantined; batch {last.status}, total "
                f"{total.outcome.status}{keys}{closed}; {seconds:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        if failed and self.spec.on_failure == "stop":
            self.stop_reason = f"an error-level check failed in batch {batch_id}"

    def _typed_report(
        self,
        total: TotalWindow,
        last: LastBatch,
        record: BatchRecord,
        windowed: WindowOutcome | None = None,
    ) -> StreamReport:
        """The report after a batch: the total window's verdict and running counts, the batch."""
        summary = total.summary
        return StreamReport(
            suite=self.suite.name,
            suite_file=str(self.suite.path),
            source=redact(str(self.source)),
            output=self.spec.output,
            checkpoint=self.spec.checkpoint,
            query_id=self.app_id,
            updated_at=record.finished_at,
            total=WindowVerdict(
                total.outcome.status,
                StreamCounts.of(summary["counts"]),
                dict(summary["quarantine_reasons"]),
                tuple(total.outcome.results),
            ),
            batches=BatchesSeen(**summary["batches"]),
            key_state=dict(summary["key_state"]),
            last_batch=last,
            batch_history=self.history,
            windows=None if windowed is None else windowed.summary,
        )


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2, default=str)


def _counts_dict(counts: _BatchCounts) -> dict[str, int]:
    return {
        "rows_in": counts.rows_in,
        "rows_valid": counts.rows_valid,
        "rows_quarantined": counts.rows_quarantined,
    }


def _record_keys(keysets: dict[KeyScope, KeySet], app_id: str, replay: bool) -> None:
    """Append every scope's keys of the batch to its key table (once per batch id)."""
    for keyset in keysets.values():
        keyset.record(app_id, replay)


def _key_counts(before: dict[str, Any], keysets: dict[KeyScope, KeySet]) -> dict[str, KeyCounts]:
    """Each key scope's running counts after the batch: the counts before plus what it adds."""
    known = before.get("key_counts") or {}
    return {
        scope.name: KeyCounts(**known.get(scope.name, {})).plus(keyset.added)
        for scope, keyset in keysets.items()
    }


def _accumulate(before: dict[str, Any], counts: _BatchCounts, batch_id: int) -> dict[str, Any]:
    """The running totals after a batch: counts and reasons summed, batches counted."""
    totals = dict(before.get("counts") or {"rows_in": 0, "rows_valid": 0, "rows_quarantined": 0})
    for name, value in _counts_dict(counts).items():
        totals[name] = totals.get(name, 0) + value
    if totals["rows_in"] != totals["rows_valid"] + totals["rows_quarantined"]:
        raise RowsLost(f"the running totals do not add up after batch {batch_id}: {totals}")
    reasons = dict(before.get("quarantine_reasons") or {})
    for cid, n in counts.reasons.items():
        reasons[cid] = reasons.get(cid, 0) + n
    count = int((before.get("batches") or {}).get("count", 0)) + 1
    return {
        "counts": totals,
        "quarantine_reasons": reasons,
        "batches": {"count": count, "last_batch_id": batch_id},
    }


def _any_repeat(keys: list[KeyRule]) -> Column:
    return reduce(operator.or_, [F.col(k.flag).isNotNull() for k in keys])


def _without_repeats(
    valid: DataFrame, unobserved: DataFrame, keys: list[KeyRule]
) -> tuple[DataFrame, DataFrame | None]:
    """The gate's valid rows split: still valid, and those whose key an earlier batch holds.

    The repeats are taken from `unobserved` (the same rows without the metrics' observation):
    the quarantine's write reads them, and must not compute every metric of the batch again.
    """
    if not keys:
        return valid, None
    columns = valid.columns
    flagged, repeats = valid, unobserved
    for state in keys:
        flagged, repeats = state.flag_repeats(flagged), state.flag_repeats(repeats)
    repeated = _any_repeat(keys)
    kept = flagged.where(~repeated).select(*[F.col(f"`{c}`") for c in columns])
    return kept, repeats.where(repeated)


def _quarantine_with_repeats(
    gate: Gate,
    keys: list[KeyRule],
    repeated: DataFrame | None,
    observation: Observation,
) -> DataFrame:
    """The gate's quarantine plus the repeated rows, each repeat named in `_lakegate_errors`.

    `observation` counts the rows written and, per key rule, the rows it newly blames (named
    after the rule's flag column).
    """
    quarantine = gate.quarantine_to_write()
    rows = F.count(F.lit(1)).alias("rows")
    if not keys or repeated is None:
        return quarantine.observe(observation, rows)
    columns = [c for c in quarantine.columns if c != ERRORS_COLUMN]
    for state in keys:
        quarantine = state.flag_repeats(quarantine)
    every = quarantine.unionByName(repeated.withColumn(ERRORS_COLUMN, F.array().cast(FAILURE_TYPE)))
    errors = F.col(ERRORS_COLUMN)
    added, counted = [], []
    for state in keys:
        new = F.col(state.flag).isNotNull() & ~F.exists(errors, _names(state.constraint.id))
        added.append(
            F.when(new, F.array(failure_struct(state.constraint, state.message()))).otherwise(
                F.array().cast(FAILURE_TYPE)
            )
        )
        counted.append(F.sum(new.cast("long")).alias(state.flag))
    observed = every.observe(observation, rows, *counted)
    return observed.select(
        *[F.col(f"`{c}`") for c in columns], F.concat(errors, *added).alias(ERRORS_COLUMN)
    )


def _names(constraint_id: str) -> Callable[[Column], Column]:
    """A test of a failure struct: does it name `constraint_id`?"""
    return lambda failure: failure["constraint"] == F.lit(constraint_id)


def run(
    spark: SparkSession, settings: Settings, spec: StreamValidateSpec, *, suite: Suite | None = None
) -> StreamResult:
    """Run the stream until its trigger ends it (available-now, once), a stop, or SIGTERM.

    Raises:
        SuiteError, InputError, SchemaDrift: nothing of the failing batch is committed.
        RowsLost: a batch's outputs did not add up.
    """
    suite = suite or load_suite(spec.suite)
    source = parse_source(spec.source)
    trigger = parse_trigger(spec.trigger)
    schema = None if source.scheme == "delta" else stream_schema(spark, source, suite)
    frame = read_stream(spark, source, schema, spec.options, spec.kafka_bootstrap)
    malformed = MALFORMED_COLUMN if MALFORMED_COLUMN in frame.columns else None
    data = frame.drop(malformed) if malformed else frame
    check_against_schema(suite, data.schema)
    check_filters(frame, suite)
    check_sql_conditions(data, suite)
    expiry = key_expiry(suite.path)
    expiry.check(data.schema, str(suite.path))
    window = window_config(suite.path)
    if window is not None:
        window.check(data.schema, suite)
    name = "lakegate_" + "".join(ch if ch.isalnum() else "_" for ch in suite.name)
    metrics = StreamMetrics(name)
    processor = _BatchProcessor(
        spark, settings, spec, suite, source, schema or frame.schema, malformed, expiry,
        metrics=metrics,
        history=batch_records(previous_report(spark, spec.output).get("batch_history")),
    )  # fmt: skip
    if window is not None:
        repository = settings.metrics_repository_path if spec.keep_history else None
        processor.windows = EventWindows(spark, window, processor.root, repository)
    if source.is_file_source:
        frame = with_file_names(frame)
    with metrics.running(spark, spec.metrics_port, quiet=spec.quiet) as port:
        query = start_query(frame, processor, spec.checkpoint, trigger, name)
        stopped_by = await_query(query, processor, processor.check_source)
    code = ExitCode.CHECKS_FAILED if processor.failed_any else ExitCode.OK
    return StreamResult(
        processor.processed, code, processor.report, stopped_by, metrics, port, suite.name
    )


@click.group("stream")
def command() -> None:
    """Gate a stream (Delta table, folder of files, Kafka topic) batch by batch."""


def render(result: StreamResult, spec: StreamValidateSpec) -> int:
    """Print the running total (unless `--quiet`); the run's exit code (1: a check failed)."""
    if not spec.quiet:
        click.echo(_stream_summary(result.suite_name, spec, result))
    return int(result.exit_code)


@lakegate_command("validate", spec=StreamValidateSpec, render=render)
@click.argument("suite", metavar="SUITE_FILE", type=click.Path(dir_okay=False))
@click.option(
    "--source", required=True, help="delta:PATH, parquet:PATH, json:PATH, csv:PATH or kafka:TOPIC."
)
@click.option("--output", required=True, help="Folder for valid/, quarantine/ and report.json.")
@click.option("--checkpoint", required=True, help="The query's checkpoint folder.")
@click.option(
    "--trigger",
    default="available-now",
    show_default=True,
    help="available-now, once or an interval (30s).",
)
@click.option(
    "--option", "options", multiple=True, help="A readStream option KEY=VALUE (repeatable)."
)
@click.option("--kafka-bootstrap", default=None, help="Kafka bootstrap servers (kafka: sources).")
@click.option(
    "--on-failure", type=click.Choice(["continue", "stop"]), default="continue", show_default=True
)
@click.option(
    "--no-history",
    "keep_history",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Do not append metrics to the repository.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on 127.0.0.1:PORT while the query runs (0: any free port).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def validate_command(job: JobContext, spec: StreamValidateSpec) -> StreamResult:
    """Split every micro-batch of a stream by a suite; judge each batch and the running total."""
    suite = load_suite(spec.suite)  # a bad suite fails here, before Spark starts
    parse_source(spec.source), parse_trigger(spec.trigger)  # before Spark starts
    key_expiry(suite.path), window_config(suite.path)  # a bad `stream:` section too
    job.settings = stream_settings(job.settings)  # the session is built from these
    return run(job.spark, job.settings, spec, suite=suite)


def _stream_summary(suite_name: str, spec: StreamValidateSpec, result: StreamResult) -> str:
    """The running total as `lakegate validate` prints a table's, with the stream's own lines."""
    report = result.report
    if report is None:
        return (
            f"Stream {suite_name} on {redact(spec.source)}: no data yet ({result.batches} batches)"
        )
    output = spec.output.rstrip("/")
    summary = validation_summary(
        {
            **report.summary_fields(),
            "input": redact(spec.source),
            "outputs": {
                "valid": f"{output}/valid",
                "quarantine": f"{output}/quarantine",
                "report": f"{output}/report.json",
            },
        }
    )
    lines = [
        summary.replace("Rows: ", "Rows so far: ", 1),
        f"Batches: {result.batches} this run, {report.batches.count} in all "
        f"(last batch id {report.batches.last_batch_id})",
    ]
    if result.stopped_by:
        lines.append(f"Stopped: {result.stopped_by}")
    return "\n".join(lines)


command.add_command(validate_command)
command.add_command(predict_command)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("stream")
