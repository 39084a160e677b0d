"""Two runs writing the same outputs at the same time: one commits, the other stops with exit 5.

Each pair is two real OS processes: `lakegate` in a subprocess and `lakegate` run in-process
on the test's session (`spark_jobs.cli.main`). `claim_barrier` holds each at its first claim of
an output until both have reached it, so the two claims really race (without it, the JVM of the
subprocess often starts so much later that the runs do not overlap at all); it changes no
lakegate code. The subprocess is started first, so its JVM starts while the test prepares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import claim_barrier
import pytest
from delta.tables import DeltaTable
from model_fixtures import train, users_frame
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from checks.deequ_run import history_files
from lakegate_config.settings import Settings
from lakegate_errors import ExitCode
from spark_jobs.cli import main
from spark_jobs.services.table_io import StagedOutputs

pytestmark = pytest.mark.slow

SUITE = "checks/examples/users_raw.yaml"
TIMEOUT_SECONDS = 420
PARTIES = 2


def start_held(barrier: Path, command: list[str]) -> subprocess.Popen[str]:
    """`lakegate COMMAND` in a subprocess, held at its first claim until the other run came."""
    barrier.mkdir()
    logs = barrier.parent
    with (logs / "subprocess.out").open("w") as out, (logs / "subprocess.err").open("w") as err:
        script = [sys.executable, claim_barrier.__file__, str(barrier), "subprocess"]
        return subprocess.Popen(
            [*script, str(PARTIES), *command],
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )


def race(
    process: subprocess.Popen[str],
    barrier: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> list[subprocess.CompletedProcess[str]]:
    """Run `lakegate COMMAND` here, its first claim held until `process` reached its own.

    Returns both runs' exit codes and output: this process's, then the subprocess's.
    """
    capsys.readouterr()
    try:
        with monkeypatch.context() as patch:
            alive = lambda: process.poll() is None  # noqa: E731
            patch.setattr(
                StagedOutputs, "_claim", claim_barrier.held_claim(barrier, "here", PARTIES, alive)
            )
            code = main(command)
        here = capsys.readouterr()
        process.wait(timeout=TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logs = barrier.parent
    return [
        subprocess.CompletedProcess(["in-process", *command], code, here.out, here.err),
        subprocess.CompletedProcess(
            process.args,
            process.returncode,
            (logs / "subprocess.out").read_text(),
            (logs / "subprocess.err").read_text(),
        ),
    ]


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
    spark: SparkSession,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from spark_jobs.sample_data import synthetic_users

    table = tmp_path / "users.parquet"
    spark.createDataFrame(synthetic_users(3_000, seed=4)).repartition(2).write.parquet(str(table))
    output, barrier = tmp_path / "out", tmp_path / "barrier"
    arguments = ["validate", SUITE, "--input", str(table), "--quiet"]
    same = [*arguments, "--output", str(output)]
    process = start_held(barrier, same)  # held before its first claim, so after the next run
    # The previous version: what one run alone writes, as the race's runs have the same inputs.
    assert main([*arguments, "--output", str(output), "--no-history"]) == 1
    alone = json.loads((output / "report.json").read_text())
    runs_before = history_files(settings.metrics_repository_path)

    runs = race(process, barrier, same, monkeypatch, capsys)

    loser = the_loser(runs, {ExitCode.OK, ExitCode.CHECKS_FAILED})
    report = json.loads((output / "report.json").read_text())
    run_id = report["run_id"]
    assert "is being written by another lakegate run" in loser.stderr
    assert f"run {run_id} " in loser.stderr  # it met the run that committed, and said so
    assert "Traceback" not in loser.stderr
    # valid, quarantine and report.json are the winner's, each one new Delta version (no
    # write, no restore by the loser), and hold what one run alone writes: the previous
    # version, still there to read.
    for name in ("valid", "quarantine"):
        assert last_commit(spark, output / name) == (1, "WRITE", f"lakegate run {run_id}")
        assert report["outputs"]["table_versions"][name] == 1
        previous = spark.read.format("delta").option("versionAsOf", 0).load(str(output / name))
        assertDataFrameEqual(delta(spark, output / name), previous)
    assert run_id != alone["run_id"]
    assert report["counts"] == alone["counts"]
    assert report["quarantine_reasons"] == alone["quarantine_reasons"]
    # The winner's metrics were saved, once.
    new_runs = [p for p in history_files(settings.metrics_repository_path) if p not in runs_before]
    assert len(new_runs) == 1 and run_id in new_runs[0].read_text()
    assert sorted(p.name for p in output.iterdir()) == [
        "quarantine",
        "report.html",
        "report.json",
        "valid",
    ]


def test_two_predict_runs_into_one_output_commit_one_run_and_the_other_exits_5(
    spark: SparkSession,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, barrier = tmp_path / "users.parquet", tmp_path / "barrier"
    output, reference = tmp_path / "scores", tmp_path / "reference"
    arguments = ["predict", "--model", "models:/concurrent_users@champion", "--input", str(source)]
    arguments += ["--key", "user_id"]
    same = [*arguments, "--output", str(output)]
    train(settings, "concurrent_users")
    spark.createDataFrame(users_frame(rows=300, seed=3)).write.parquet(str(source))
    process = start_held(barrier, same)  # its JVM starts while the reference is scored
    assert main([*arguments, "--output", str(reference)]) == 0  # one run alone

    runs = race(process, barrier, same, monkeypatch, capsys)
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
    theirs_committed = tmp_path / "theirs-committed"

    @F.udf("long")
    def held(value: int) -> int:  # keeps lakegate's write open until the other one committed
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not theirs_committed.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return value

    outputs = StagedOutputs(spark, str(tmp_path), "lakegate")
    theirs = spark.range(100, 105)

    def other_writer() -> None:  # not lakegate: no claim, only Delta's own check
        while not list(tmp_path.glob("_journal-lakegate.json")):
            time.sleep(0.05)
        try:
            theirs.write.format("delta").mode("overwrite").save(str(table))
        finally:
            theirs_committed.touch()

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(other_writer)
        # One task: the session's other core is free for the other writer's job.
        with pytest.raises(OutputConflict, match="another writer committed to output"):
            outputs.write_table("scores", spark.range(0, 2, 1, 1).select(held("id").alias("id")))
        other.result()
    outputs.abort()

    assertDataFrameEqual(delta(spark, table), theirs)
    history = DeltaTable.forPath(spark, str(table)).history().orderBy("version").collect()
    assert [r["operation"] for r in history] == ["WRITE", "WRITE"]  # no RESTORE over theirs
    assert not list(tmp_path.glob("_journal-*")) and not (tmp_path / ".lakegate-writers").exists()
