"""`lakegate stream predict --model URI --source SRC --output OUT --checkpoint DIR`: score a stream.

    lakegate stream predict --model models:/users@champion --source parquet:landing/users \
        --output out/users-scored --checkpoint out/users-scored-checkpoint --key user_id

Every micro-batch is scored by the same checked function `lakegate predict` uses (compiled where
verified, else the pandas UDF) and appended to `OUT/predictions` (Delta) with the key columns,
`prediction`, `model_name`, `model_version` and `scored_at` (the batch's start, UTC). The append
carries Delta's `txnAppId`/`txnVersion` (the query's id and the batch id), so a batch replayed
after a crash adds no row twice. The model URI is resolved again before every batch: a moved
alias (`models:/users@champion`) scores the next batch without a restart, and every row names
the version that scored it. With `--gate` the model's input gate splits each batch first; the
rows it stops go to `OUT/quarantine`. `OUT/report.json` and `OUT/report.html` (running totals
and the per-batch history) are rewritten after every batch; `--metrics-port` serves Prometheus
metrics on 127.0.0.1 while the query runs.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from pydantic import BaseModel, ConfigDict, Field

from lakegate_errors import ExitCode, RowsLost, UserError
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.sql_catalog import preload_for
from spark_jobs.services.stream_io import GuardedBatches, ReadOptions
from spark_jobs.services.stream_metrics import BatchRecord, StreamMetrics, with_batch
from spark_jobs.services.stream_report import (
    BatchesSeen,
    PredictCounts,
    StreamPredictReport,
    batch_records,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from checks.gate import Gate
    from lakegate_config.settings import Settings
    from spark_jobs.services.model_refresh import ModelCatalog
    from spark_jobs.services.stream_io import StreamSource
    from udfs import ModelFunction

PREDICTIONS, QUARANTINE = "predictions", "quarantine"
HISTORY_LIMIT = 500  # batches kept in report.json's batch_history


class StreamPredictSpec(BaseModel):
    """What to score: a model URI, a source, the output folder and the checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    source: str
    output: str
    checkpoint: str
    key: list[str] = Field(default_factory=list)
    gate: bool = False
    trigger: str = "available-now"
    options: ReadOptions = Field(default_factory=dict)
    kafka_bootstrap: str | None = None
    schema_ddl: str | None = None
    metrics_port: int | None = None
    quiet: bool = False


@dataclass(frozen=True)
class StreamPredictResult:
    """How the query ended: batches scored in this run, the last report, the metrics."""

    batches: int
    report: StreamPredictReport | None  # after the last batch (None: no batch yet)
    metrics: StreamMetrics
    metrics_port: int | None = None
    stopped_by: str | None = None


@dataclass
class _BatchScorer(GuardedBatches):
    """The foreachBatch function: re-resolve the model, check, score, append once, report."""

    spark: SparkSession
    settings: Settings
    spec: StreamPredictSpec
    source: StreamSource
    schema: StructType | None
    catalog: ModelCatalog
    model_name: str
    metrics: StreamMetrics
    counts: PredictCounts = field(default_factory=PredictCounts)  # the output's batches so far
    batch_count: int = 0
    history: tuple[BatchRecord, ...] = ()  # report.json's batch_history
    report: StreamPredictReport | None = None
    app_id: str | None = None
    processed: int = 0
    error: BaseException | None = None
    fitting_version: str | None = None  # the last version whose output fits OUT/predictions
    stop_reason: str | None = None  # set on SIGTERM: no batch starts after it
    in_batch: bool = False
    last_batch_id: int = -1

    def _process(self, batch: DataFrame, batch_id: int) -> None:
        from spark_jobs.services.stream_io import query_id

        clock = time.monotonic()
        started = datetime.now(UTC)
        if self.app_id is None:
            self.app_id = query_id(self.spark, self.spec.checkpoint)
        if self.processed:  # the first batch scores with the version registered at start
            self.catalog.refresh()
        function = self.catalog.functions[self.model_name]
        persisted = batch.persist()
        try:
            data = self._checked(persisted)
            rows_in, scored, gated = self._score(data, function, batch_id, started)
        finally:
            persisted.unpersist()
        record = BatchRecord(
            batch_id=batch_id,
            rows_in=rows_in,
            rows_valid=scored,
            rows_quarantined=gated,
            duration_seconds=round(time.monotonic() - clock, 3),
            finished_at=datetime.now(UTC).isoformat(),
            model_version=function.model.model_version,
        )
        self._report(record, function)

    def _checked(self, batch: DataFrame) -> DataFrame:
        """The batch's data columns, once its files (a file source) showed no schema drift."""
        from spark_jobs.services.stream_io import checked_batch
        from spark_jobs.services.table_io import MALFORMED_COLUMN

        if self.source.is_file_source:
            assert self.schema is not None
            batch = checked_batch(self.spark, self.source, batch, self.schema)
        return batch.drop(MALFORMED_COLUMN) if MALFORMED_COLUMN in batch.columns else batch

    def _score(
        self, data: DataFrame, function: ModelFunction, batch_id: int, started: datetime
    ) -> tuple[int, int, int]:
        """Append the batch's predictions (and gated rows) once; return rows in, scored, gated.

        Raises:
            ModelUsageError, UserError: the model (a moved alias too) does not fit the stream.
            RowsLost: scored + gated rows do not add up to the batch.
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        from spark_jobs.predict import check_columns
        from spark_jobs.services.stream_io import append_once

        assert self.app_id is not None
        check_columns(data, function, self.spec.key)
        split = self._gate(data, function)
        try:
            observation = Observation(f"lakegate_stream_predict_{batch_id}")
            scored = scored_batch(split.valid if split else data, function, self.spec, started)
            self._check_output_type(scored, function)
            observed = scored.observe(observation, F.count(F.lit(1)).alias("rows"))
            replay = self.processed == 0  # only a query's first batch can be a replay
            append_once(observed, self._path(PREDICTIONS), self.app_id, batch_id,
                        replay_possible=replay)  # fmt: skip
            rows = int(observation.get["rows"] or 0)
            gated = self._write_gated(split, batch_id, replay)
            rows_in = split.rows_in if split is not None else rows
        finally:
            if split is not None:
                split.release()
        if rows_in != rows + gated:
            raise RowsLost(
                f"batch {batch_id}: {rows_in} rows in but {rows} scored + {gated} gated; the "
                "query stops before its checkpoint records the batch"
            )
        return rows_in, rows, gated

    def _check_output_type(self, scored: DataFrame, function: ModelFunction) -> None:
        """A version new to this run must return the type OUT/predictions holds.

        Raises:
            ModelUsageError: the alias moved to a model of another output type.
        """
        version = function.model.model_version
        if version is not None and version == self.fitting_version:
            return
        from spark_jobs.services.stream_io import read_delta
        from udfs import ModelUsageError

        path = self._path(PREDICTIONS)
        existing = read_delta(self.spark, path)
        now = scored.schema["prediction"].dataType
        if existing is not None and existing.schema["prediction"].dataType != now:
            was = existing.schema["prediction"].dataType.simpleString()
            raise ModelUsageError(
                f"model {function.description} returns {now.simpleString()} predictions but "
                f"{path} holds {was} ones from an earlier version; nothing of this batch was "
                "committed. Move the alias back, or give the stream a new --output and "
                "--checkpoint"
            )
        self.fitting_version = version

    def _gate(self, data: DataFrame, function: ModelFunction) -> Gate | None:
        """The model version's input gate applied to the batch (None without `--gate`)."""
        if not self.spec.gate:
            return None
        from checks.input_gate import apply_input_gate
        from spark_jobs.predict import load_input_gate

        return apply_input_gate(data, load_input_gate(function, self.settings))

    def _write_gated(self, split: Gate | None, batch_id: int, replay: bool) -> int:
        """Append the rows the gate stopped to OUT/quarantine once; return how many."""
        if split is None:
            return 0
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        from spark_jobs.services.stream_io import append_once

        assert self.app_id is not None
        observation = Observation(f"lakegate_stream_gated_{batch_id}")
        rows = F.count(F.lit(1)).alias("rows")
        quarantine = split.quarantine_to_write().observe(observation, rows)
        append_once(quarantine, self._path(QUARANTINE), self.app_id, batch_id,
                    replay_possible=replay)  # fmt: skip
        return int(observation.get["rows"] or 0)

    def _path(self, name: str) -> str:
        return f"{self.spec.output.rstrip('/')}/{name}"

    def _report(self, record: BatchRecord, function: ModelFunction) -> None:
        """Totals, report.json + report.html, metrics, the progress line."""
        from spark_jobs.services.table_io import Storage

        replaced = [b for b in self.history if b.batch_id == record.batch_id]
        for earlier in replaced:  # a replayed batch counts once
            self.counts = self.counts.plus(earlier, -1)
        self.counts = self.counts.plus(record)
        self.batch_count += 0 if replaced else 1
        self.history = with_batch(self.history, record, HISTORY_LIMIT)
        self.report = report = self._typed_report(record, function)
        self.metrics.observe_batch(record)
        storage = Storage(self.spark)
        root = self.spec.output.rstrip("/")
        storage.write_text(
            f"{root}/report.json", json.dumps(report.as_dict(), indent=2, default=str)
        )
        storage.write_text(f"{root}/report.html", report.html())
        self.processed += 1
        self.last_batch_id = record.batch_id
        if not self.spec.quiet:
            model = function.model
            gated = f", {record.rows_quarantined} gated" if self.spec.gate else ""
            print(
                f"batch {record.batch_id}: {record.rows_in} rows in, {record.rows_valid} scored"
                f"{gated}; {model.model_name or model.model_uri} version {model.model_version} "
                f"({function.path}); {record.duration_seconds:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    def _typed_report(self, record: BatchRecord, function: ModelFunction) -> StreamPredictReport:
        """The report after `record`'s batch: the model that scored it, the running totals."""
        from lakegate_config.redaction import redact

        model = function.model
        return StreamPredictReport(
            model_uri=redact(self.spec.model),
            model_name=model.model_name,
            model_version=model.model_version,
            scoring_path=function.path,
            source=redact(self.spec.source),
            output=self._path(PREDICTIONS),
            quarantine=self._path(QUARANTINE) if self.spec.gate else None,
            checkpoint=self.spec.checkpoint,
            query_id=self.app_id,
            updated_at=record.finished_at,
            counts=self.counts,
            batches=BatchesSeen(self.batch_count, record.batch_id),
            last_batch=record,
            batch_history=self.history,
        )


def scored_batch(
    data: DataFrame, function: ModelFunction, spec: StreamPredictSpec, started: datetime
) -> DataFrame:
    """`lakegate predict`'s output frame over `data`, its calls checked against the signature.

    Raises:
        ModelUsageError: a call the model's signature refuses (a column of another type).
    """
    from spark_jobs.predict import scored_frame
    from udfs import check_model_calls

    scored = scored_frame(data, function, list(spec.key), started)
    check_model_calls(scored, [function])
    return scored


def _previous_totals(
    spark: SparkSession, output: str
) -> tuple[PredictCounts, int, tuple[BatchRecord, ...]]:
    """An earlier predict run's counts, batch count and history on this output, else zeros.

    A run on an output that has a report continues its totals.
    """
    from spark_jobs.services.stream_io import previous_report

    found = previous_report(spark, output)
    if "batch_history" not in found:
        return PredictCounts(), 0, ()
    batches = int((found.get("batches") or {}).get("count", 0))
    return PredictCounts.of(found.get("counts")), batches, batch_records(found["batch_history"])


def _schema(spark: SparkSession, spec: StreamPredictSpec, source: StreamSource) -> Any:
    """The schema a file or Kafka source is read with: `--schema`, else the files' at start.

    Raises:
        UserError: a Kafka source without `--schema`, or a DDL Spark cannot read.
    """
    from checks.suite import Suite
    from spark_jobs.services.stream_io import stream_schema

    if source.scheme == "delta":
        return None
    columns: tuple[tuple[str, str], ...] = ()
    if spec.schema_ddl:
        columns = _ddl_columns(spark, spec.schema_ddl)
    elif source.scheme == "kafka":
        raise UserError(
            f"--source {source}: give the columns the JSON values hold with --schema "
            "'user_id BIGINT, feature_1 DOUBLE, ...'"
        )
    return stream_schema(spark, source, Suite("stream predict", None, "", (), columns))


def _ddl_columns(spark: SparkSession, ddl: str) -> tuple[tuple[str, str], ...]:
    """`--schema` as (name, type) pairs.

    Raises:
        UserError: Spark cannot read the DDL.
    """
    from pyspark.errors.exceptions.captured import CapturedException
    from pyspark.sql.types import StructType

    from spark_jobs.services.session import jvm_of

    try:
        parsed = jvm_of(spark).org.apache.spark.sql.types.StructType.fromDDL(ddl)
    except Exception as exc:  # py4j or captured: Spark's parser refused it
        reason = exc.desc if isinstance(exc, CapturedException) else str(exc).splitlines()[0]
        raise UserError(f"--schema {ddl!r}: Spark cannot read it ({reason})") from None
    struct = StructType.fromJson(json.loads(parsed.json()))
    return tuple((f.name, f.dataType.simpleString()) for f in struct.fields)


def run(spark: SparkSession, settings: Settings, spec: StreamPredictSpec) -> StreamPredictResult:
    """Score the stream until its trigger ends it (available-now, once) or it fails.

    Everything about the model and the columns is checked before the query starts.

    Raises:
        ModelUsageError, UserError: a bad model URI, or a stream that does not fit the model's
            signature; nothing written.
        SchemaDrift: a landed file drifted; nothing of that batch committed.
        RowsLost: a batch's outputs did not add up.
    """
    from spark_jobs.services.model_refresh import ModelCatalog
    from spark_jobs.services.stream_io import (
        await_query,
        parse_source,
        parse_trigger,
        read_stream,
        start_query,
        with_file_names,
    )
    from spark_jobs.services.table_io import MALFORMED_COLUMN
    from udfs.model_function import resolve_model

    source, trigger = parse_source(spec.source), parse_trigger(spec.trigger)
    resolved = resolve_model(
        spec.model, tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
    )
    name = resolved.model_name or "model"
    catalog = ModelCatalog(spark, settings, {}, {name: spec.model})
    catalog.register_all()
    schema = _schema(spark, spec, source)
    frame = read_stream(spark, source, schema, spec.options, spec.kafka_bootstrap)
    _check_stream(frame.drop(MALFORMED_COLUMN), catalog.functions[name], spec, settings)
    query_name = "lakegate_predict_" + "".join(ch if ch.isalnum() else "_" for ch in name)
    metrics = StreamMetrics(query_name)
    counts, batches, history = _previous_totals(spark, spec.output)
    scorer = _BatchScorer(
        spark, settings, spec, source, schema, catalog, name, metrics,
        counts=counts, batch_count=batches, history=history,
    )  # fmt: skip
    if source.is_file_source:
        frame = with_file_names(frame)
    with metrics.running(spark, spec.metrics_port, quiet=spec.quiet) as port:
        query = start_query(frame, scorer, spec.checkpoint, trigger, query_name)
        stopped_by = await_query(query, scorer)
    return StreamPredictResult(scorer.processed, scorer.report, metrics, port, stopped_by)


def _check_stream(
    frame: DataFrame, function: ModelFunction, spec: StreamPredictSpec, settings: Settings
) -> None:
    """The stream's columns and types against the signature (and gate), before the query starts.

    Raises:
        UserError: a key column is missing.
        ModelUsageError: a model input is missing or of a type the model refuses; `--gate` for
            a model version that logged no input gate.
        SuiteError: the gate names a column the stream lacks or has with another type.
    """
    from checks.suite import check_against_schema
    from spark_jobs.predict import check_columns, load_input_gate

    check_columns(frame, function, list(spec.key))
    scored_batch(frame, function, spec, datetime.now(UTC))
    if spec.gate:
        check_against_schema(load_input_gate(function, settings), frame.schema)


def render(result: StreamPredictResult, spec: StreamPredictSpec) -> int:
    """Print the batches of this run and the rows scored so far (unless `--quiet`)."""
    if not spec.quiet:
        scored = result.report.counts.rows_scored if result.report is not None else 0
        click.echo(
            f"Stream predict {spec.model} on {spec.source}: {result.batches} batches this run; "
            f"{scored} rows scored so far -> {spec.output.rstrip('/')}/{PREDICTIONS}"
        )
    return int(ExitCode.OK)


@lakegate_command("predict", spec=StreamPredictSpec, render=render)
@click.option("--model", "model", required=True, help="models:/name@alias or /version.")
@click.option(
    "--source", required=True, help="delta:PATH, parquet:PATH, json:PATH, csv:PATH or kafka:TOPIC."
)
@click.option("--output", required=True, help="Folder for predictions/, report.json/.html.")
@click.option("--checkpoint", required=True, help="The query's checkpoint folder.")
@click.option("--key", "key", multiple=True, help="A key column to carry over (repeatable).")
@click.option("--gate", is_flag=True, help="Apply the model's input gate before scoring.")
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
    "--schema", "schema_ddl", default=None, help="The source's columns as DDL (kafka: required)."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on 127.0.0.1:PORT while the query runs (0: any free port).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(job: JobContext, spec: StreamPredictSpec) -> StreamPredictResult:
    """Score every micro-batch of a stream with a model; a moved alias scores the next batch."""
    from spark_jobs.services.stream_io import parse_source, parse_trigger, stream_settings

    parse_source(spec.source), parse_trigger(spec.trigger)  # before Spark starts
    job.settings = stream_settings(job.settings)  # the session is built from these
    preload_for(job.settings, {"model": spec.model})
    return run(job.spark, job.settings, spec)
