"""`lakegate stream validate`: micro-batches split as batch mode splits, exactly once, totals.

The stream runs in-process through `spark_jobs.cli.main` on the session fixture, over small
parquet files landing in a folder (one file per batch with `maxFilesPerTrigger=1`) or a Delta
table; restarts reuse the checkpoint as a real restart would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from stream_helpers import ORDERS_SUITE, delta, land, land_frame, report, stream

from checks.deequ_run import history_files, verify
from checks.suite_formats import load_suite
from lakegate_config.settings import Settings
from spark_jobs.cli import main

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

SUITE = (
    ORDERS_SUITE
    + """\
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasMean: {column: amount, max: 100}
      - hasCompleteness: {column: amount, min: 0.5}
"""
)

# One file per batch: a negative amount, a null id, a key twice in one batch; then, after a
# restart, id 3 again, two batches after its first row.
BATCHES = [
    [(1, 10.0), (2, -5.0), (3, 20.0)],
    [(4, 30.0), (None, 5.0), (5, None), (5, 7.0)],
]
LATE_DUPLICATE = [(6, 4.0), (3, 6.0)]


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.yaml"
    path.write_text(SUITE)
    return path


@dataclass
class TwoRuns:
    """A stream over two batches, then a restart that gets one more file."""

    suite: Path
    source: Path
    output: Path
    first_valid: list[Row]
    first_quarantine: list[Row]
    first_report: dict
    codes: tuple[int, int]


@pytest.fixture(scope="module")
def two_runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    root = tmp_path_factory.mktemp("stream")
    suite = root / "orders.yaml"
    suite.write_text(SUITE)
    source, output, checkpoint = root / "landing", root / "out", root / "checkpoint"
    for i, rows in enumerate(BATCHES):
        land(source, i, rows)
    first = stream(suite, f"parquet:{source}", output, checkpoint)
    valid = delta(spark, output / "valid").collect()
    quarantine = delta(spark, output / "quarantine").collect()
    first_report = report(output)
    land(source, len(BATCHES), LATE_DUPLICATE)
    second = stream(suite, f"parquet:{source}", output, checkpoint)
    yield TwoRuns(suite, source, output, valid, quarantine, first_report, (first, second))


def test_each_batch_is_split_as_batch_mode_splits_the_same_rows(
    spark: SparkSession, two_runs: TwoRuns, tmp_path: Path
) -> None:
    table = tmp_path / "table"
    for i, rows in enumerate(BATCHES):
        land(table, i, rows)
    batch_out = tmp_path / "batch"
    code = main(
        ["validate", str(two_runs.suite), "--input", str(table), "--output", str(batch_out),
         "--quiet", "--no-html-report", "--no-history"]
    )  # fmt: skip
    assert code == 1  # rows were quarantined by error-level rules, in both modes
    assert two_runs.codes[0] == 1
    assertDataFrameEqual(two_runs.first_valid, delta(spark, batch_out / "valid"))
    assertDataFrameEqual(two_runs.first_quarantine, delta(spark, batch_out / "quarantine"))
    first = two_runs.first_report
    assert first["batches"] == {"count": 2, "last_batch_id": 1}
    assert first["counts"] == {"rows_in": 7, "rows_valid": 3, "rows_quarantined": 4}
    assert first["last_batch"]["counts"] == {"rows_in": 4, "rows_valid": 1, "rows_quarantined": 3}


def test_a_key_committed_in_an_earlier_batch_is_quarantined_naming_that_batch(
    spark: SparkSession, two_runs: TwoRuns
) -> None:
    assert two_runs.codes == (1, 1)
    quarantine = delta(spark, two_runs.output / "quarantine").where("id = 3")
    rows = quarantine.select("id", "amount", F.col("_lakegate_errors.message").alias("m"))
    expected = Row(id=3, amount=6.0, m=["duplicate of a key first committed in batch 0"])
    assertDataFrameEqual(rows, [expected])
    valid_ids = [r.id for r in delta(spark, two_runs.output / "valid").orderBy("id").collect()]
    assert valid_ids == [1, 3, 4, 6]
    final = report(two_runs.output)
    assert final["batches"] == {"count": 3, "last_batch_id": 2}
    assert final["last_batch"]["quarantine_reasons"] == {"isUnique(id)": 1}
    assert final["quarantine_reasons"]["isUnique(id)"] == 3
    assert final["key_state"] == {"isUnique(id)": 6}  # ids 1 to 6; a null id is no key


def test_running_metrics_equal_a_plain_verification_of_every_row(
    spark: SparkSession, two_runs: TwoRuns
) -> None:
    every = spark.read.parquet(str(two_runs.source))
    plain = verify(spark, every, load_suite(two_runs.suite))
    total = report(two_runs.output)["constraints"]
    assert [(c["constraint"], c["status"], c["metric"]) for c in total] == [
        (r.constraint, r.status, r.metric) for r in plain.results
    ]
    assert report(two_runs.output)["counts"]["rows_in"] == every.count()


def test_a_batch_replayed_after_a_crash_adds_no_row_twice(
    spark: SparkSession, settings: Settings, suite_file: Path, tmp_path: Path
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, BATCHES[0])
    assert stream(suite_file, f"parquet:{source}", output, checkpoint) == 1
    versions = len(list((output / "valid" / "_delta_log").glob("*.json")))
    # The crash: the Delta appends committed, Spark's checkpoint did not record the batch.
    for name in ("0", ".0.crc"):  # a crash leaves neither the commit nor its checksum
        (checkpoint / "commits" / name).unlink()
    shutil.rmtree(checkpoint / "_lakegate" / "state" / "0")
    land(source, 1, BATCHES[1])
    assert stream(suite_file, f"parquet:{source}", output, checkpoint) == 1
    assert len(list((output / "valid" / "_delta_log").glob("*.json"))) == versions + 1
    every = spark.read.parquet(str(source))
    written = delta(spark, output / "valid").unionByName(
        delta(spark, output / "quarantine").drop("_lakegate_errors")
    )
    assertDataFrameEqual(written, every)
    final = report(output)
    assert final["batches"] == {"count": 2, "last_batch_id": 1}
    assert final["counts"] == {"rows_in": 7, "rows_valid": 3, "rows_quarantined": 4}
    # The replayed batch 0 saved no metrics-history entry twice: one per window and batch.
    assert history_entries(settings, final["query_id"]) == [
        ("0", "batch"), ("0", "total"), ("1", "batch"), ("1", "total")
    ]  # fmt: skip


def history_entries(settings: Settings, query_id: str) -> list[tuple[str, str]]:
    """(batch_id, window) of every metrics-history entry the query saved, sorted."""
    found = []
    for path in history_files(settings.metrics_repository_path):
        for entry in json.loads(path.read_text() or "[]"):
            tags = entry["resultKey"]["tags"]
            if tags.get("query_id") == query_id:
                found.append((tags["batch_id"], tags["window"]))
    return sorted(found)


def test_a_new_column_in_a_landed_file_stops_the_stream_with_exit_2_and_commits_nothing(
    spark: SparkSession,
    suite_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, BATCHES[0])
    assert stream(suite_file, f"parquet:{source}", output, checkpoint) == 1
    drifted = pd.DataFrame({"id": [9], "amount": [1.0], "note": ["new"]})
    drifted.to_parquet(source / "part-009.parquet", index=False)
    capsys.readouterr()
    assert stream(suite_file, f"parquet:{source}", output, checkpoint) == 2
    err = capsys.readouterr().err
    assert "new column 'note'" in err and "part-009.parquet" in err
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]
    assertDataFrameEqual(delta(spark, output / "valid").select("id"), [Row(id=1), Row(id=3)])
    assert report(output)["batches"]["count"] == 1


def test_a_delta_source_is_gated_batch_by_batch(
    spark: SparkSession, suite_file: Path, tmp_path: Path
) -> None:
    table, output, checkpoint = tmp_path / "source", tmp_path / "out", tmp_path / "checkpoint"
    schema = "id bigint, amount double"
    # One file per commit: with maxFilesPerTrigger=1, one batch per commit.
    spark.createDataFrame(BATCHES[0], schema).coalesce(1).write.format("delta").save(str(table))
    assert stream(suite_file, f"delta:{table}", output, checkpoint) == 1
    later = spark.createDataFrame([(6, 1.0), (7, 2.0), (7, 3.0)], schema)
    later.coalesce(1).write.format("delta").mode("append").save(str(table))
    assert stream(suite_file, f"delta:{table}", output, checkpoint) == 1
    assertDataFrameEqual(
        delta(spark, output / "valid"),
        spark.createDataFrame([(1, 10.0), (3, 20.0), (6, 1.0)], schema),
    )
    quarantined = delta(spark, output / "quarantine").select("id", "amount")
    assertDataFrameEqual(
        quarantined, spark.createDataFrame([(2, -5.0), (7, 2.0), (7, 3.0)], schema)
    )
    assert report(output)["batches"] == {"count": 2, "last_batch_id": 1}


def test_on_failure_stop_commits_the_failing_batch_then_ends_with_exit_1(
    spark: SparkSession, suite_file: Path, tmp_path: Path
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    for i, rows in enumerate(BATCHES):
        land(source, i, rows)
    code = stream(suite_file, f"parquet:{source}", output, checkpoint, "--on-failure", "stop")
    assert code == 1
    assert report(output)["batches"] == {"count": 1, "last_batch_id": 0}
    assertDataFrameEqual(delta(spark, output / "valid").select("id"), [Row(id=1), Row(id=3)])
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]


def test_sigterm_stops_a_running_stream_after_the_batch_in_flight(
    spark: SparkSession, suite_file: Path, tmp_path: Path
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, BATCHES[0])

    def terminate_after_first_report() -> None:
        deadline = time.monotonic() + 400
        while not (output / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_report, daemon=True)
    killer.start()
    code = stream(suite_file, f"parquet:{source}", output, checkpoint, "--trigger", "1s")
    killer.join()
    assert code == 1  # batch 0 quarantined rows by an error-level rule
    assert report(output)["batches"] == {"count": 1, "last_batch_id": 0}
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]


EVENT_SUITE = """\
suite: events
stream:
  key_state:
    watermark: {column: ts, delay: 1 hour}
checks:
  - name: rows
    level: error
    constraints:
      - isUnique: id
"""


def land_events(folder: Path, index: int, rows: list[tuple[int, str]]) -> None:
    """One parquet file of (id, ts) rows, ordered after the others."""
    frame = pd.DataFrame(rows, columns=["id", "ts"]).astype({"id": "int64"})
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    land_frame(folder, index, frame)


def test_a_key_older_than_the_watermark_is_forgotten_and_the_key_state_shrinks(
    spark: SparkSession, tmp_path: Path
) -> None:
    suite = tmp_path / "events.yaml"
    suite.write_text(EVENT_SUITE)
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land_events(source, 0, [(1, "2026-01-01 10:00"), (2, "2026-01-01 10:00")])
    land_events(source, 1, [(3, "2026-01-01 12:00")])
    # The watermark is now 11:00: keys 1 and 2 (last seen 10:00) are forgotten, 3 is not.
    land_events(source, 2, [(1, "2026-01-01 12:30"), (3, "2026-01-01 12:40")])
    assert stream(suite, f"parquet:{source}", output, checkpoint) == 1
    valid = delta(spark, output / "valid").select("id", F.hour("ts").alias("h"))
    assertDataFrameEqual(
        valid, [Row(id=1, h=10), Row(id=2, h=10), Row(id=3, h=12), Row(id=1, h=12)]
    )
    quarantine = delta(spark, output / "quarantine").select(
        "id", F.col("_lakegate_errors.message").alias("m")
    )
    assertDataFrameEqual(
        quarantine, [Row(id=3, m=["duplicate of a key first committed in batch 1"])]
    )
    final = report(output)
    assert final["key_state"] == {"isUnique(id)": 2}  # 3 (kept) and 1 (seen again)
    (keys,) = (checkpoint / "_lakegate" / "keys").iterdir()
    held = delta(spark, keys).select(F.col("_lakegate_k0").alias("id"), "_lakegate_batch")
    assertDataFrameEqual(held, [Row(id=3, _lakegate_batch=1), Row(id=1, _lakegate_batch=2),
                                Row(id=3, _lakegate_batch=2)])  # fmt: skip


def test_a_key_not_seen_for_longer_than_the_ttl_is_forgotten(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "ttl.yaml"
    suite.write_text(SUITE.replace("checks:", "stream: {key_state: {ttl: 1s}}\nchecks:", 1))
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, [(1, 1.0), (2, 2.0)])
    land(source, 1, [(2, 3.0)])  # a batch takes more than a second: key 1 expires after it
    land(source, 2, [(1, 4.0), (7, 5.0)])
    capsys.readouterr()
    code = main(
        ["stream", "validate", str(suite), "--source", f"parquet:{source}", "--output",
         str(output), "--checkpoint", str(checkpoint), "--option", "maxFilesPerTrigger=1"]
    )  # fmt: skip
    assert code == 1
    quarantine = delta(spark, output / "quarantine").select("id", "amount")
    assertDataFrameEqual(quarantine, [Row(id=2, amount=3.0)])
    assert report(output)["key_state"] == {"isUnique(id)": 3}  # 2 (batch 1), 1 (new again), 7
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("batch")]
    assert [line.split("; ")[2] for line in progress] == [
        "2 keys held", "2 keys held", "3 keys held"
    ]  # fmt: skip


def test_a_stream_section_with_a_bad_duration_is_refused_with_exit_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(SUITE.replace("checks:", "stream: {key_state: {ttl: soon}}\nchecks:", 1))
    land(tmp_path / "landing", 0, BATCHES[0])
    capsys.readouterr()
    code = stream(suite, f"parquet:{tmp_path / 'landing'}", tmp_path / "o", tmp_path / "c")
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.yaml:2" in err and "'soon' is no duration" in err


def test_a_delta_source_whose_table_gains_a_column_mid_stream_stops_with_exit_2(
    spark: SparkSession, suite_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, output, checkpoint = tmp_path / "source", tmp_path / "out", tmp_path / "checkpoint"
    first = spark.createDataFrame(BATCHES[0], "id bigint, amount double").coalesce(1)
    first.write.format("delta").save(str(table))

    def add_a_column_after_the_first_batch() -> None:
        deadline = time.monotonic() + 400
        while not (output / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        drifted = spark.createDataFrame([(8, 1.0, "new")], "id bigint, amount double, note string")
        drifted.write.format("delta").mode("append").option("mergeSchema", "true").save(str(table))
        if not ended.wait(300):  # the stream should have stopped by itself long before
            os.kill(os.getpid(), signal.SIGTERM)

    ended = threading.Event()
    appender = threading.Thread(target=add_a_column_after_the_first_batch, daemon=True)
    appender.start()
    capsys.readouterr()
    try:
        code = stream(suite_file, f"delta:{table}", output, checkpoint, "--trigger", "1s")
    finally:
        ended.set()
        appender.join()
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "new column 'note'" in err
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]
    assertDataFrameEqual(delta(spark, output / "valid").select("id"), [Row(id=1), Row(id=3)])


def test_a_batch_after_an_empty_batch_merges_into_exact_running_metrics(
    spark: SparkSession, tmp_path: Path, suite_file: Path
) -> None:
    """An empty batch saves no state for metrics that saw no value (its mean); the next merges."""
    source, output = tmp_path / "landing", tmp_path / "out"
    land(source, 0, [])
    land(source, 1, [(1, 10.0), (2, -5.0), (1, 3.0)])
    code = stream(suite_file, f"parquet:{source}", output, tmp_path / "checkpoint")
    assert code == 1  # hasSize {min: 1} fails on the empty batch's window
    found = report(output)
    assert found["batches"] == {"count": 2, "last_batch_id": 1}
    assert found["counts"] == {"rows_in": 3, "rows_valid": 0, "rows_quarantined": 3}
    every = spark.read.parquet(str(source))
    plain = verify(spark, every, load_suite(suite_file))
    assert [(c["constraint"], c["status"], c["metric"]) for c in found["constraints"]] == [
        (r.constraint, r.status, r.metric) for r in plain.results
    ]
