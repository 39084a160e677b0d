"""A corpus of bad inputs, each with its expected outcome: a clear error and exit code, or rows
in quarantine with a reason. Never a lost row, never a stack trace for a user error.
(docs/bad-inputs.md lists the corpus as a table.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.cli import main

ROWS_SUITE = (
    "suite: rows\nchecks:\n  - name: rows\n    constraints:\n"
    "      - isComplete: id\n"
    "      - isNonNegative: amount\n"
    "      - hasPattern: {column: name, pattern: '^n'}\n"
)


def run_validate(tmp_path: Path, source: Path, suite_text: str = ROWS_SUITE) -> tuple[int, Path]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text)
    output = tmp_path / "out"
    code = main(
        [
            "validate",
            str(suite),
            "--input",
            str(source),
            "--output",
            str(output),
            "--quiet",
            "--no-history",
        ]
    )
    return code, output


def assert_conserved(spark: SparkSession, output: Path, rows_in: int) -> dict:
    report = json.loads((output / "report.json").read_text())
    counts = report["counts"]
    assert counts["rows_in"] == rows_in
    assert spark.read.format("delta").load(str(output / "valid")).count() == counts["rows_valid"]
    assert (
        spark.read.format("delta").load(str(output / "quarantine")).count()
        == counts["rows_quarantined"]
    )
    assert counts["rows_valid"] + counts["rows_quarantined"] == rows_in
    return report


def write(spark: SparkSession, path: Path, rows: list[tuple], schema: str) -> Path:
    spark.createDataFrame(rows, schema).coalesce(1).write.parquet(str(path))
    return path


SCHEMA = "id long, name string, amount double"


def test_truncated_parquet_is_a_clear_error(spark: SparkSession, tmp_path: Path, capsys) -> None:
    good = write(spark, tmp_path / "good.parquet", [(1, "n1", 1.0)] * 100, SCHEMA)
    part = next(good.glob("*.parquet"))
    truncated = tmp_path / "truncated.parquet"
    truncated.mkdir()
    (truncated / part.name).write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    code, output = run_validate(tmp_path, truncated)
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot read" in err and "Traceback" not in err
    assert not output.exists()


@pytest.mark.slow
def test_empty_table_reports_zero_rows(spark: SparkSession, tmp_path: Path) -> None:
    source = write(spark, tmp_path / "empty.parquet", [], SCHEMA)
    code, output = run_validate(tmp_path, source, ROWS_SUITE + "      - hasSize: {min: 1}\n")
    assert code == 1
    report = assert_conserved(spark, output, 0)
    assert [c["status"] for c in report["constraints"]][-1] == "failure"


@pytest.mark.slow
def test_all_null_column_quarantines_every_row_with_a_reason(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = write(
        spark, tmp_path / "nulls.parquet", [(None, "n1", 1.0), (None, "n2", 2.0)], SCHEMA
    )
    code, output = run_validate(
        tmp_path, source, ROWS_SUITE + "      - hasMean: {column: id, min: 0}\n"
    )
    assert code == 1
    report = assert_conserved(spark, output, 2)
    assert report["quarantine_reasons"] == {"isComplete(id)": 2}
    mean = report["constraints"][-1]
    assert mean["status"] == "failure" and mean["metric"] is None and mean["message"]


@pytest.mark.slow
def test_nan_infinities_and_extremes_are_judged_not_crashed_on(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        (1, "n1", float("nan")),
        (2, "n2", float("inf")),
        (3, "n3", float("-inf")),
        (4, "n4", 1.7976931348623157e308),
        (5, "n5", -1e-300),
    ]
    source = write(spark, tmp_path / "extreme.parquet", rows, SCHEMA)
    code, output = run_validate(tmp_path, source)
    assert code == 1
    report = assert_conserved(spark, output, 5)
    quarantined = spark.read.format("delta").load(str(output / "quarantine")).select("id").collect()
    assert sorted(r.id for r in quarantined) == [3, 5]  # Spark orders NaN above every number
    assert report["quarantine_reasons"] == {"isNonNegative(amount)": 2}


@pytest.mark.slow
def test_long_and_non_ascii_strings_survive_the_split(spark: SparkSession, tmp_path: Path) -> None:
    rows = [(1, "n" + "é" * 100_000, 1.0), (2, "名前", 1.0), (3, "n🙂", 1.0)]
    source = write(spark, tmp_path / "strings.parquet", rows, SCHEMA)
    code, output = run_validate(tmp_path, source)
    assert code == 1
    assert_conserved(spark, output, 3)
    valid = spark.read.format("delta").load(str(output / "valid")).orderBy("id").collect()
    assert [len(r.name) for r in valid] == [100_001, 2]
    bad = (
        spark.read.format("delta")
        .load(str(output / "quarantine"))
        .select("name", F.col("_lakegate_errors")[0]["message"].alias("m"))
        .first()
    )
    assert bad.name == "名前" and "does not contain pattern" in bad.m


@pytest.mark.slow
def test_extra_column_is_kept_in_the_valid_rows(spark: SparkSession, tmp_path: Path) -> None:
    source = write(
        spark, tmp_path / "extra.parquet", [(1, "n1", 1.0, "x")], SCHEMA + ", extra string"
    )
    code, output = run_validate(tmp_path, source)
    assert code == 0
    assert spark.read.format("delta").load(str(output / "valid")).columns == [
        "id",
        "name",
        "amount",
        "extra",
    ]


def test_missing_column_is_a_clear_error(spark: SparkSession, tmp_path: Path, capsys) -> None:
    source = write(spark, tmp_path / "drift.parquet", [(1, "n1")], "id long, name string")
    code, output = run_validate(tmp_path, source)
    assert code == 2
    assert "unknown column 'amount'" in capsys.readouterr().err
    assert not output.exists()


def test_changed_type_against_a_declared_schema_is_a_clear_error(
    spark: SparkSession,
    tmp_path: Path,
    capsys,
) -> None:
    source = write(
        spark, tmp_path / "typed.parquet", [(1, "n1", "1.0")], "id long, name string, amount string"
    )
    suite = ROWS_SUITE.replace(
        "checks:\n", "schema: {id: bigint, amount: double}\nchecks:\n"
    ).replace("      - isNonNegative: amount\n", "")
    code, output = run_validate(tmp_path, source, suite)
    assert code == 2
    assert "column 'amount' is string, expected double" in capsys.readouterr().err
    assert not output.exists()


def test_duplicate_column_names_in_csv_are_named(
    spark: SparkSession, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "dup.csv"
    source.write_text("id,name,name,amount\n1,n1,n2,1.0\n")
    code, output = run_validate(tmp_path, source)
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown column 'name'" in err and "name1, name2" in err
    assert "_lakegate_malformed" not in err and "Traceback" not in err
    assert not output.exists()


@pytest.mark.slow
def test_deequ_jar_that_cannot_be_resolved_is_an_environment_error(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "offline.yaml").write_text(
        "deequ:\n  coordinate: com.amazon.deequ:deequ:0.0.0-not-published\n"
        f"  ivy_cache: {tmp_path / 'ivy'}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_jobs.cli",
            "validate",
            "checks/examples/items.yaml",
            "--input",
            "data/items.csv",
            "--output",
            str(tmp_path / "out"),
            "--env",
            "offline",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, LAKEGATE_CONF_DIR=str(conf), LAKEGATE_STATE_DIR=str(tmp_path / "s")),
    )
    assert done.returncode == 3, done.stderr
    assert "com.amazon.deequ:deequ:0.0.0-not-published" in done.stderr
    assert "could not be downloaded from Maven Central" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_environment_is_a_usage_error(capsys) -> None:
    code = main(
        [
            "validate",
            "checks/examples/items.yaml",
            "--input",
            "data/items.csv",
            "--output",
            "/tmp/x",
            "--env",
            "nosuch",
        ]
    )
    assert code == 2
    assert "no configuration for environment 'nosuch'" in capsys.readouterr().err


def test_credentials_in_an_input_uri_never_reach_the_error_message(capsys) -> None:
    code = main(
        [
            "validate",
            "checks/examples/items.yaml",
            "--input",
            "http://alice:s3cret@example.invalid/items.csv",
            "--output",
            "/tmp/lakegate-never-written",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "s3cret" not in err
    assert "alice:***@" in err


@pytest.mark.slow
def test_plain_spark_submit_without_the_deequ_jar_says_how_to_add_it(tmp_path: Path) -> None:
    from spark_jobs.submit import spark_submit_path

    done = subprocess.run(
        [
            str(spark_submit_path()),
            "--master",
            "local[1]",
            "spark_jobs/validate.py",
            "checks/examples/items.yaml",
            "--input",
            "data/items.csv",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, LAKEGATE_STATE_DIR=str(tmp_path / "s"), PYSPARK_PYTHON=sys.executable),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-3000:]
    assert "Deequ is not on Spark's classpath" in output and "lakegate submit" in output
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()


def conf_with_delta_properties(tmp_path: Path, properties: str, monkeypatch) -> None:
    """A copy of conf/test.yaml whose outputs get `properties` (YAML lines under the key)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    text = (Path(__file__).parents[1] / "conf" / "test.yaml").read_text()
    text = text.replace("outputs:\n  format: delta\n", f"outputs:\n  format: delta\n{properties}")
    (conf / "test.yaml").write_text(text)
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(conf))


@pytest.mark.slow
def test_delta_properties_from_conf_shape_both_outputs_of_validate(
    spark: SparkSession, tmp_path: Path, monkeypatch
) -> None:
    conf_with_delta_properties(
        tmp_path,
        "  delta_properties:\n    delta.dataSkippingStatsColumns: id,amount\n",
        monkeypatch,
    )
    rows = [(1, "n1", 1.0), (2, "x2", -1.0), (None, "n3", 3.0)]
    code, output = run_validate(tmp_path, write(spark, tmp_path / "in.parquet", rows, SCHEMA))
    assert code == 1
    assert_conserved(spark, output, 3)
    for table in ("valid", "quarantine"):
        log = spark.read.json(str(output / table / "_delta_log" / "*.json"))
        properties = log.where("metaData IS NOT NULL").first()["metaData"]["configuration"]
        assert properties.asDict() == {"delta.dataSkippingStatsColumns": "id,amount"}
        stats = [
            json.loads(r.stats) for r in log.where("add IS NOT NULL").select("add.stats").collect()
        ]
        assert {c for s in stats for c in s["minValues"]} <= {"id", "amount"}


def test_delta_properties_delta_refuses_are_a_clear_error_before_the_job_reads(
    spark: SparkSession, tmp_path: Path, monkeypatch, capsys
) -> None:
    conf_with_delta_properties(
        tmp_path, "  delta_properties:\n    delta.dataSkippingStatsColumns: id,price\n", monkeypatch
    )
    source = write(spark, tmp_path / "in.parquet", [(1, "n1", 1.0)], SCHEMA)
    code, output = run_validate(tmp_path, source)
    err = capsys.readouterr().err
    assert code == 2
    assert "delta.dataSkippingStatsColumns names 'price', which output 'valid'" in err
    assert "Traceback" not in err
    assert not output.exists()
