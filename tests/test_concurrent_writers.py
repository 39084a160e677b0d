"""Two runs writing the same outputs at the same time: one commits, the other stops with exit 5.

Each pair is two real `lakegate` processes. A small wrapper holds each process at its first
claim of an output until both have reached it, so the two claims really race (without it, one
JVM often starts so much later that the runs do not overlap at all); it changes no lakegate code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from model_fixtures import train, users_frame
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from checks.deequ_run import history_files
from lakegate_config.settings import Settings
from lakegate_errors import ExitCode
from spark_jobs.cli import main

pytestmark = pytest.mark.slow

SUITE = "checks/examples/users_raw.yaml"
TIMEOUT_SECONDS = 420
# Runs `lakegate ARGS` after meeting the other process at the first claim of an output.
TOGETHER = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from spark_jobs.services import table_io
barrier, me, parties = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
claim = table_io.StagedOutputs._claim
met = []
def claim_together(self, name):
    if not met:
        met.append(name)
        (barrier / me).touch()
        deadline = time.monotonic() + 300
        while len(list(barrier.iterdir())) < parties:
            if time.monotonic() > deadline:
                sys.exit("the other run never reached its first write")
            time.sleep(0.005)
    claim(self, name)
table_io.StagedOutputs._claim = claim_together
from spark_jobs.cli import main
sys.exit(main(sys.argv[4:]))
"""


def run_together(barrier: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start one process per command, each held at its first claim until all reached theirs."""
    barrier.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TOGETHER, str(barrier), str(i), str(len(commands)), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        for i, command in enumerate(commands)
    ]
    done = []
    deadline = time.monotonic() + TIMEOUT_SECONDS
    for process in processes:
        try:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def delta(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


def last_commit(spark: SparkSession, path: Path) -> tuple[int, str, str]:
    row = DeltaTable.forPath(spark, str(path)).history(1).collect()[0]
    return int(row["version"]), str(row["operation"]), str(row["userMetadata"])


def the_loser(
    runs: list[subprocess.CompletedProcess[str]], winning: set[int]
) -> subprocess.CompletedProcess[str]:
    """The run that exited 5, after checking that the other one committed (an exit in `winning`)."""
    codes = sorted(r.returncode for r in runs)
    assert codes[-1] == ExitCode.CONFLICT and codes[0] in winning, [
        (r.returncode, r.stderr[-2000:]) for r in runs
    ]
    return next(r for r in runs if r.returncode == ExitCode.CONFLICT)


def test_two_validate_runs_into_one_output_commit_one_run_and_the_other_exits_5(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    from spark_jobs.sample_data import synthetic_users

    table = tmp_path / "users.parquet"
    spark.createDataFrame(synthetic_users(3_000, seed=4)).repartition(2).write.parquet(str(table))
    output, reference = tmp_path / "out", tmp_path / "reference"
    arguments = ["validate", SUITE, "--input", str(table), "--quiet"]
    assert main([*arguments, "--output", str(output), "--no-history"]) == 1  # a previous version
    assert main([*arguments, "--output", str(reference), "--no-history"]) == 1  # one run alone
    runs_before = history_files(settings.metrics_repository_path)

    same = [*arguments, "--output", str(output)]
    runs = run_together(tmp_path / "barrier", same, same)

    loser = the_loser(runs, {ExitCode.OK, ExitCode.CHECKS_FAILED})
    report = json.loads((output / "report.json").read_text())
    run_id = report["run_id"]
    assert "is being written by another lakegate run" in loser.stderr
    assert f"run {run_id} " in loser.stderr  # it met the run that committed, and said so
    assert "Traceback" not in loser.stderr
    # valid, quarantine and report.json are the winner's, each one new Delta version (no
    # write, no restore by the loser), and hold what one run alone writes.
    for name in ("valid", "quarantine"):
        assert last_commit(spark, output / name) == (1, "WRITE", f"lakegate run {run_id}")
        assert report["outputs"]["table_versions"][name] == 1
        assertDataFrameEqual(delta(spark, output / name), delta(spark, reference / name))
    expected = json.loads((reference / "report.json").read_text())
    assert report["counts"] == expected["counts"]
    assert report["quarantine_reasons"] == expected["quarantine_reasons"]
    # The previous version is still there to read; the winner's metrics were saved, once.
    assertDataFrameEqual(
        spark.read.format("delta").option("versionAsOf", 0).load(str(output / "valid")),
        delta(spark, reference / "valid"),
    )
    new_runs = [p for p in history_files(settings.metrics_repository_path) if p not in runs_before]
    assert len(new_runs) == 1 and run_id in new_runs[0].read_text()
    assert sorted(p.name for p in output.iterdir()) == [
        "quarantine",
        "report.html",
        "report.json",
        "valid",
    ]


def test_two_predict_runs_into_one_output_commit_one_run_and_the_other_exits_5(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    train(settings, "concurrent_users")
    source = tmp_path / "users.parquet"
    spark.createDataFrame(users_frame(rows=300, seed=3)).write.parquet(str(source))
    output, reference = tmp_path / "scores", tmp_path / "reference"
    arguments = ["predict", "--model", "models:/concurrent_users@champion", "--input", str(source)]
    arguments += ["--key", "user_id"]
    assert main([*arguments, "--output", str(reference)]) == 0

    same = [*arguments, "--output", str(output)]
    runs = run_together(tmp_path / "barrier", same, same)

    loser = the_loser(runs, {ExitCode.OK})
    assert "is being written by another lakegate run" in loser.stderr
    assert "Traceback" not in loser.stderr
    version, operation, metadata = last_commit(spark, output)
    assert (version, operation) == (0, "WRITE")  # one version: the loser wrote nothing
    report = json.loads((output / "_lakegate_report.json").read_text())
    assert report["table_versions"] == {"scores": 0}
    assert metadata.startswith("lakegate run ") and metadata.split()[-1] in loser.stderr
    columns = ["user_id", "prediction"]
    assertDataFrameEqual(
        delta(spark, output).select(*columns), delta(spark, reference).select(*columns)
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "_"))) == []


def test_a_delta_commit_refused_for_another_writers_is_a_conflict_and_never_restored_over(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F

    from spark_jobs.services.table_io import OutputConflict, StagedOutputs

    table = tmp_path / "scores"
    spark.range(0, 10).write.format("delta").save(str(table))

    @F.udf("long")
    def slowly(value: int) -> int:  # keeps lakegate's write open while the other one commits
        time.sleep(25)
        return value

    outputs = StagedOutputs(spark, str(tmp_path), "lakegate")
    theirs = spark.range(100, 105)

    def other_writer() -> None:  # not lakegate: no claim, only Delta's own check
        while not list(tmp_path.glob("_journal-lakegate.json")):
            time.sleep(0.05)
        theirs.write.format("delta").mode("overwrite").save(str(table))

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(other_writer)
        with pytest.raises(OutputConflict, match="another writer committed to output"):
            outputs.write_table("scores", spark.range(0, 2, 1, 2).select(slowly("id").alias("id")))
        other.result()
    outputs.abort()

    assertDataFrameEqual(delta(spark, table), theirs)
    history = DeltaTable.forPath(spark, str(table)).history().orderBy("version").collect()
    assert [r["operation"] for r in history] == ["WRITE", "WRITE"]  # no RESTORE over theirs
    assert not list(tmp_path.glob("_journal-*")) and not (tmp_path / ".lakegate-writers").exists()
