"""Prometheus metrics of a running stream (`--metrics-port`), and the record of one batch.

    metrics = StreamMetrics("lakegate_orders")
    with metrics.serve(port), metrics.listening(spark):
        query = start_query(...)              # the batch function calls
        ...                                   # metrics.observe_batch(BatchRecord(...))

Served on 127.0.0.1 only, from a registry of this object's own, until the `with` ends (the
query has ended by then). Every series carries the label `query` (the query's name):

    lakegate_stream_batches_total, lakegate_stream_rows_total (rows in),
    lakegate_stream_rows_valid_total, lakegate_stream_rows_quarantined_total,
    lakegate_stream_batch_duration_seconds (histogram), lakegate_stream_rows_per_second (last
    batch), lakegate_stream_last_batch_id, lakegate_stream_state_rows (lakegate's own state:
    keys held), from Spark's progress reports: lakegate_stream_input_rows_behind (Kafka's
    offsets behind the latest, summed over sources), lakegate_stream_input_files_behind (Delta's
    files outstanding) and lakegate_stream_spark_state_rows (stateful operators' rows).
A source that reports no backlog leaves its gauge absent rather than zero (Delta 3.3's source
reported none under `available-now` here; Kafka's reports offsets behind on every batch).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lakegate_errors import EnvironmentProblem

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HOST = "127.0.0.1"
# Micro-batches take from a fraction of a second to minutes.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchRecord:
    """What one micro-batch did: the line of report.html's batch history and of the metrics.

    `rows_valid` is what was written as valid (stream validate) or scored (stream predict);
    `model_version` names the version that scored the batch (stream predict only).
    """

    batch_id: int
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    duration_seconds: float
    status: str = "success"
    finished_at: str | None = None
    model_version: str | None = None
    state_rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (report.json's `batch_history` entries)."""
        return asdict(self)

    @classmethod
    def of(cls, entry: Any) -> BatchRecord | None:
        """A `batch_history` entry of report.json as a record (None: not one lakegate wrote)."""
        if not isinstance(entry, Mapping):
            return None
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in entry.items() if k in names})
        except TypeError:  # a required field missing
            return None


def with_batch(
    history: Sequence[BatchRecord], record: BatchRecord, limit: int
) -> tuple[BatchRecord, ...]:
    """`history` with `record` in it (a replayed batch id replaces its entry), the last `limit`."""
    kept = [entry for entry in history if entry.batch_id != record.batch_id]
    kept.append(record)
    kept.sort(key=lambda entry: entry.batch_id)
    return tuple(kept[-limit:])


class StreamMetrics:
    """The metrics of one streaming query, fed per batch and from Spark's progress reports."""

    def __init__(self, query_name: str) -> None:
        """One registry per query; `query_name` is the value of every series' `query` label."""
        self.query_name = query_name
        self.registry = CollectorRegistry()
        label = ["query"]

        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, label, registry=self.registry)

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, label, registry=self.registry)

        self.batches = counter("lakegate_stream_batches", "Micro-batches committed.")
        self.rows = counter("lakegate_stream_rows", "Rows read from the source (rows in).")
        self.rows_valid = counter("lakegate_stream_rows_valid", "Rows written valid or scored.")
        self.rows_quarantined = counter(
            "lakegate_stream_rows_quarantined", "Rows written to the quarantine."
        )
        self.duration = Histogram(
            "lakegate_stream_batch_duration_seconds",
            "Time to process one micro-batch.",
            label,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.rows_per_second = gauge(
            "lakegate_stream_rows_per_second", "Rows in per second of the last batch."
        )
        self.last_batch_id = gauge("lakegate_stream_last_batch_id", "Id of the last batch.")
        self.state_rows = gauge(
            "lakegate_stream_state_rows", "Rows of lakegate's own state (keys held)."
        )
        self.rows_behind = gauge(
            "lakegate_stream_input_rows_behind",
            "Source rows not yet read (Kafka: offsets behind the latest), when reported.",
        )
        self.files_behind = gauge(
            "lakegate_stream_input_files_behind",
            "Source files not yet read (Delta: files outstanding), when reported.",
        )
        self.spark_state_rows = gauge(
            "lakegate_stream_spark_state_rows", "Rows held by Spark's stateful operators."
        )

    def observe_batch(self, record: BatchRecord) -> None:
        """Count one committed batch (call it once the batch's outputs are written)."""
        q = self.query_name
        self.batches.labels(q).inc()
        self.rows.labels(q).inc(record.rows_in)
        self.rows_valid.labels(q).inc(record.rows_valid)
        self.rows_quarantined.labels(q).inc(record.rows_quarantined)
        self.duration.labels(q).observe(record.duration_seconds)
        seconds = max(record.duration_seconds, 1e-6)
        self.rows_per_second.labels(q).set(record.rows_in / seconds)
        self.last_batch_id.labels(q).set(record.batch_id)
        if record.state_rows is not None:
            self.state_rows.labels(q).set(record.state_rows)

    def observe_progress(self, progress: Mapping[str, Any]) -> None:
        """Read the backlog and state size from one `StreamingQueryProgress` (its JSON dict)."""
        q = self.query_name
        sources = progress.get("sources") or []
        rows_behind = _summed(sources, "maxOffsetsBehindLatest")
        if rows_behind is not None:
            self.rows_behind.labels(q).set(rows_behind)
        files_behind = _summed(sources, "numFilesOutstanding")
        if files_behind is not None:
            self.files_behind.labels(q).set(files_behind)
        operators = progress.get("stateOperators") or []
        if operators:
            total = sum(int(op.get("numRowsTotal") or 0) for op in operators)
            self.spark_state_rows.labels(q).set(total)

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format (what the endpoint serves)."""
        return generate_latest(self.registry)

    @contextmanager
    def serve(self, port: int | None) -> Iterator[int | None]:
        """Serve `/metrics` on 127.0.0.1:`port` until the block ends; yields the bound port.

        None serves nothing (yields None); 0 takes a free port.

        Raises:
            EnvironmentProblem: the port cannot be bound (exit 3).
        """
        if port is None:
            yield None
            return
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(port, addr=HOST, registry=self.registry)
        except OSError as exc:
            raise EnvironmentProblem(
                f"--metrics-port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); "
                "stop what uses the port or choose another"
            ) from None
        try:
            yield int(server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    @contextmanager
    def running(
        self, spark: SparkSession, port: int | None, *, quiet: bool = False
    ) -> Iterator[int | None]:
        """`serve(port)` plus `listening(spark)` while a query runs; yields the bound port.

        None serves nothing and listens to nothing. Unless `quiet`, prints where it serves.

        Raises:
            EnvironmentProblem: the port cannot be bound (exit 3).
        """
        with self.serve(port) as bound:
            if bound is None:
                yield None
                return
            if not quiet:
                print(f"metrics on http://{HOST}:{bound}/metrics", file=sys.stderr, flush=True)
            with self.listening(spark):  # Spark's progress reports feed the backlog gauges
                yield bound

    @contextmanager
    def listening(self, spark: SparkSession) -> Iterator[None]:
        """Feed `observe_progress` from Spark's progress reports of this query, meanwhile."""
        listener = _progress_listener(self)
        spark.streams.addListener(listener)
        try:
            yield
        finally:
            spark.streams.removeListener(listener)


def _summed(sources: list[Mapping[str, Any]], name: str) -> float | None:
    """A source metric summed over the sources that report it (None: none does)."""
    values = []
    for source in sources:
        value = (source.get("metrics") or {}).get(name)
        if value is not None:
            try:
                values.append(float(value))
            except (TypeError, ValueError):
                continue
    return sum(values) if values else None


def _progress_listener(metrics: StreamMetrics) -> Any:
    """A `StreamingQueryListener` passing this query's progress reports to `metrics`."""
    from pyspark.sql.streaming.listener import StreamingQueryListener

    class ProgressListener(StreamingQueryListener):
        lock = threading.Lock()

        def onQueryStarted(self, event: Any) -> None:
            """Nothing to record."""

        def onQueryProgress(self, event: Any) -> None:
            """Record backlog and state of the metrics' own query."""
            progress = event.progress
            if progress.name != metrics.query_name:
                return
            try:
                with self.lock:
                    metrics.observe_progress(json.loads(progress.json))
            except Exception:  # a metric must never stop the stream
                _LOG.exception("reading a stream progress report failed")

        def onQueryIdle(self, event: Any) -> None:
            """Nothing to record."""

        def onQueryTerminated(self, event: Any) -> None:
            """Nothing to record."""

    return ProgressListener()
