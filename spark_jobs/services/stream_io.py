"""Streaming reads and the per-batch idempotent Delta appends of `lakegate stream`.

A source is `SCHEME:PATH`: `delta:`, `parquet:`, `json:`, `csv:` (a folder of files) or
`kafka:TOPIC`. A micro-batch's outputs are Delta appends carrying `txnAppId` (the query's id)
and `txnVersion` (the batch id): Delta records the pair in the table's log, so a batch replayed
after a crash adds nothing twice. A write this batch already committed is run against the
`noop` sink instead, which executes the plan (its observations fill) and writes nothing.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from py4j.protocol import Py4JJavaError
from pydantic import BeforeValidator
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DataType, StringType, StructField, StructType

from checks.suite import Suite
from lakegate_config.settings import Settings
from lakegate_errors import UserError
from spark_jobs.services.session import jvm_of
from spark_jobs.services.table_io import (
    MALFORMED_COLUMN,
    InputError,
    Storage,
    delta_version,
    read_table,
    require_delta,
)

FILE_FORMATS = ("parquet", "json", "csv")
SCHEMES = ("delta", *FILE_FORMATS, "kafka")
FILE_COLUMN = "_lakegate_source_file"
_TRIGGER = re.compile(r"(\d+)\s*(ms|s|m|min|h)")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "min": "minutes", "h": "hours"}


class SchemaDrift(UserError):
    """A file of the stream has a column the stream's schema lacks, or one of another type."""


@dataclass(frozen=True)
class StreamSource:
    """A parsed `--source`: its scheme and its path (or topic)."""

    scheme: str
    location: str

    @property
    def is_file_source(self) -> bool:
        """A folder of parquet, json or csv files."""
        return self.scheme in FILE_FORMATS

    def __str__(self) -> str:
        return f"{self.scheme}:{self.location}"


def parse_source(text: str) -> StreamSource:
    """`delta:PATH`, `parquet:PATH`, `json:PATH`, `csv:PATH` or `kafka:TOPIC`.

    Raises:
        InputError: an unknown scheme or an empty location.
    """
    scheme, _, location = text.partition(":")
    if scheme not in SCHEMES or not location:
        raise InputError(
            f"--source {text!r}: give SCHEME:LOCATION with a scheme among "
            f"{', '.join(SCHEMES)} (for example parquet:/data/landing or kafka:orders)"
        )
    return StreamSource(scheme, location)


def parse_trigger(text: str) -> dict[str, Any]:
    """The keyword of `DataStreamWriter.trigger` for `available-now`, `once` or an interval.

    Raises:
        UserError: anything else.
    """
    if text == "available-now":
        return {"availableNow": True}
    if text == "once":
        return {"once": True}
    match = _TRIGGER.fullmatch(text.strip())
    if match is None:
        raise UserError(
            f"--trigger {text!r}: use available-now, once or an interval such as 30s, 500ms, 5m"
        )
    return {"processingTime": f"{match.group(1)} {_UNITS[match.group(2)]}"}


def suite_schema(spark: SparkSession, suite: Suite) -> StructType | None:
    """The suite's `schema:` section as a StructType, or None when the suite has none.

    Raises:
        UserError: a type Spark does not know.
    """
    if not suite.expected_schema:
        return None
    ddl = ", ".join(f"`{name.replace('`', '``')}` {kind}" for name, kind in suite.expected_schema)
    try:
        parsed = jvm_of(spark).org.apache.spark.sql.types.StructType.fromDDL(ddl)
    except (CapturedException, Py4JJavaError) as exc:
        raise UserError(f"{suite.path}: schema: Spark cannot read the types ({exc})") from None
    found = StructType.fromJson(json.loads(parsed.json()))
    return found


def stream_schema(spark: SparkSession, source: StreamSource, suite: Suite) -> StructType:
    """The schema a file or Kafka stream is read with: the suite's, else the files' at start.

    Csv and json streams get `_lakegate_malformed` added (lines that do not parse keep their text
    there and are quarantined, as in batch mode).

    Raises:
        InputError: no `schema:` in the suite and no file to infer one from.
    """
    declared = suite_schema(spark, suite)
    if declared is None:
        if source.scheme == "kafka":
            raise InputError(
                f"{suite.path}: a kafka source needs the suite's schema: section (the columns "
                "the JSON values are parsed into)"
            )
        declared = _inferred(spark, source)
    fields = [f for f in declared.fields if f.name not in {MALFORMED_COLUMN, "_corrupt_record"}]
    if source.scheme in {"csv", "json"}:
        fields.append(StructField(MALFORMED_COLUMN, StringType(), True))
    return StructType(fields)


def _inferred(spark: SparkSession, source: StreamSource) -> StructType:
    storage = Storage(spark)
    visible = [n for n in storage.children(source.location) if not n.startswith(("_", "."))]
    if not visible:
        raise InputError(
            f"{source}: the folder has no file yet and the suite has no schema: section; list "
            "the columns there (name: type) or start the stream once a file has landed"
        )
    return read_table(spark, source.location, source.scheme).schema


def read_stream(
    spark: SparkSession,
    source: StreamSource,
    schema: StructType | None,
    options: Mapping[str, str],
    kafka_bootstrap: str | None = None,
) -> DataFrame:
    """The source as a streaming DataFrame (`options` go to `readStream` as they are).

    Raises:
        InputError: a missing folder or table, or a kafka source without a bootstrap server.
    """
    if source.scheme == "kafka":
        if not kafka_bootstrap:
            raise InputError(f"{source}: give the broker with --kafka-bootstrap HOST:PORT")
        assert schema is not None
        kafka = importlib.import_module("spark_jobs.services.kafka_source")
        frame: DataFrame = kafka.kafka_frame(
            spark, source.location, kafka_bootstrap, schema, dict(options)
        )
        return frame
    if source.scheme == "delta":
        require_delta(spark)
        if delta_version(spark, source.location) is None:
            raise InputError(f"{source}: no Delta table there (no _delta_log)")
    elif not Storage(spark).is_dir(source.location):
        raise InputError(f"{source}: the folder does not exist")
    reader = spark.readStream.format(source.scheme).options(**dict(options))
    if source.scheme == "delta":
        return reader.load(source.location)
    assert schema is not None
    reader = reader.schema(schema)
    if source.scheme in {"csv", "json"}:
        reader = reader.option("mode", "PERMISSIVE").option(
            "columnNameOfCorruptRecord", MALFORMED_COLUMN
        )
    if source.scheme == "csv":
        reader = reader.option("header", options.get("header", "true"))
    return reader.load(source.location)


def with_file_names(frame: DataFrame) -> DataFrame:
    """A file stream with the file each row came from (`FILE_COLUMN`; drop it before the gate).

    Spark hands foreachBatch a plan without its files (`inputFiles()` is empty there).
    """
    return frame.withColumn(FILE_COLUMN, F.input_file_name())


def batch_files(batch: DataFrame) -> list[str]:
    """The files a micro-batch's rows came from (one small job over the batch)."""
    return [str(r[0]) for r in batch.select(FILE_COLUMN).distinct().collect() if r[0]]


def check_file_drift(
    spark: SparkSession, source: StreamSource, files: Sequence[str], schema: StructType
) -> None:
    """Refuse a batch whose files have a column the stream's schema lacks, or retype one.

    Parquet files are compared by name and type; csv headers and json keys by name (their
    values of another type are quarantined as malformed lines). The batch's files are read
    together; only when they drift is each read alone, to name the file.

    Raises:
        SchemaDrift: naming the column, the file and the fix.
    """
    if not files:
        return
    expected = {f.name: f.dataType for f in schema.fields}
    together = _files_schema(spark, source.scheme, files)
    if together is not None and _drift(source, expected, together) is None:
        return
    for path in files:
        problem = _drift(source, expected, _files_schema(spark, source.scheme, [path]))
        if problem is not None:
            raise SchemaDrift(
                f"schema drift in {source}: {problem} in {path}; nothing of this batch was "
                "committed. Update the suite's schema: section (or move the file out) and "
                "restart the stream on a new checkpoint, or on this one once the file matches"
            )


def check_delta_drift(spark: SparkSession, source: StreamSource, schema: StructType) -> None:
    """Refuse a Delta source whose table now has a column the stream lacks, or retypes one.

    Called when the source failed before a batch began (Delta stops a stream whose table's
    schema changed): nothing of the next batch was committed.

    Raises:
        SchemaDrift: naming the column and the fix (no drift found: returns).
    """
    expected = {f.name: f.dataType for f in schema.fields}
    problem = _drift(source, expected, read_table(spark, source.location, "delta").schema)
    if problem is not None:
        raise SchemaDrift(
            f"schema drift in {source}: the table now has {problem}; nothing of the next batch "
            "was committed. Update the suite (its schema: section, if any) and restart the "
            "stream: it then reads the table with its new schema"
        )


def _drift(
    source: StreamSource, expected: Mapping[str, DataType], found: StructType | None
) -> str | None:
    """What in `found` differs from the stream's columns, or None."""
    if found is None:
        return "a schema Spark cannot read"
    for field in found.fields:
        if field.name in {MALFORMED_COLUMN, "_corrupt_record"}:
            continue
        was = expected.get(field.name)
        if was is None:
            return f"new column {field.name!r} ({field.dataType.simpleString()})"
        typed = source.scheme in {"parquet", "delta"}
        if typed and was.simpleString() != field.dataType.simpleString():
            return (
                f"column {field.name!r} is {field.dataType.simpleString()}, "
                f"the stream reads it as {was.simpleString()}"
            )
    return None


def _files_schema(spark: SparkSession, fmt: str, files: Sequence[str]) -> StructType | None:
    """The files' schema, merged (None: they do not merge, or do not read)."""
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", True)
    if fmt == "parquet":
        reader = reader.option("mergeSchema", True)
    try:
        return reader.load(list(files)).schema
    except (CapturedException, Py4JJavaError):  # incompatible types
        return None


def committed_txn_version(spark: SparkSession, path: str, app_id: str) -> int:
    """The last `txnVersion` Delta recorded for `app_id` at `path` (-1: none, or no table)."""
    if delta_version(spark, path) is None:
        return -1
    jvm = jvm_of(spark)
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return int(log.startTransaction().txnVersion(app_id))


def append_once(
    df: DataFrame, path: str, app_id: str, batch_id: int, *, replay_possible: bool = True
) -> bool:
    """Append `df` to the Delta table at `path` once per (`app_id`, `batch_id`).

    Returns False when this batch was already committed there: the plan then runs against the
    `noop` sink (observations on `df` fill, nothing is written). Only the first batch a query
    runs after a start can be a replay; the others pass `replay_possible=False` and skip the
    look into the table's log (Delta still refuses a second commit of the same pair).
    """
    spark = df.sparkSession
    if replay_possible and committed_txn_version(spark, path, app_id) >= batch_id:
        df.write.format("noop").mode("overwrite").save()
        return False
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .option("userMetadata", f"lakegate stream {app_id} batch {batch_id}")
        .save(path)
    )
    return True


def delete_where(spark: SparkSession, path: str, condition: Column) -> None:
    """Delete the rows of the Delta table at `path` where `condition` holds (no table: nothing).

    Files whose statistics rule the condition out are not read; a delete that matches no row
    commits nothing.
    """
    if delta_version(spark, path) is None:
        return
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, path).delete(condition)


def read_delta(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at `path`, or None when there is none yet."""
    if delta_version(spark, path) is None:
        return None
    return read_table(spark, path, "delta")


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The query's id from Spark's checkpoint metadata (stable across restarts)."""
    metadata = Storage(spark).read_text(f"{checkpoint.rstrip('/')}/metadata")
    return str(json.loads(metadata.splitlines()[0])["id"])


def start_query(
    frame: DataFrame,
    process: Callable[[DataFrame, int], None],
    checkpoint: str,
    trigger: Mapping[str, Any],
    name: str,
) -> StreamingQuery:
    """Start `process(batch, batch_id)` on every micro-batch of `frame`."""
    writer = frame.writeStream.queryName(name).foreachBatch(process)
    return writer.option("checkpointLocation", checkpoint).trigger(**dict(trigger)).start()


def previous_report(spark: SparkSession, output: str) -> dict[str, Any]:
    """OUT/report.json of an earlier run on this output (its batch history continues), else {}."""
    storage = Storage(spark)
    path = f"{output.rstrip('/')}/report.json"
    if not storage.exists(path):
        return {}
    try:
        found = json.loads(storage.read_text(path))
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """`--option KEY=VALUE` pairs as readStream options.

    Raises:
        UserError: a pair without `=` or without a key.
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--option {pair!r}: give KEY=VALUE (for example maxFilesPerTrigger=1)")
        options[key] = value
    return options


def _option_pairs(value: Any) -> Any:
    """`--option` values (a list or tuple of KEY=VALUE) as a mapping; a mapping as it is."""
    return parse_options(value) if isinstance(value, list | tuple) else value


# A command spec's readStream options: a mapping, or the `--option KEY=VALUE` pairs as given
# (a pair without `=` raises `UserError` naming it, exit 2).
ReadOptions = Annotated[dict[str, str], BeforeValidator(_option_pairs)]


# How long a stop waits for Spark to record the last batch in the checkpoint's commit log.
COMMIT_WAIT_SECONDS = 30.0


class StreamStopped(Exception):
    """A batch began after a stop was asked for: it is left to the next run."""


class StoppableBatches(Protocol):
    """A foreachBatch function `await_query` can stop between batches.

    It sets `in_batch` while a batch runs, records `last_batch_id` once a batch is done and
    `error` (the first one) when a batch fails, and raises `StreamStopped` instead of starting
    a batch once `stop_reason` is set.
    """

    stop_reason: str | None
    in_batch: bool
    last_batch_id: int
    error: BaseException | None


class GuardedBatches:
    """The guard of a foreachBatch function: one base for `stream validate` and `stream predict`.

    Calling it runs `_process(batch, batch_id)` with `in_batch` set, raises `StreamStopped`
    instead once `stop_reason` is set, and keeps the first error a batch raised in `error`
    (re-raised, so Spark fails the query; `await_query` raises it again). A subclass (a
    dataclass) declares the four fields of `StoppableBatches` with their defaults and sets
    `last_batch_id` when a batch is done.
    """

    stop_reason: str | None
    in_batch: bool
    last_batch_id: int
    error: BaseException | None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Run one micro-batch (Spark's foreachBatch call), or refuse it after a stop."""
        self.in_batch = True
        try:
            if self.stop_reason is not None:
                raise StreamStopped(self.stop_reason)
            self._process(batch, batch_id)
        except BaseException as exc:
            self.error = self.error or exc
            raise
        finally:
            self.in_batch = False

    def _process(self, batch: DataFrame, batch_id: int) -> None:
        """The batch's work (a subclass's)."""
        raise NotImplementedError


def checked_batch(
    spark: SparkSession, source: StreamSource, batch: DataFrame, schema: StructType
) -> DataFrame:
    """A micro-batch without its file column, once its files (a file source) showed no drift.

    Raises:
        SchemaDrift: a file of the batch has a column the stream lacks, or retypes one.
    """
    if not source.is_file_source:
        return batch
    check_file_drift(spark, source, batch_files(batch), schema)
    return batch.drop(FILE_COLUMN)


def await_query(
    query: StreamingQuery,
    batches: StoppableBatches,
    on_source_failure: Callable[[], None] | None = None,
) -> str | None:
    """Wait for the query's end; stop it after the batch in flight on SIGTERM or a stop asked for.

    `on_source_failure` runs when the query failed before any batch did (the source itself);
    it may raise a clearer error. Returns why the query was stopped (None: it ended by itself).

    Raises:
        The batch function's own error (a `LakegateError` keeps its exit code).
    """
    import logging
    import signal
    import threading

    previous = None
    # py4j logs the batch function's error with its trace; the error is raised here instead.
    proxy_log = logging.getLogger("py4j.clientserver")
    proxy_level = proxy_log.level
    proxy_log.setLevel(logging.CRITICAL)
    if threading.current_thread() is threading.main_thread():

        def on_sigterm(signum: int, frame: Any) -> None:
            batches.stop_reason = batches.stop_reason or "SIGTERM"

        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _wait(query, batches, on_source_failure)
        return batches.stop_reason
    finally:
        proxy_log.setLevel(proxy_level)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _wait(
    query: StreamingQuery,
    batches: StoppableBatches,
    on_source_failure: Callable[[], None] | None,
) -> None:
    """Poll the query until it ends, stopping it between batches when a stop was asked for."""
    from pyspark.errors import StreamingQueryException

    from lakegate_errors import LakegateError

    try:
        while query.isActive:
            if batches.stop_reason is not None and not batches.in_batch:
                _wait_for_commit(query, batches.last_batch_id)
                query.stop()
                return
            query.awaitTermination(1)
        query.awaitTermination()  # raises the query's error, if it failed
    except StreamingQueryException:
        if isinstance(batches.error, StreamStopped):
            return
        if isinstance(batches.error, LakegateError):
            raise batches.error from None
        if batches.error is None and on_source_failure is not None:
            on_source_failure()
        raise


def _wait_for_commit(query: StreamingQuery, batch_id: int) -> None:
    """Give Spark a moment to record `batch_id` in the commit log (its progress comes after)."""
    import time

    deadline = time.monotonic() + COMMIT_WAIT_SECONDS
    while batch_id >= 0 and time.monotonic() < deadline:
        progress = query.lastProgress
        if progress is not None and int(progress.get("batchId", -1)) >= batch_id:
            return
        time.sleep(0.1)


def stream_settings(settings: Settings) -> Settings:
    """`settings` with the stream's Spark settings (`stream.spark_conf`) over `spark.conf`.

    Both stream commands build their session from these: a query runs for hours, and Spark's
    status store would otherwise keep the plans and task metrics of 1,000 SQL executions, jobs
    and stages.
    """
    conf = {**settings.spark.conf, **settings.stream.spark_conf}
    spark = settings.spark.model_copy(update={"conf": conf})
    return settings.model_copy(update={"spark": spark})
