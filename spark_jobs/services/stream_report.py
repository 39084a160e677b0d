"""A stream's report as a frozen value: report.json, report.html and the summary come from it.

`stream validate` builds a `StreamReport` after every batch: the total window (everything
committed so far: status, counts, quarantine reasons, constraint results), the batches seen,
the keys held per uniqueness rule, the last batch (its verdict, counts, reasons, constraints
and anomaly checks) and the per-batch history (`stream_metrics.BatchRecord`). `stream predict`
builds a `StreamPredictReport` (the model, its scoring path, rows scored and gated). Each has
`as_dict()` (report.json, keys and values as the JSON has them) and `html()` (report.html).

Optional sections are fields with an empty default that `as_dict` writes only when they hold
something, so a report without them keeps today's keys: the last batch's `anomalies` is one;
tumbling event-time windows (`windows`) take the same form.

`BatchAnomalies` judges a suite's `anomalies:` on each batch against the earlier batches of the
same suite and query (`window: batch` in the metrics repository), with checks/anomalies.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checks.anomalies import (
    AnalyzerKey,
    AnomalyResult,
    HistoryPoint,
    any_failed,
    current_metrics,
    evaluate_anomalies,
    load_metric_history,
)
from checks.deequ_run import ConstraintResult
from checks.suite import Level
from spark_jobs.services.html_report import render_stream_report_html
from spark_jobs.services.stream_metrics import BatchRecord

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from checks.gate import Gate
    from checks.suite import Suite

PREDICT_TITLE = "Stream predict"


@dataclass(frozen=True)
class StreamCounts:
    """Rows in, written valid and quarantined (in == valid + quarantined)."""

    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        """report.json's `counts`."""
        return asdict(self)

    @classmethod
    def of(cls, found: Mapping[str, Any] | None) -> StreamCounts:
        """Counts kept as a mapping (the running totals' summary); zeros where it has none."""
        found = found or {}
        names = ("rows_in", "rows_valid", "rows_quarantined")
        return cls(*(int(found.get(name) or 0) for name in names))


@dataclass(frozen=True)
class BatchesSeen:
    """How many batches the output has committed, and the last one's id."""

    count: int
    last_batch_id: int

    def as_dict(self) -> dict[str, int]:
        """report.json's `batches`."""
        return asdict(self)


@dataclass(frozen=True)
class WindowVerdict:
    """A window's judgement: its status, counts, rows blamed per constraint, constraint results."""

    status: str
    counts: StreamCounts
    quarantine_reasons: Mapping[str, int]
    constraints: tuple[ConstraintResult, ...]


@dataclass(frozen=True)
class LastBatch:
    """The last batch: its verdict (worsened by failed anomaly checks) and how long it took."""

    batch_id: int
    duration_seconds: float
    verdict: WindowVerdict
    anomalies: tuple[AnomalyResult, ...] = ()

    @property
    def status(self) -> str:
        """The batch's status (Deequ's, or `failure`/`warning` for a failed anomaly check)."""
        return self.verdict.status

    def failed(self) -> bool:
        """An error-level constraint or anomaly check failed on the batch."""
        return any(
            c.status == "failure" and c.level is Level.ERROR for c in self.verdict.constraints
        ) or any_failed(self.anomalies, Level.ERROR)

    def as_dict(self) -> dict[str, Any]:
        """report.json's `last_batch` (`anomalies` only when the suite has anomaly checks)."""
        found = {
            "batch_id": self.batch_id,
            "status": self.status,
            "duration_seconds": self.duration_seconds,
            "counts": self.verdict.counts.as_dict(),
            "quarantine_reasons": dict(self.verdict.quarantine_reasons),
            "constraints": [c.as_dict() for c in self.verdict.constraints],
        }
        if self.anomalies:
            found["anomalies"] = [a.as_dict() for a in self.anomalies]
        return found


@dataclass(frozen=True)
class StreamReport:
    """`stream validate`'s report after a batch (what OUT/report.json holds)."""

    suite: str
    suite_file: str
    source: str  # redacted
    output: str
    checkpoint: str
    query_id: str | None
    updated_at: str | None
    total: WindowVerdict  # every batch committed so far
    batches: BatchesSeen
    key_state: Mapping[str, int]  # keys held per uniqueness rule
    last_batch: LastBatch
    batch_history: tuple[BatchRecord, ...] = field(default=())
    windows: Mapping[str, Any] | None = None  # event-time windows (stream_windows), if any

    def as_dict(self) -> dict[str, Any]:
        """The report.json document (`windows` only when the suite has event-time windows)."""
        found = {
            "suite": self.suite,
            "suite_file": self.suite_file,
            "source": self.source,
            "output": self.output,
            "checkpoint": self.checkpoint,
            "query_id": self.query_id,
            "updated_at": self.updated_at,
            "status": self.total.status,
            "counts": self.total.counts.as_dict(),
            "quarantine_reasons": dict(self.total.quarantine_reasons),
            "constraints": [c.as_dict() for c in self.total.constraints],
            "batches": self.batches.as_dict(),
            "key_state": dict(self.key_state),
            "last_batch": self.last_batch.as_dict(),
            "batch_history": [b.as_dict() for b in self.batch_history],
        }
        if self.windows is not None:
            found["windows"] = dict(self.windows)
        return found

    def summary_fields(self) -> dict[str, Any]:
        """The report.json document plus the last batch's anomaly checks as `anomalies`.

        What `validation_summary` and report.html read (besides a summary's `input`, `outputs`).
        """
        found = self.as_dict()
        if self.last_batch.anomalies:
            found["anomalies"] = found["last_batch"]["anomalies"]
        return found

    def html(self) -> str:
        """report.html: the running total, the last batch's anomaly checks, the batches."""
        return render_stream_report_html(self.summary_fields() | {"finished_at": self.updated_at})


@dataclass(frozen=True)
class PredictCounts:
    """Rows read, scored and stopped by the input gate."""

    rows_in: int = 0
    rows_scored: int = 0
    rows_gated: int = 0

    def as_dict(self) -> dict[str, int]:
        """report.json's `counts`."""
        return asdict(self)

    def plus(self, record: BatchRecord, sign: int = 1) -> PredictCounts:
        """These counts with a batch's rows added (`sign` -1: taken away, a replayed batch)."""
        return PredictCounts(
            self.rows_in + sign * record.rows_in,
            self.rows_scored + sign * record.rows_valid,
            self.rows_gated + sign * record.rows_quarantined,
        )

    @classmethod
    def of(cls, found: Mapping[str, Any] | None) -> PredictCounts:
        """The counts of an earlier report.json (zeros when it has none)."""
        found = found or {}
        return cls(
            *(int(found.get(name) or 0) for name in ("rows_in", "rows_scored", "rows_gated"))
        )


@dataclass(frozen=True)
class StreamPredictReport:
    """`stream predict`'s report after a batch (what OUT/report.json holds)."""

    model_uri: str  # redacted
    model_name: str | None
    model_version: str | None
    scoring_path: str
    source: str  # redacted
    output: str  # OUT/predictions
    quarantine: str | None  # OUT/quarantine with --gate
    checkpoint: str
    query_id: str | None
    updated_at: str | None
    counts: PredictCounts
    batches: BatchesSeen
    last_batch: BatchRecord
    batch_history: tuple[BatchRecord, ...] = field(default=())
    status: str = "success"

    def as_dict(self) -> dict[str, Any]:
        """The report.json document."""
        return {
            "title": PREDICT_TITLE,
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "scoring_path": self.scoring_path,
            "source": self.source,
            "output": self.output,
            "quarantine": self.quarantine,
            "checkpoint": self.checkpoint,
            "query_id": self.query_id,
            "updated_at": self.updated_at,
            "status": self.status,
            "counts": self.counts.as_dict(),
            "batches": self.batches.as_dict(),
            "last_batch": self.last_batch.as_dict(),
            "batch_history": [b.as_dict() for b in self.batch_history],
        }

    def html(self) -> str:
        """report.html; its counts table names the rows as a table's validation does."""
        c = self.counts
        table_counts = StreamCounts(c.rows_in, c.rows_scored, c.rows_gated)
        return render_stream_report_html(self.as_dict() | {"counts": table_counts.as_dict()})


def batch_records(entries: Iterable[Mapping[str, Any]] | None) -> tuple[BatchRecord, ...]:
    """An earlier report.json's `batch_history` as records (entries it cannot read are left)."""
    records = (BatchRecord.of(entry) for entry in entries or ())
    return tuple(r for r in records if r is not None)


@dataclass
class BatchAnomalies:
    """A suite's anomaly checks on each batch of one query, against the query's earlier batches.

    The history is read from the metrics repository once, at the query's first batch in this
    run: the suite's entries tagged `window: batch` and the query's id (a new checkpoint starts
    a new history; the running total's `window: total` entries never count), without that
    batch's own (saved already when it is a replay). After that each judged batch's metrics are
    added in memory when the batch saves them too (`keep`), so a batch reads no file.
    """

    suite: Suite
    repository: Path
    keep: bool  # the batches' metrics are saved (`--no-history`: no batch adds to the history)
    points: dict[AnalyzerKey, list[HistoryPoint]] | None = None

    def judge(
        self, spark: SparkSession, gate: Gate, query_id: str, batch_id: int
    ) -> tuple[AnomalyResult, ...]:
        """The batch's anomaly results (its metrics from the gate, after `verdict`).

        The gate computed them in its pass: `apply_suite(..., extra_analyzers=
        anomaly_analyzers(...))`.
        """
        entries = self.suite.anomalies
        if not entries:
            return ()
        if self.points is None:
            tags, own = {"window": "batch", "query_id": query_id}, {"batch_id": str(batch_id)}
            self.points = {}
            for entry in entries:
                if entry.key not in self.points:
                    self.points[entry.key] = load_metric_history(
                        spark, self.repository, self.suite.name, entry, tags=tags,
                        exclude_tags=own,
                    )  # fmt: skip
        current = current_metrics(spark, entries, gate.analyzer_context)
        latest = max((p.time for points in self.points.values() for p in points), default=0)
        now = max(int(time.time() * 1000), latest + 1)
        results = evaluate_anomalies(
            spark, entries, current, self.repository, self.suite.name, now=now,
            histories=self.points,
        )  # fmt: skip
        if self.keep:
            for key, value in current.items():
                self.points.setdefault(key, []).append(HistoryPoint(now, value))
        return tuple(results)
