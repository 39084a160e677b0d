"""Tumbling event-time windows of `lakegate stream validate`, judged once each closes.

A suite's `stream: {window: {column: ts, size: 1 hour, watermark: 10 minutes}}` puts every row
with an event time in the window `[floor(ts / size) * size, + size)`. Per open window, Deequ's
states of the suite's analyzers are merged batch by batch; the watermark is the latest event
time committed so far less `watermark`, and a window whose end is at or before it closes: the
suite is judged once on its merged metrics. Rows of a window already closed (late) and rows
without an event time are counted, and added to no window.

`CHECKPOINT/_lakegate/windows/<batch_id>/` holds `windows.json` (the open windows, the latest
event time, the counts) and `w<start>/`, the merged states (`HdfsStateProvider` files) of each
window that batch added rows to; a window the batch did not touch keeps pointing at the older
folder. Batch N reads the newest folder before N and writes a staging folder renamed into
place, so a replayed batch merges with the same states again and adds nothing twice. Folders
neither the newest batch nor the one before it refers to are deleted (a closed window's states
at the next batch).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from checks.deequ_run import (
    VerificationOutcome,
    deequ_frame,
    metrics_repository,
    read_results,
    result_key,
)
from checks.gate import NOT_OBSERVABLE, Gate, metrics_of_states, scala_items
from checks.row_rules import column
from checks.suite import Level, Suite, SuiteError
from lakegate_config.yaml_document import (
    DocumentError,
    YamlDocument,
    describe_validation_error,
    load_yaml_document,
)
from spark_jobs.services.session import jvm_of
from spark_jobs.services.stream_state import (
    check_time_column,
    parse_duration,
    persist_frequencies,
    saved_tags,
)
from spark_jobs.services.table_io import Storage

WINDOW_TAG = "event"  # the metrics repository's `window` tag of a closed window's metrics
CLOSED_KEPT = 50  # closed windows kept in windows.json for the report
PROGRESS_SHOWN = 3  # closed windows a progress line names
_INDEX_FILE = "windows.json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _WindowDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    size: str
    watermark: str = "0s"

    @field_validator("size")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError("size must be longer than 0s")
        return value

    @field_validator("watermark")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


@dataclass(frozen=True)
class WindowConfig:
    """The suite's `stream.window`: the event-time column, window size and watermark delay."""

    column: str
    size: timedelta
    watermark: timedelta
    where: str = ""  # `file:line` of `stream.window.column`, for messages

    @property
    def size_micros(self) -> int:
        """The window size in microseconds."""
        return self.size // timedelta(microseconds=1)

    def watermark_of(self, max_event: int | None) -> int | None:
        """The watermark (epoch microseconds) given the latest event time committed, or None."""
        if max_event is None:
            return None
        return max_event - self.watermark // timedelta(microseconds=1)

    def event_micros(self) -> Column:
        """A row's event time in epoch microseconds (NULL without one)."""
        return F.unix_micros(column(self.column).cast("timestamp"))

    def start_of(self, micros: Column) -> Column:
        """The start of the window holding `micros` (floor, also before 1970)."""
        size = F.lit(self.size_micros)
        return micros - F.pmod(micros, size)

    def check(self, schema: StructType, suite: Suite) -> None:
        """Refuse a column the stream lacks or of no time type, and reference-table rules.

        Raises:
            SuiteError: naming the line of `stream.window` and the fix.
        """
        check_time_column(
            schema, self.column, f"{self.where}: stream.window.column", "event-time windows need"
        )
        joined = [c.id for c in suite.constraints if c.type.joins_reference]
        if joined:
            raise SuiteError(
                f"{self.where}: stream.window cannot judge isContainedInTable ({joined[0]}) per "
                "window yet; remove the window section or that constraint"
            )


def window_config(path: Path | None) -> WindowConfig | None:
    """The suite file's `stream: {window: {column, size, watermark}}`, or None without one.

    Raises:
        SuiteError: a section that does not validate, naming the field and its line.
    """
    if path is None or path.suffix == ".json":
        return None
    try:
        document = load_yaml_document(path)
    except DocumentError as exc:
        raise SuiteError(str(exc)) from None
    data = document.data if isinstance(document.data, dict) else {}
    section = data.get("stream")
    raw = section.get("window") if isinstance(section, dict) else None
    return None if raw is None else _config_of(document, raw)


def _config_of(document: YamlDocument, raw: Any) -> WindowConfig:
    location = ("stream", "window")
    try:
        doc = _WindowDoc.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(describe_validation_error(document, exc, location)) from None
    return WindowConfig(
        column=doc.column,
        size=parse_duration(doc.size),
        watermark=parse_duration(doc.watermark),
        where=document.where((*location, "column")),
    )


def iso(micros: int) -> str:
    """Epoch microseconds as an ISO-8601 UTC time."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()


@dataclass(frozen=True)
class ClosedWindow:
    """A window the watermark passed: its rows, the batches that added to it, the verdict."""

    start: int  # epoch microseconds
    end: int
    rows: int
    batches: int
    closed_in_batch: int
    outcome: VerificationOutcome

    def as_dict(self) -> dict[str, Any]:
        """For report.json (and windows.json's recently closed windows)."""
        return {
            "window_start": iso(self.start),
            "window_end": iso(self.end),
            "rows": self.rows,
            "batches": self.batches,
            "closed_in_batch": self.closed_in_batch,
            "status": self.outcome.status,
            "constraints": [c.as_dict() for c in self.outcome.results],
        }


@dataclass(frozen=True)
class WindowOutcome:
    """What a batch did to the windows: those it closed, the open ones, the running counts."""

    closed: list[ClosedWindow]
    summary: dict[str, Any]  # report.json's `windows` section

    @property
    def failed(self) -> bool:
        """Whether an error-level check failed in a window this batch closed."""
        return any(w.outcome.failed(Level.ERROR) for w in self.closed)

    def progress(self, shown: int = PROGRESS_SHOWN) -> str:
        """The progress line's mention of the windows this batch closed ("" if none).

        `; windows closed: 2026-01-01T00:00:00+00:00 failure, ...`: each window's start and
        status, the first `shown` of them, then how many more.
        """
        if not self.closed:
            return ""
        named = [f"{iso(w.start)} {w.outcome.status}" for w in self.closed[:shown]]
        more = len(self.closed) - shown
        if more > 0:
            named.append(f"{more} more")
        noun = "window" if len(self.closed) == 1 else "windows"
        return f"; {noun} closed: {', '.join(named)}"


@dataclass(frozen=True)
class _Open:
    rows: int
    batches: int
    folder: int  # the batch whose folder holds the window's merged states


@dataclass(frozen=True)
class _Index:
    """windows.json: what the windows are after a batch."""

    max_event: int | None = None
    open: dict[int, _Open] = field(default_factory=dict)
    late_rows: int = 0
    null_rows: int = 0
    closed_count: int = 0
    closed: list[dict[str, Any]] = field(default_factory=list)  # the newest CLOSED_KEPT

    def to_json(self) -> str:
        data = {
            "max_event": self.max_event,
            "open": {str(s): vars(w) for s, w in sorted(self.open.items())},
            "late_rows": self.late_rows,
            "null_rows": self.null_rows,
            "closed_count": self.closed_count,
            "closed": self.closed,
        }
        return json.dumps(data, indent=2)

    @staticmethod
    def from_json(text: str) -> _Index:
        data = json.loads(text)
        return _Index(
            max_event=data["max_event"],
            open={int(s): _Open(**w) for s, w in data["open"].items()},
            late_rows=int(data["late_rows"]),
            null_rows=int(data["null_rows"]),
            closed_count=int(data["closed_count"]),
            closed=list(data["closed"]),
        )


@dataclass
class _BatchSlices:
    """One batch against the windows: each accepted window's rows and states, the counts."""

    rows: dict[int, int] = field(default_factory=dict)
    states: dict[int, Any] = field(default_factory=dict)  # InMemoryStateProvider per window
    late_rows: int = 0
    null_rows: int = 0
    max_event: int | None = None


class EventWindows:
    """The windows of one query, beside its checkpoint; `after_batch` once per batch."""

    def __init__(
        self, spark: SparkSession, config: WindowConfig, root: str, repository: Path | None
    ) -> None:
        self.spark = spark
        self.config = config
        self.storage = Storage(spark)
        self.folder = f"{root.rstrip('/')}/windows"
        self.repository = repository

    def after_batch(
        self, gate: Gate, scan: DataFrame, batch_id: int, replay: bool, tags: dict[str, str]
    ) -> WindowOutcome:
        """Add batch `batch_id`'s rows to their open windows; judge the windows it closes.

        `scan` is the batch as the gate scanned it (no malformed-line column); `tags` those of
        the batch's metrics (suite, batch_id, query_id): a closed window's metrics are saved with
        them, `window: event` and `window_start`/`window_end`. A `replay` saves no window the
        history already holds.
        """
        before_id = self._previous(batch_id)
        before = self._read(before_id)
        slices = self._slices(gate, scan, self.config.watermark_of(before.max_event))
        staging = f"{self.folder}/_staging-{batch_id}-{uuid.uuid4().hex[:8]}"
        after = _advanced(before, slices, batch_id)
        watermark = self.config.watermark_of(after.max_event)
        size = self.config.size_micros
        closing = sorted(s for s in after.open if watermark is not None and s + size <= watermark)
        contexts = self._merge(gate, before, slices, staging, set(closing))
        judged = {s: self._judge(gate, s, contexts.get(s), after.open[s].folder) for s in closing}
        closed = [
            ClosedWindow(s, s + size, after.open[s].rows, after.open[s].batches, batch_id, outcome)
            for s, (outcome, _) in judged.items()
        ]
        after = replace(
            after,
            open={s: w for s, w in after.open.items() if s not in closing},
            closed_count=after.closed_count + len(closed),
            closed=(after.closed + [w.as_dict() for w in closed])[-CLOSED_KEPT:],
        )
        self._commit(staging, after, batch_id, before_id, before)
        self._save(closed, {s: context for s, (_, context) in judged.items()}, replay, tags)
        return WindowOutcome(closed, self._summary(after, slices, watermark))

    def _previous(self, batch_id: int) -> int | None:
        ids = [int(n) for n in self.storage.children(self.folder) if n.isdigit()]
        earlier = [i for i in ids if i < batch_id]
        return max(earlier) if earlier else None

    def _read(self, batch_id: int | None) -> _Index:
        if batch_id is None:
            return _Index()
        return _Index.from_json(self.storage.read_text(f"{self.folder}/{batch_id}/{_INDEX_FILE}"))

    def _slices(self, gate: Gate, scan: DataFrame, watermark: int | None) -> _BatchSlices:
        """One aggregate grouped by window: rows, latest event time, scan-shareable states.

        Windows ending at or before `watermark` (closed before this batch) are late; grouping
        and other analyzers get their states from a pass over each accepted window's rows.
        """
        jvm = jvm_of(self.spark)
        shared, offsets, functions = _shareable(gate.analyzers)
        event = self.config.event_micros()
        start = self.config.start_of(event)
        packed = F.struct(*functions) if functions else F.struct(F.lit(0).alias("none"))
        grouped = scan.groupBy(start.alias("window")).agg(
            F.count(F.lit(1)).alias("rows"), F.max(event).alias("latest"), packed.alias("states")
        )
        found = _BatchSlices()
        for row in grouped._jdf.collectAsList():
            rows = int(row.getLong(1))
            if row.isNullAt(0):
                found.null_rows += rows
                continue
            window, latest = int(row.getLong(0)), int(row.getLong(2))
            found.max_event = latest if found.max_event is None else max(found.max_event, latest)
            if watermark is not None and window + self.config.size_micros <= watermark:
                found.late_rows += rows
                continue
            provider = jvm.com.amazon.deequ.analyzers.InMemoryStateProvider()
            states = row.getStruct(3)
            for analyzer, offset in zip(shared, offsets, strict=True):
                state = analyzer.fromAggregationResult(states, offset)
                if state.isDefined():
                    provider.persist(analyzer, state.get())
            found.rows[window], found.states[window] = rows, provider
        others = [a for a in gate.analyzers if a not in shared]
        for window, provider in found.states.items():
            rows_of = scan.where(start == F.lit(window))
            _persist_scanned(self.spark, others, rows_of, gate.suite, provider)
        return found

    def _merge(
        self, gate: Gate, before: _Index, slices: _BatchSlices, staging: str, closing: set[int]
    ) -> dict[int, Any]:
        """Each touched window's metrics from its states merged with its earlier ones.

        The merged states are saved into `staging`, but for the windows `closing` now.
        """
        contexts = {}
        for window, provider in slices.states.items():
            earlier = before.open.get(window)
            loaders = [provider]
            if earlier is not None:
                loaders.insert(0, self._provider(self._path(earlier.folder, window)))
            save_to = None if window in closing else self._provider(f"{staging}/w{window}")
            contexts[window] = metrics_of_states(
                self.spark, gate.deequ_schema, gate.analyzers, loaders, save_to
            )
        return contexts

    def _judge(
        self, gate: Gate, start: int, context: Any, folder: int
    ) -> tuple[VerificationOutcome, Any]:
        """The suite judged once on a closing window's merged metrics (and those metrics)."""
        if context is None:  # no rows in this batch: its states are in an earlier folder
            loaders = [self._provider(self._path(folder, start))]
            context = metrics_of_states(self.spark, gate.deequ_schema, gate.analyzers, loaders)
        outcome = read_results(
            gate.suite, gate.compiled_checks, lambda c: c._Check.evaluate(context)
        )
        return outcome, context

    def _commit(
        self, staging: str, after: _Index, batch_id: int, before_id: int | None, before: _Index
    ) -> None:
        """windows.json beside the staged states, renamed into place; unreferenced removed.

        Kept: the folders of this batch and the one before (a replay of this batch reads the
        latter), and the states either refers to.
        """
        self.storage.write_text(f"{staging}/{_INDEX_FILE}", after.to_json())
        final = f"{self.folder}/{batch_id}"
        self.storage.delete(final)
        self.storage.rename(staging, final)
        keep = {(w.folder, s) for s, w in [*after.open.items(), *before.open.items()]}
        folders = {batch_id, before_id} | {f for f, _ in keep}
        for name in self.storage.children(self.folder):
            if name.startswith("_staging-"):
                self.storage.delete(f"{self.folder}/{name}")
            if not name.isdigit() or int(name) > batch_id:
                continue
            if int(name) not in folders:
                self.storage.delete(f"{self.folder}/{name}")
                continue
            for child in self.storage.children(f"{self.folder}/{name}"):
                start = _window_of_folder(child)
                if start is not None and (int(name), start) not in keep:
                    self.storage.delete(f"{self.folder}/{name}/{child}")

    def _save(
        self,
        closed: list[ClosedWindow],
        contexts: dict[int, Any],
        replay: bool,
        tags: dict[str, str],
    ) -> None:
        """Each closed window's metrics to the repository (once, also across a replay)."""
        if self.repository is None or not closed:
            return
        query = tags.get("query_id", "")
        saved = saved_event_windows(self.repository, query) if replay else set()
        for window in closed:
            if iso(window.start) in saved:
                continue
            labels = {
                **tags,
                "window": WINDOW_TAG,
                "window_start": iso(window.start),
                "window_end": iso(window.end),
            }
            repository = metrics_repository(self.spark, self.repository).repository
            key = result_key(self.spark, labels)
            repository.save(key.resultKey, contexts[window.start])

    def _summary(
        self, after: _Index, slices: _BatchSlices, watermark: int | None
    ) -> dict[str, Any]:
        size = self.config.size_micros
        return {
            "column": self.config.column,
            "size_seconds": self.config.size.total_seconds(),
            "watermark_delay_seconds": self.config.watermark.total_seconds(),
            "watermark": None if watermark is None else iso(watermark),
            "latest_event": None if after.max_event is None else iso(after.max_event),
            "open": [
                {"window_start": iso(s), "window_end": iso(s + size), "rows": w.rows}
                for s, w in sorted(after.open.items())
            ],
            "closed_count": after.closed_count,
            "closed": after.closed,
            "late_rows": after.late_rows,
            "null_rows": after.null_rows,
            "last_batch": {"late_rows": slices.late_rows, "null_rows": slices.null_rows},
        }

    def _path(self, folder: int, start: int) -> str:
        return f"{self.folder}/{folder}/w{start}"

    def _provider(self, folder: str) -> Any:
        jvm = jvm_of(self.spark)
        return jvm.com.amazon.deequ.analyzers.HdfsStateProvider(
            self.spark._jsparkSession, f"{folder}/s", 10, False
        )


def _window_of_folder(name: str) -> int | None:
    """The window start of a state folder `w<start>`, or None for any other name."""
    digits = name[1:].lstrip("-")
    return int(name[1:]) if name.startswith("w") and digits.isdigit() else None


def _advanced(before: _Index, slices: _BatchSlices, batch_id: int) -> _Index:
    """The index after a batch, before any window closes: rows, batches, counts, latest time."""
    opened = dict(before.open)
    for window, rows in slices.rows.items():
        earlier = opened.get(window, _Open(0, 0, batch_id))
        opened[window] = _Open(earlier.rows + rows, earlier.batches + 1, batch_id)
    times = [t for t in (before.max_event, slices.max_event) if t is not None]
    return replace(
        before,
        max_event=max(times) if times else None,
        open=opened,
        late_rows=before.late_rows + slices.late_rows,
        null_rows=before.null_rows + slices.null_rows,
    )


def _is_grouping(analyzer: Any) -> bool:
    try:
        analyzer.groupingColumns()
    except Py4JError:  # not a grouping analyzer: it has no such method
        return False
    return True


def _shareable(analyzers: list[Any]) -> tuple[list[Any], list[int], list[Column]]:
    """The analyzers whose states one aggregate computes, their offsets, its functions."""
    shared: list[Any] = []
    offsets: list[int] = []
    functions: list[Column] = []
    for analyzer in analyzers:
        if _is_grouping(analyzer) or analyzer.getClass().getSimpleName() in NOT_OBSERVABLE:
            continue
        try:
            found = [Column(jc) for jc in scala_items(analyzer.aggregationFunctions())]
        except Py4JError:  # not scan-shareable
            continue
        shared.append(analyzer)
        offsets.append(len(functions))
        functions += [f.alias(f"a{len(functions) + i}") for i, f in enumerate(found)]
    return shared, offsets, functions


def _persist_scanned(
    spark: SparkSession, analyzers: list[Any], rows: DataFrame, suite: Suite, provider: Any
) -> None:
    """States of grouping and standalone analyzers over `rows` into `provider`.

    A grouping's frequencies are computed once per columns and filter, whole (mergeable).
    """
    jvm = jvm_of(spark)
    none = jvm.scala.Option.empty()
    frequencies: dict[str, Any] = {}
    for analyzer in analyzers:
        if not _is_grouping(analyzer):
            view = deequ_frame(rows, suite.columns())
            analyzer.calculate(view._jdf, none, jvm.scala.Option.apply(provider), none)
            continue
        persist_frequencies(analyzer, rows, provider, frequencies)


def saved_event_windows(repository: Path, query_id: str) -> set[str]:
    """The `window_start`s of the query's closed windows whose metrics the history holds."""
    return {
        str(tags.get("window_start"))
        for tags in saved_tags(repository)
        if tags.get("query_id") == query_id and tags.get("window") == WINDOW_TAG
    }
