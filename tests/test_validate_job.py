"""The validate job end to end: outputs, report, exit codes, and no row ever lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import claim_barrier
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.validate import ValidateSpec, run

ITEMS = "checks/examples/items.yaml"


@pytest.fixture(scope="module")
def items_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("items") / "items.csv"
    path.write_text(Path("data/items.csv").read_text())
    return path


def read_report(output: Path) -> dict:
    return json.loads((output / "report.json").read_text())


@pytest.mark.slow
def test_items_example_quarantines_item_3_and_exits_1(
    spark: SparkSession, items_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    code = main(["validate", ITEMS, "--input", str(items_csv), "--output", str(output), "--quiet"])
    assert code == 1
    report = read_report(output)
    assert report["status"] == "failure"
    assert report["counts"] == {"rows_in": 5, "rows_valid": 4, "rows_quarantined": 1}
    assert report["quarantine_reasons"] == {"isComplete(productName)": 1}
    failed = {
        c["constraint"]: c["metric"] for c in report["constraints"] if c["status"] == "failure"
    }
    assert failed == {"isComplete(productName)": 0.8, "containsURL(description)": 0.4}

    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(
        quarantine.select("id", F.col("_lakegate_errors")[0]["message"].alias("why")),
        spark.createDataFrame([(3, "productName is null")], "id int, why string"),
    )
    valid = spark.read.format("delta").load(str(output / "valid"))
    source = spark.read.option("header", True).option("inferSchema", True).csv(str(items_csv))
    assert valid.schema == source.schema
    assertDataFrameEqual(valid, source.where("id != 3"))

    printed = capsys.readouterr().out
    assert "FAIL  isComplete(productName)" in printed
    assert "Rows: 5 in, 4 valid, 1 quarantined" in printed


def test_metrics_are_appended_to_the_history(
    spark: SparkSession, settings: Settings, items_csv: Path, tmp_path: Path
) -> None:
    from checks.deequ_run import runs_folder

    runs = runs_folder(settings.metrics_repository_path)
    before = set(runs.glob("*.json")) if runs.is_dir() else set()
    main(["validate", ITEMS, "--input", str(items_csv), "--output", str(tmp_path / "o"), "--quiet"])
    (added,) = set(runs.glob("*.json")) - before
    (saved,) = json.loads(added.read_text())
    assert saved["resultKey"]["tags"]["suite"] == "items"


def test_passing_suite_exits_0_with_an_empty_quarantine(
    spark: SparkSession, items_csv: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "ok.yaml"
    suite.write_text(
        "suite: ok\nchecks:\n  - name: basics\n    constraints:\n"
        "      - hasSize: {eq: 5}\n      - isUnique: id\n      - isNonNegative: numViews\n"
    )
    output = tmp_path / "out"
    assert (
        main(
            ["validate", str(suite), "--input", str(items_csv), "--output", str(output), "--quiet"]
        )
        == 0
    )
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assert quarantine.count() == 0
    assert "_lakegate_errors" in quarantine.columns
    assert read_report(output)["counts"]["rows_valid"] == 5


def test_warning_level_failures_do_not_quarantine_or_fail_the_run(
    spark: SparkSession, items_csv: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "warn.yaml"
    suite.write_text(
        "suite: warn\nchecks:\n  - name: soft\n    level: warning\n    constraints:\n"
        "      - isComplete: productName\n"
    )
    output = tmp_path / "out"
    assert (
        main(
            ["validate", str(suite), "--input", str(items_csv), "--output", str(output), "--quiet"]
        )
        == 0
    )
    report = read_report(output)
    assert report["status"] == "warning"
    assert report["counts"]["rows_quarantined"] == 0


@pytest.mark.parametrize(
    ("suite_body", "message"),
    [
        ("      - isComplete: prodName\n", "unknown column 'prodName'"),
        ("      - isCompleet: id\n", "unknown constraint 'isCompleet'"),
        ("      - hasMean: {column: productName, max: 1}\n", "needs a numeric column"),
        ("      - isComplete: {column: id, where: 'nosuch > 1'}\n", "is not a valid filter here"),
    ],
)
def test_bad_suite_exits_2_and_writes_nothing(
    spark: SparkSession,
    items_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suite_body: str,
    message: str,
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("suite: bad\nchecks:\n  - name: c\n    constraints:\n" + suite_body)
    output = tmp_path / "out"
    code = main(["validate", str(suite), "--input", str(items_csv), "--output", str(output)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert f"{suite}:5" in err
    assert "Traceback" not in err
    assert not output.exists()


def test_missing_input_exits_2_and_writes_nothing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    code = main(
        ["validate", ITEMS, "--input", str(tmp_path / "nope.parquet"), "--output", str(output)]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not output.exists()


def test_corrupt_parquet_exits_2_and_writes_nothing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "items.parquet"
    corrupt.write_bytes(b"PAR1 this is not really parquet")
    output = tmp_path / "out"
    code = main(["validate", ITEMS, "--input", str(corrupt), "--output", str(output)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot read '{corrupt}' as parquet" in err
    assert "Traceback" not in err
    assert not output.exists()


MESSY_ROWS = 6_000


def _messy_table(spark: SparkSession, path: Path) -> DataFrame:
    """6k rows over 6 files: duplicated ids across partitions, nulls, negatives."""
    rows = range(MESSY_ROWS)
    ids = [i if i % 997 else i - 1 for i in rows]  # every 997th id repeats its neighbour
    frame = pd.DataFrame(
        {
            "id": ids,
            "name": [None if i % 501 == 0 else f"n{i}" for i in rows],
            "amount": [-1.0 if i % 733 == 0 else float(i % 50) for i in rows],
        }
    )
    spark.createDataFrame(frame).repartition(6).write.parquet(str(path))
    return spark.read.parquet(str(path))


@pytest.mark.slow
def test_no_row_is_lost_on_a_multi_partition_table_with_duplicates_and_nulls(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    table = _messy_table(spark, tmp_path / "messy.parquet")
    suite_path = tmp_path / "messy.yaml"
    suite_path.write_text(
        "suite: messy\nchecks:\n  - name: rows\n    constraints:\n"
        "      - isUnique: id\n      - isComplete: name\n      - isNonNegative: amount\n"
    )
    output = tmp_path / "out"
    result = run(
        spark,
        settings,
        ValidateSpec(
            suite=str(suite_path), input=str(tmp_path / "messy.parquet"), output=str(output)
        ),
    )
    valid = spark.read.format("delta").load(str(output / "valid"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))

    pdf = table.toPandas()
    duplicated = pdf["id"].duplicated(keep=False)
    bad = duplicated | pdf["name"].isna() | (pdf["amount"] < 0)
    expected_quarantine = spark.createDataFrame(pdf[bad])
    assertDataFrameEqual(quarantine.drop("_lakegate_errors"), expected_quarantine)
    assertDataFrameEqual(valid, spark.createDataFrame(pdf[~bad]))
    counts = result.counts
    assert (counts.rows_in, counts.rows_valid, counts.rows_quarantined) == (
        MESSY_ROWS,
        int((~bad).sum()),
        int(bad.sum()),
    )
    assert result.quarantine_reasons["isUnique(id)"] == int(duplicated.sum())


@pytest.mark.slow
def test_rerun_replaces_the_outputs_instead_of_adding_rows(
    spark: SparkSession, items_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    args = ["validate", ITEMS, "--input", str(items_csv), "--output", str(output), "--quiet"]
    args.append("--no-history")
    assert main(args) == main(args) == 1
    assert spark.read.format("delta").load(str(output / "valid")).count() == 4
    assert spark.read.format("delta").load(str(output / "quarantine")).count() == 1
    assert sorted(p.name for p in output.iterdir()) == [
        "quarantine",
        "report.html",
        "report.json",
        "valid",
    ]


@pytest.mark.slow
def test_job_script_runs_as_a_program_with_the_same_arguments(
    state_dir: Path, items_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "spark_jobs/validate.py",
            ITEMS,
            "--input",
            str(items_csv),
            "--output",
            str(output),
            "--quiet",
            "--no-history",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "Rows: 5 in, 4 valid, 1 quarantined" in done.stdout
    assert read_report(output)["counts"]["rows_quarantined"] == 1


def test_bad_suite_fails_before_spark_starts_without_a_stack_trace(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("suite: bad\nchecks: []\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_jobs.cli",
            "validate",
            str(suite),
            "--input",
            "x.parquet",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{suite}:2: checks" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_csv_lines_are_quarantined_with_the_raw_line(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = tmp_path / "items.csv"
    source.write_text("id,name,views\n1,a,0\n2,b,3,unexpected,extra\n3,c\n4,d,7\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "suite: s\nchecks:\n  - name: c\n    constraints:\n      - isNonNegative: views\n"
    )
    output = tmp_path / "out"
    assert (
        main(["validate", str(suite), "--input", str(source), "--output", str(output), "--quiet"])
        == 0
    )
    report = read_report(output)
    assert report["counts"] == {"rows_in": 4, "rows_valid": 2, "rows_quarantined": 2}
    assert report["quarantine_reasons"] == {"parseable": 2}
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(
        quarantine.select("id", F.col("_lakegate_errors")[0]["message"].alias("why")),
        spark.createDataFrame(
            [(2, "malformed line: 2,b,3,unexpected,extra"), (3, "malformed line: 3,c")],
            "id int, why string",
        ),
    )
    valid = spark.read.format("delta").load(str(output / "valid"))
    assert valid.columns == ["id", "name", "views"]
    assertDataFrameEqual(valid.select("id"), spark.createDataFrame([(1,), (4,)], "id int"))


@pytest.mark.slow
def test_a_job_killed_while_writing_leaves_the_previous_output_and_a_rerun_completes(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    import signal
    import time

    from delta.tables import DeltaTable

    from spark_jobs.sample_data import synthetic_users

    table = tmp_path / "users.parquet"
    spark.createDataFrame(synthetic_users(20_000, seed=9)).repartition(4).write.parquet(str(table))
    output, barrier = tmp_path / "out", tmp_path / "barrier"
    arguments = ["validate", "checks/examples/users_raw.yaml", "--input", str(table)]
    arguments += ["--output", str(output), "--quiet", "--no-history"]
    spec = ValidateSpec(
        suite="checks/examples/users_raw.yaml",
        input=str(table),
        output=str(output),
        keep_history=False,
    )
    # The job to kill starts first: its JVM starts while this session writes the previous
    # output, and claim_barrier holds it before its first write until that output is there.
    barrier.mkdir()
    job = subprocess.Popen(
        [sys.executable, claim_barrier.__file__, str(barrier), "job", "2", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        run(spark, settings, spec)
        before = read_report(output)
        valid_before = spark.read.format("delta").load(str(output / "valid"))
        quarantine_before = spark.read.format("delta").load(str(output / "quarantine"))
        valid_rows, quarantine_rows = valid_before.collect(), quarantine_before.collect()
        (barrier / "previous output written").touch()

        # Killed after the valid rows were committed, in the middle of writing the quarantine.
        valid_committed = output / "valid/_delta_log/00000000000000000001.json"
        deadline = time.monotonic() + 240
        while not valid_committed.exists():
            assert time.monotonic() < deadline and job.poll() is None, "the job never wrote"
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)  # the driver and its JVM
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert read_report(output) == before
    assert any(p.name.startswith("_journal-") for p in output.iterdir())
    assertDataFrameEqual(
        spark.read.format("delta").load(str(output / "quarantine")), quarantine_rows
    )

    # The re-run here (in this test's session) finds the killed process's journal.
    assert run(spark, settings, spec).exit_code == 1
    assert sorted(p.name for p in output.iterdir()) == [
        "quarantine",
        "report.html",
        "report.json",
        "valid",
    ]
    assert read_report(output)["counts"] == before["counts"]
    assertDataFrameEqual(spark.read.format("delta").load(str(output / "valid")), valid_rows)
    history = DeltaTable.forPath(spark, str(output / "valid")).history().toPandas()
    # The re-run first put back the version the killed job had replaced, then wrote its own.
    assert list(history.sort_values("version")["operation"]) == [
        "WRITE",
        "WRITE",
        "RESTORE",
        "WRITE",
    ]
    assertDataFrameEqual(
        spark.read.format("delta").load(str(output / "quarantine")), quarantine_rows
    )


def test_validating_a_quarantine_table_again_is_refused_with_the_fix(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = main(
        [
            "validate",
            "checks/examples/items.yaml",
            "--input",
            "data/items.csv",
            "--output",
            str(tmp_path / "once"),
            "--quiet",
            "--no-history",
        ]
    )
    assert first == 1
    capsys.readouterr()
    again = main(
        [
            "validate",
            "checks/examples/items.yaml",
            "--input",
            str(tmp_path / "once" / "quarantine"),
            "--format",
            "delta",
            "--output",
            str(tmp_path / "twice"),
            "--quiet",
            "--no-history",
        ]
    )
    err = capsys.readouterr().err
    assert again == 2
    assert "'_lakegate_errors'" in err and "EXCEPT (_lakegate_errors)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "twice").exists()


@pytest.mark.slow
def test_two_constraints_alike_in_two_checks_keep_their_own_reasons_and_results(
    spark: SparkSession, items_csv: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "twice.yaml"
    suite.write_text(
        "suite: twice\nchecks:\n"
        "  - name: strict\n    constraints:\n"
        "      - isContainedIn: {column: priority, values: [high]}\n"
        "  - name: loose\n    constraints:\n"
        "      - isContainedIn: {column: priority, values: [high, low]}\n"
        "      - isContainedIn: {column: priority, values: [high, low]}\n"
    )
    output = tmp_path / "out"
    code = main(["validate", str(suite), "--input", str(items_csv), "--output", str(output),
                 "--quiet", "--no-history"])  # fmt: skip
    assert code == 1
    report = read_report(output)
    strict = "isContainedIn(priority) in check 'strict'"
    results = {c["constraint"]: c["status"] for c in report["constraints"]}
    assert results == {
        strict: "failure",
        "isContainedIn(priority) in check 'loose', constraint 1": "success",
        "isContainedIn(priority) in check 'loose', constraint 2": "success",
    }
    assert report["quarantine_reasons"] == {strict: 2}  # items 3 and 4 are `low`
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(
        quarantine.select("id", F.col("_lakegate_errors")[0]["constraint"].alias("broke")),
        spark.createDataFrame([(3, strict), (4, strict)], "id int, broke string"),
    )


def test_report_samples_are_observed_per_reason_distinct_and_bounded_on_many_partitions(
    spark: SparkSession,
) -> None:
    from pyspark.sql import Observation

    from spark_jobs.services.report_samples import observed_samples, sample_aggregates

    def errors(*names: str) -> list[tuple[str, str]]:
        return [(name, f"{name} broken") for name in names]

    rows = [(i, {"k": i}, errors("common")) for i in range(40)]
    rows += [(40, {"k": 40}, errors("common", "rare")), (41, None, errors("twice"))]
    rows.append((42, None, errors("twice")))
    quarantine = spark.createDataFrame(
        rows,
        "id int, tags map<string,int>, "
        "_lakegate_errors array<struct<constraint: string, message: string>>",
    ).repartition(4)
    reasons = ["common", "rare", "twice", "absent"]
    observation = Observation("samples")
    observed = quarantine.observe(
        observation, F.count(F.lit(1)), *sample_aggregates(quarantine.schema, reasons, 3)
    )
    observed.write.format("noop").mode("overwrite").save()

    samples = observed_samples(observation.get, reasons, 3)

    common = [s["id"] for s in samples["common"]]
    assert len(common) == len(set(common)) and 1 <= len(common) <= 3
    assert set(common) <= set(range(41))
    assert [s["id"] for s in samples["rare"]] == [40]  # one row among 42 is still found
    assert samples["rare"][0]["tags"] == {"k": 40}
    assert samples["rare"][0]["_lakegate_errors"][1] == {
        "constraint": "rare",
        "message": "rare broken",
    }
    assert sorted(s["id"] for s in samples["twice"]) == [41, 42]  # both, each once
    assert samples["absent"] == []


def test_read_back_samples_come_from_the_first_rows_and_a_rare_reason_is_searched_for(
    spark: SparkSession,
) -> None:
    from spark_jobs.services.report_samples import read_back_samples

    def errors(*names: str) -> list[tuple[str, str]]:
        return [(name, f"{name} broken") for name in names]

    rows = [(i, errors("common")) for i in range(6)] + [(6, errors("common", "rare"))]
    quarantine = spark.createDataFrame(
        rows, "id int, _lakegate_errors array<struct<constraint: string, message: string>>"
    ).coalesce(1)

    samples = read_back_samples(quarantine, {"common": 7, "rare": 1}, rows=2, first=3)

    assert [s["id"] for s in samples["common"]] == [0, 1]  # from the first 3 rows alone
    assert [s["id"] for s in samples["rare"]] == [6]  # not among them: read on its own
    assert samples["rare"][0]["_lakegate_errors"][1] == {
        "constraint": "rare",
        "message": "rare broken",
    }
    assert read_back_samples(quarantine, {}, rows=2) == {}


@pytest.mark.slow
def test_a_table_too_large_to_sample_in_the_quarantine_write_is_read_back_to_the_same_report(
    spark: SparkSession, items_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def samples_table(output: Path) -> str:
        html = (output / "report.html").read_text()
        start = html.index("Sample rows that broke")
        return html[start : html.index("</table>", start)]

    observed, read_back = tmp_path / "observed", tmp_path / "read_back"
    arguments = ["--input", str(items_csv), "--quiet", "--no-history"]
    assert main(["validate", ITEMS, "--output", str(observed), *arguments]) == 1
    monkeypatch.setattr("spark_jobs.validate.OBSERVED_SAMPLES_MAX_ROWS", 0)
    assert main(["validate", ITEMS, "--output", str(read_back), *arguments]) == 1

    assert samples_table(observed) == samples_table(read_back)
    assert "<td>3</td><td>null</td><td>null</td><td>low</td>" in samples_table(read_back)


@pytest.mark.slow
def test_a_run_whose_quarantine_write_fails_restores_valid_and_saves_no_metrics(
    spark: SparkSession,
    settings: Settings,
    items_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from checks.deequ_run import history_files
    from spark_jobs.services.table_io import StagedOutputs

    output = tmp_path / "out"
    spec = ValidateSpec(suite=ITEMS, input=str(items_csv), output=str(output))
    first = run(spark, settings, spec)
    valid_before = spark.read.format("delta").load(str(output / "valid")).collect()
    runs_before = history_files(settings.metrics_repository_path)  # a file per saved run
    write_table = StagedOutputs.write_table

    def disk_full_after_the_quarantine(self: StagedOutputs, name: str, df: DataFrame) -> None:
        write_table(self, name, df)
        if name == "quarantine":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(StagedOutputs, "write_table", disk_full_after_the_quarantine)
    with pytest.raises(OSError, match="No space left"):
        run(spark, settings, spec)

    assertDataFrameEqual(spark.read.format("delta").load(str(output / "valid")), valid_before)
    assert history_files(settings.metrics_repository_path) == runs_before
    assert read_report(output)["run_id"] == first.run_id


def test_the_metrics_a_run_saves_read_back_as_the_records_its_charts_were_drawn_from(
    spark: SparkSession, settings: Settings, items_csv: Path, tmp_path: Path
) -> None:
    from checks.gate import apply_suite
    from checks.suite_formats import load_suite
    from spark_jobs.services.html_report import history_records

    suite = load_suite(ITEMS)
    repository = tmp_path / "metrics.json"
    df = spark.read.option("header", True).option("inferSchema", True).csv(str(items_csv))
    gate = apply_suite(spark, df, suite, repository=repository, tags={"suite": "t", "run_id": "r1"})
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        gate.verdict()
        assert not repository.exists()
        drawn = gate.metric_records()
        gate.save_metrics()
    finally:
        gate.release()
    saved = history_records(spark, repository, "t")
    assert len(saved) == len(drawn) > 5
    key = ("entity", "instance", "name")
    assert sorted(saved, key=lambda r: [str(r[k]) for k in key]) == sorted(
        drawn, key=lambda r: [str(r[k]) for k in key]
    )
