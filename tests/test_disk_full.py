"""A file system that fills up while validate writes its valid or quarantine table.

The outputs live on a tmpfs mounted for the test (`mount -t tmpfs -o size=...`, root only), and a
filler file leaves less room than the write needs: a real ENOSPC from the kernel, met by Spark's
parquet writer in the middle of the table, not an error raised by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from checks.deequ_run import history_files
from lakegate_config.settings import Settings
from lakegate_errors import ExitCode
from spark_jobs.cli import main

pytestmark = pytest.mark.slow

SIZE_MB = 48
# Rows of the large input: its valid table (~1.4 MB) and quarantine are each several times the
# 256 KiB the test leaves beside the room it gives the failing table.
LARGE_ROWS = 40_000
SUITE = """\
suite: disk_full
checks:
  - name: free users only
    level: error
    constraints:
      - isComplete: user_id
      - isContainedIn: {column: segment, values: [free]}
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of SIZE_MB mounted for this test, unmounted after it."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "mounting a tmpfs was refused (needs root with CAP_SYS_ADMIN): "
            + mounted.stderr.strip()
        )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def data_bytes(table: Path) -> int:
    """The bytes of a Delta table's data files (and their checksums), log excluded."""
    return sum(p.stat().st_size for p in table.iterdir() if p.is_file())


def unreferenced_files(table: Path) -> set[str]:
    """Data files in a Delta table's folder that no commit of its log adds."""
    added = set()
    for commit in (table / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added.add(action["add"]["path"])
    files = {p.name for p in table.iterdir() if p.is_file() and not p.name.startswith(".")}
    return files - added


def delta(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


class Inputs(NamedTuple):
    """The suite, a small and a large users table, and what validating the large one wrote."""

    suite: Path
    small: Path
    large: Path
    reference: Path


def validate(suite: Path, source: Path, target: Path) -> int:
    arguments = ["validate", str(suite), "--input", str(source), "--output", str(target)]
    return main([*arguments, "--quiet", "--no-html-report"])


@pytest.fixture(scope="module")
def inputs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """The inputs both tests validate, and the large one's outputs written alone (a reference)."""
    from spark_jobs.sample_data import synthetic_users

    folder = tmp_path_factory.mktemp("disk-full")
    suite = folder / "suite.yaml"
    suite.write_text(SUITE)
    small, large = folder / "small.parquet", folder / "large.parquet"
    spark.createDataFrame(synthetic_users(2_000, seed=1)).write.parquet(str(small))
    users = synthetic_users(LARGE_ROWS, seed=2)
    spark.createDataFrame(users).repartition(2).write.parquet(str(large))
    reference = folder / "reference"
    assert validate(suite, large, reference) == ExitCode.CHECKS_FAILED
    return Inputs(suite, small, large, reference)


@pytest.mark.parametrize("failing", ["valid", "quarantine"])
def test_a_disk_that_fills_up_during_a_write_exits_3_and_leaves_the_previous_outputs(
    spark: SparkSession,
    settings: Settings,
    inputs: Inputs,
    small_disk: Path,
    failing: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from delta.tables import DeltaTable

    suite, small, large, reference = inputs
    output = small_disk / "out"
    assert validate(suite, small, output) == ExitCode.CHECKS_FAILED  # the previous outputs
    before = {name: delta(spark, output / name).collect() for name in ("valid", "quarantine")}
    report_before = (output / "report.json").read_text()
    runs_before = history_files(settings.metrics_repository_path)
    # Room for less than half of the failing table (the valid table first, when it is the
    # quarantine that must not fit), with 256 KiB for journals and Delta's logs.
    valid_size, quarantine_size = (data_bytes(reference / n) for n in ("valid", "quarantine"))
    room = valid_size // 2 if failing == "valid" else valid_size + quarantine_size // 2
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free_bytes(small_disk) - room - 256 * 1024))
    capsys.readouterr()

    assert validate(suite, large, output) == ExitCode.ENVIRONMENT

    error = capsys.readouterr().err
    assert f"no space left on the file system holding '{output / failing}'" in error
    assert "Free space there" in error and "Traceback" not in error
    for name, rows in before.items():
        assertDataFrameEqual(delta(spark, output / name), rows)
        assert unreferenced_files(output / name) == set()  # no partial data files left
    operations = [
        r["operation"]
        for r in DeltaTable.forPath(spark, str(output / "valid"))
        .history()
        .orderBy("version")
        .collect()
    ]
    # The valid table went back to its version (RESTORE) when the quarantine did not fit.
    assert operations == (["WRITE"] if failing == "valid" else ["WRITE", "WRITE", "RESTORE"])
    assert (output / "report.json").read_text() == report_before
    assert sorted(p.name for p in output.iterdir()) == ["quarantine", "report.json", "valid"]
    assert history_files(settings.metrics_repository_path) == runs_before  # no metrics saved

    filler.unlink()  # space freed: the next run finds nothing to undo and commits
    assert validate(suite, large, output) == ExitCode.CHECKS_FAILED
    for name in ("valid", "quarantine"):
        assertDataFrameEqual(delta(spark, output / name), delta(spark, reference / name))
    assert (
        json.loads((output / "report.json").read_text())["counts"]
        == json.loads((reference / "report.json").read_text())["counts"]
    )
    assert sorted(p.name for p in output.iterdir()) == ["quarantine", "report.json", "valid"]
