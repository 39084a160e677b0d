"""The driver of `lakegate stream validate` killed with SIGKILL during a batch, then restarted.

The stream runs as a subprocess (its own driver JVM) over four parquet files, one batch each
(`maxFilesPerTrigger=1`). Once batch 1's valid rows are committed in their Delta log (batch 0
already done), the process group (the Python driver and its JVM) gets SIGKILL: batch 1 is in
flight, its quarantine, keys and totals possibly half written, Spark's commit log without it.
The restart on the same checkpoint (in-process) must then leave every source row exactly once
in valid + quarantine, and running metrics equal to a plain Deequ VerificationSuite over them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from stream_helpers import ORDERS_SUITE, land

from checks.deequ_run import verify
from checks.suite_formats import load_suite
from spark_jobs.cli import main

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SUITE = (
    ORDERS_SUITE
    + """\
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasMean: {column: amount, max: 100}
      - hasUniqueness: {columns: [id], min: 0.5}
      - hasDistinctness: {columns: [id], min: 0.5}
"""
)

# Keys repeat within and across batches, around the batch that is killed (batch 1).
FILES = [
    [(1, 10.0), (2, -5.0), (3, 20.0)],
    [(4, 30.0), (None, 5.0), (5, 1.0), (5, 7.0), (1, 2.0)],
    [(4, 8.0), (6, 4.0), (7, 3.0)],
    [(8, 1.0), (5, 9.0), (9, 2.0)],
]


def committed_txn(log: Path, version: int) -> bool:
    """Whether the Delta log at `log` has a commit carrying txnVersion `version` (a batch id)."""
    for entry in log.glob("*.json"):
        try:
            lines = entry.read_text().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            action = json.loads(line) if line.strip() else {}
            if action.get("txn", {}).get("version") == version:
                return True
    return False


def kill_during_batch_1(arguments: list[str], output: Path, checkpoint: Path) -> None:
    """Run the stream as a subprocess; SIGKILL it once batch 1's valid rows are committed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.cli", *arguments],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the driver JVM dies with it
    )
    log = output / "valid" / "_delta_log"
    deadline = time.monotonic() + 600
    try:
        while not committed_txn(log, 1):
            assert process.poll() is None, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "batch 1 never committed its valid rows"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert (checkpoint / "commits" / "0").exists()
    assert not (checkpoint / "commits" / "1").exists(), "batch 1 finished before the kill"


@pytest.mark.slow
def test_a_driver_killed_during_a_batch_then_restarted_commits_every_row_exactly_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    suite = tmp_path / "orders.yaml"
    suite.write_text(SUITE)
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    for i, rows in enumerate(FILES):
        land(source, i, rows)
    arguments = [
        "stream", "validate", str(suite), "--source", f"parquet:{source}", "--output",
        str(output), "--checkpoint", str(checkpoint), "--option", "maxFilesPerTrigger=1",
        "--quiet",
    ]  # fmt: skip
    kill_during_batch_1(arguments, output, checkpoint)

    assert main(arguments) == 1  # the restart; rows were quarantined by error-level rules

    every = spark.read.parquet(str(source))
    valid = spark.read.format("delta").load(str(output / "valid"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(valid.unionByName(quarantine.drop("_lakegate_errors")), every)
    repeats = quarantine.where(F.array_contains("_lakegate_errors.constraint", "isUnique(id)"))
    assertDataFrameEqual(
        repeats.select("id", "amount"),
        spark.createDataFrame(
            [(5, 1.0), (5, 7.0), (1, 2.0), (4, 8.0), (5, 9.0)], "id bigint, amount double"
        ),
    )
    report = json.loads((output / "report.json").read_text())
    plain = verify(spark, every, load_suite(suite))
    assert [(c["constraint"], c["status"], c["metric"]) for c in report["constraints"]] == [
        (r.constraint, r.status, r.metric) for r in plain.results
    ]
    assert report["counts"]["rows_in"] == every.count() == 14
    assert report["batches"] == {"count": 4, "last_batch_id": 3}
