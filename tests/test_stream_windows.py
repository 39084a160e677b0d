"""Tumbling event-time windows of `lakegate stream validate` (`stream: {window: ...}`).

The module is driven directly, each micro-batch a small DataFrame through the gate and
`EventWindows.after_batch`, as the stream's batch function calls it; a closed window's metrics
are compared with a plain `VerificationSuite` over exactly that window's rows.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType, TimestampType
from pyspark.testing import assertDataFrameEqual
from stream_helpers import delta, land_frame, report, stream

from checks.deequ_run import load_history, verify
from checks.gate import apply_suite
from checks.suite import SuiteError
from checks.suite_formats import load_suite
from lakegate_config.settings import Settings
from spark_jobs.services.stream_state import key_expiry
from spark_jobs.services.stream_windows import EventWindows, WindowOutcome, window_config

SUITE = """\
suite: windowed
stream:
  window: {column: event_time, size: 1 hour, watermark: 10 minutes}
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
      - isUnique: id
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasMean: {column: amount, max: 100}
      - hasMax: {column: amount, max: 100}
      - hasApproxQuantile: {column: amount, quantile: 0.5, max: 100}
      - hasKurtosis: {column: amount, max: 100}
"""
SCHEMA = StructType(
    [
        StructField("id", LongType()),
        StructField("amount", LongType()),
        StructField("event_time", TimestampType()),
    ]
)
Rows = list[tuple[int | None, int | None, datetime | None]]


def at(hour: int, minute: int) -> datetime:
    """A time on 1 Jan 2026, UTC."""
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC)


# Window 00:00-01:00 gets rows in batches 0 and 1 (id 2 twice: its uniqueness fails); batch 1's
# latest time leaves the watermark at 00:55; batch 2's 01:10 moves it to 01:00, closing it;
# batch 3's 00:30 row is late. A row without an event time is in no window.
BATCHES: list[Rows] = [
    [(1, 10, at(0, 5)), (2, 20, at(0, 20)), (3, 30, at(1, 5))],
    [(4, 40, at(0, 50)), (2, 25, at(0, 59)), (5, 50, None)],
    [(6, 60, at(1, 10))],
    [(7, 70, at(0, 30))],
]


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "windowed.yaml"
    path.write_text(SUITE)
    return path


def test_a_window_section_is_read_into_its_config_and_allowed_beside_key_state(
    suite_file: Path,
) -> None:
    config = window_config(suite_file)
    assert config is not None
    assert (config.column, config.size_micros) == ("event_time", 3_600_000_000)
    assert config.watermark_of(1_000_000_000) == 1_000_000_000 - 600_000_000
    assert config.where == f"{suite_file}:3"
    assert not key_expiry(suite_file).bounded


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{column: event_time, size: soon}", "stream.window.size: Value error, 'soon' is no"),
        ("{column: event_time, size: 0s}", "size must be longer than 0s"),
        ("{column: event_time, size: 1h, every: 2h}", "stream.window.every: Extra inputs"),
        ("{size: 1 hour}", "stream.window.column: Field required"),
    ],
)
def test_a_bad_window_section_is_refused_naming_the_file_line_and_field(
    tmp_path: Path, section: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SUITE.replace(SUITE.splitlines()[2], f"  window: {section}"))
    with pytest.raises(SuiteError) as refused:
        window_config(path)
    assert f"{path}:3: " in str(refused.value) and expected in str(refused.value)


def test_a_window_column_that_is_missing_or_no_time_is_refused(suite_file: Path) -> None:
    config = window_config(suite_file)
    assert config is not None
    suite = load_suite(suite_file)
    refused = r"windowed.yaml:3: stream.window.column 'event_time' is bigint; event-time windows"
    with pytest.raises(SuiteError, match=refused):
        config.check(StructType([StructField("event_time", LongType())]), suite)
    with pytest.raises(SuiteError, match="'event_time' is not a column of the stream"):
        config.check(StructType([StructField("id", LongType())]), suite)
    config.check(SCHEMA, suite)


def run_batch(
    spark: SparkSession,
    windows: EventWindows,
    suite_file: Path,
    batch_id: int,
    *,
    replay: bool = False,
) -> WindowOutcome:
    """Batch `batch_id` of BATCHES through the gate and the windows."""
    frame = spark.createDataFrame(BATCHES[batch_id], SCHEMA)
    gate = apply_suite(spark, frame, load_suite(suite_file))
    try:
        tags = {"suite": "windowed", "batch_id": str(batch_id), "query_id": "q1"}
        return windows.after_batch(gate, frame, batch_id, replay, tags)
    finally:
        gate.release()


def metrics(history: DataFrame) -> DataFrame:
    return history.select("entity", "instance", "name", "value")


@pytest.mark.slow
def test_a_window_is_judged_once_when_the_watermark_passes_its_end_on_all_its_rows(
    spark: SparkSession, suite_file: Path, tmp_path: Path
) -> None:
    config = window_config(suite_file)
    assert config is not None
    repository = tmp_path / "metrics" / "metrics.json"
    windows = EventWindows(spark, config, str(tmp_path / "checkpoint" / "_lakegate"), repository)
    folder = tmp_path / "checkpoint" / "_lakegate" / "windows"

    first = run_batch(spark, windows, suite_file, 0)
    second = run_batch(spark, windows, suite_file, 1)
    assert first.closed == [] and second.closed == [] and not second.failed
    assert second.summary["watermark"] == "2026-01-01T00:55:00+00:00"
    assert [(w["window_start"][11:16], w["rows"]) for w in second.summary["open"]] == [
        ("00:00", 4), ("01:00", 1)
    ]  # fmt: skip
    assert second.summary["null_rows"] == 1

    third = run_batch(spark, windows, suite_file, 2)  # the watermark reaches 01:00
    (closed,) = third.closed
    assert (closed.rows, closed.batches, closed.closed_in_batch) == (4, 2, 2)
    assert third.failed  # isUnique(id): id 2 came in batches 0 and 1
    assert [w["window_start"][11:16] for w in third.summary["open"]] == ["01:00"]
    replayed = run_batch(spark, windows, suite_file, 2, replay=True)
    assert [w.as_dict() for w in replayed.closed] == [closed.as_dict()]
    assert replayed.summary == third.summary  # nothing of batch 2 counted twice

    late = run_batch(spark, windows, suite_file, 3)
    assert late.closed == [] and late.summary["late_rows"] == 1
    assert late.summary["last_batch"] == {"late_rows": 1, "null_rows": 0}
    assert late.summary["closed_count"] == 1 and late.summary["open"] == third.summary["open"]
    # The closed window's states are gone; the open one's and the last two indexes remain.
    kept = sorted(str(p.relative_to(folder)) for p in folder.glob("*/*") if p.is_dir())
    assert kept == [f"2/w{1_767_229_200_000_000}"]

    # Saved once (also across the replay), with Deequ's metrics over exactly the window's rows.
    history = load_history(spark, repository, "windowed").where(F.col("window") == "event")
    tags = history.select("window_start", "window_end", "batch_id").distinct().collect()
    assert [tuple(r) for r in tags] == [
        ("2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00", "2")
    ]
    window_rows = spark.createDataFrame(BATCHES[0][:2] + BATCHES[1][:2], SCHEMA)
    plain_repository = tmp_path / "plain" / "metrics.json"
    plain = verify(spark, window_rows, load_suite(suite_file), repository=plain_repository)
    judged, wanted = closed.outcome.results, plain.results
    assert [(c.constraint, c.status) for c in judged] == [(c.constraint, c.status) for c in wanted]
    assert [c.metric for c in judged] == pytest.approx([c.metric for c in wanted])
    assertDataFrameEqual(
        metrics(history), metrics(load_history(spark, plain_repository)), checkRowOrder=False
    )


EVENT_SUITE = """\
suite: windowed_events
stream:
  window: {column: event_time, size: 1 hour, watermark: 10 minutes}
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
      - hasMean: {column: amount, max: 50}
"""


def land_events(folder: Path, index: int, rows: list[tuple[int, int, str]]) -> None:
    """One parquet file of (id, amount, event_time) rows (UTC), ordered after the others."""
    frame = pd.DataFrame(rows, columns=["id", "amount", "event_time"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    land_frame(folder, index, frame)


@pytest.mark.slow
def test_a_window_failing_an_error_check_fails_the_stream_and_a_late_row_is_split_not_counted(
    spark: SparkSession, tmp_path: Path, settings: Settings
) -> None:
    suite = tmp_path / "events.yaml"
    suite.write_text(EVENT_SUITE)
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    # Each batch's mean and the running mean stay <= 50; window 00:00-01:00's is 100. Batch 1's
    # 01:12 moves the watermark to 01:02 and closes that window; batch 2's 00:30 row is late.
    land_events(source, 0, [(1, 100, "2026-01-01 00:05"), (2, 0, "2026-01-01 01:05")])
    land_events(source, 1, [(3, 0, "2026-01-01 01:12")])
    land_events(source, 2, [(4, 10, "2026-01-01 00:30")])
    started = time.time() * 1000
    assert stream(suite, f"parquet:{source}", output, checkpoint, "--on-failure", "stop") == 1
    first = report(output)
    assert first["batches"]["last_batch_id"] == 1 and first["status"] == "success"
    (closed,) = first["windows"]["closed"]
    assert (closed["window_start"], closed["rows"], closed["status"]) == (
        "2026-01-01T00:00:00+00:00", 1, "failure"
    )  # fmt: skip
    assert stream(suite, f"parquet:{source}", output, checkpoint) == 0  # the late batch passes
    windows = report(output)["windows"]
    assert (windows["late_rows"], windows["closed_count"]) == (1, 1)
    assert [(w["window_start"][11:16], w["rows"]) for w in windows["open"]] == [("01:00", 2)]
    valid = delta(spark, output / "valid").select("id")
    assertDataFrameEqual(valid, [Row(id=1), Row(id=2), Row(id=3), Row(id=4)])
    history = load_history(spark, settings.metrics_repository_path, "windowed_events")
    judged = history.where((F.col("window") == "event") & (F.col("dataset_date") >= started))
    assert [tuple(r) for r in judged.select("window_start", "batch_id").distinct().collect()] == [
        ("2026-01-01T00:00:00+00:00", "1")
    ]
    assert judged.where(F.col("name") == "Mean").select("value").collect() == [Row(value=100.0)]


def test_a_bad_window_section_stops_stream_validate_with_exit_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(EVENT_SUITE.replace("size: 1 hour", "size: 1 fortnight"))
    capsys.readouterr()
    code = stream(suite, f"parquet:{tmp_path / 'landing'}", tmp_path / "o", tmp_path / "c")
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3: stream.window.size" in err and "'1 fortnight' is no duration" in err


def test_a_window_column_of_no_time_type_stops_stream_validate_with_exit_2(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "amount.yaml"
    suite.write_text(EVENT_SUITE.replace("column: event_time", "column: amount"))
    land_events(tmp_path / "landing", 0, [(1, 1, "2026-01-01 00:05")])
    capsys.readouterr()
    code = stream(suite, f"parquet:{tmp_path / 'landing'}", tmp_path / "o", tmp_path / "c")
    assert code == 2
    assert "amount.yaml:3: stream.window.column 'amount' is bigint" in capsys.readouterr().err
