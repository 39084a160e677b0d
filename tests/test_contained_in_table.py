"""`isContainedInTable`: foreign keys against a reference table, in batch and stream mode.

A row whose key the reference table lacks is quarantined with a reason naming that table; a key
holding a NULL complies (Deequ's `isContainedIn` counts NULL as contained; SQL's MATCH SIMPLE).
The table-wide metric is Deequ's `Compliance` of the same predicate, so it equals the share of
rows kept, and it agrees with a plain `VerificationSuite` run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from checks.contract_export import contract_yaml
from checks.deequ_run import load_history, verify
from checks.gate import ERRORS_COLUMN, apply_suite
from checks.suite import SuiteError
from checks.suite_formats import load_suite
from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.validate import read_reference

ORDERS = "oid int, user_id string, region string, country string"
ORDER_ROWS = [
    (1, "u1", "eu", "fr"),
    (2, "u2", "eu", "de"),
    (3, "u9", "us", "ca"),  # u9 is no user
    (4, None, "us", None),  # a NULL key complies
    (5, "u1", "eu", "it"),  # (eu, it) is no region
]
USERS = "uid string, name string, area string, code string"
USER_ROWS = [
    ("u1", "ann", "eu", "fr"),
    ("u2", "bob", "eu", "de"),
    ("u2", "bob", "eu", "de"),  # a key listed twice adds no row
    (None, "nobody", "us", "ca"),
    ("u3", "cy", "us", "us"),
]


def write_suite(folder: Path, constraints: list[str], level: str = "error") -> Path:
    path = folder / "suite.yaml"
    body = "\n".join(f"      - {c}" for c in constraints)
    path.write_text(
        f"suite: orders\nchecks:\n  - name: keys\n    level: {level}\n    constraints:\n{body}\n"
    )
    return path


@pytest.fixture(scope="module")
def tables(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fk")
    users = spark.createDataFrame(USER_ROWS, USERS).coalesce(1)
    users.write.format("delta").save(str(root / "users"))
    orders = spark.createDataFrame(ORDER_ROWS, ORDERS).repartition(2)
    orders.write.parquet(str(root / "orders.parquet"))
    return {"root": root, "users": root / "users", "orders": root / "orders.parquet"}


def orders(spark: SparkSession, tables: dict[str, Path]) -> DataFrame:
    return spark.read.parquet(str(tables["orders"]))


@pytest.mark.slow
def test_a_key_the_reference_lacks_is_quarantined_naming_the_table_and_null_keys_pass(
    spark: SparkSession, tables: dict[str, Path], tmp_path: Path
) -> None:
    reference = f"delta:{tables['users']}"
    suite = load_suite(
        write_suite(
            tmp_path, [f"isContainedInTable: {{column: user_id, table: '{reference}', key: uid}}"]
        )
    )
    df = orders(spark, tables)
    gate = apply_suite(spark, df, suite, reference_reader=read_reference)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        outcome = gate.verdict()
        assertDataFrameEqual(gate.valid, df.where("oid != 3"))
        quarantined = gate.quarantine_to_write().select(
            "oid", F.col(ERRORS_COLUMN)[0]["message"].alias("message")
        )
        message = f"user_id = u9 is not a key of the reference table {reference} (uid)"
        assertDataFrameEqual(
            quarantined, spark.createDataFrame([(3, message)], "oid int, message string")
        )
    finally:
        gate.release()
    (result,) = outcome.results
    assert result.status == "failure" and result.blames_rows
    assert result.metric == pytest.approx(4 / 5)  # found or NULL: the share of rows kept
    assert gate.reasons() == {"isContainedInTable(user_id)": 1}
    plain = verify(spark, df, suite, reference_reader=read_reference).results[0]
    assert (plain.status, plain.metric, plain.message) == (
        result.status,
        result.metric,
        result.message,
    )


def test_a_composite_key_matches_column_by_column_and_a_null_part_passes(
    spark: SparkSession, tables: dict[str, Path], tmp_path: Path
) -> None:
    suite = load_suite(
        write_suite(
            tmp_path,
            [
                "isContainedInTable: {columns: [region, country], "
                f"table: '{tables['users']}', key: [area, code]}}"
            ],
        )
    )
    df = orders(spark, tables)
    gate = apply_suite(spark, df, suite, reference_reader=read_reference)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        outcome = gate.verdict()
        # (us, ca) is a reference row whose uid is NULL: the composite key is still listed.
        assertDataFrameEqual(gate.valid.select("oid"), df.where("oid != 5").select("oid"))
        messages = [
            r[0] for r in gate.quarantine.select(F.col(ERRORS_COLUMN)[0]["message"]).collect()
        ]
    finally:
        gate.release()
    assert messages == [
        f"region = eu, country = it is not a key of the reference table {tables['users']} "
        "(area, code)"
    ]
    assert outcome.results[0].metric == pytest.approx(4 / 5)


def test_a_threshold_judges_the_share_found_and_quarantines_nothing(
    spark: SparkSession, tables: dict[str, Path], tmp_path: Path
) -> None:
    reference = f"delta:{tables['users']}"
    suite = load_suite(
        write_suite(
            tmp_path,
            [
                f"isContainedInTable: {{column: user_id, table: '{reference}', key: uid, "
                "min: 0.9}",
                f"isContainedInTable: {{column: user_id, table: '{reference}', key: uid, "
                "where: \"region = 'eu'\"}",
            ],
        )
    )
    df = orders(spark, tables)
    gate = apply_suite(spark, df, suite, reference_reader=read_reference)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        outcome = gate.verdict()
        assertDataFrameEqual(gate.valid, df)
    finally:
        gate.release()
    threshold, filtered = outcome.results
    assert (threshold.status, threshold.metric, threshold.blames_rows) == ("failure", 0.8, False)
    assert (filtered.status, filtered.metric) == ("success", 1.0)


@pytest.mark.slow
def test_validate_reports_the_share_found_and_saves_it_in_the_history(
    spark: SparkSession, settings: Settings, tables: dict[str, Path], tmp_path: Path
) -> None:
    suite = write_suite(
        tmp_path,
        [f"isContainedInTable: {{column: user_id, table: 'delta:{tables['users']}', key: uid}}"],
    )
    output = tmp_path / "out"
    code = main(
        [
            "validate",
            str(suite),
            "--input",
            str(tables["orders"]),
            "--output",
            str(output),
            "--quiet",
        ]
    )
    assert code == 1
    report = json.loads((output / "report.json").read_text())
    (constraint,) = report["constraints"]
    assert constraint["type"] == "isContainedInTable"
    assert constraint["metric"] == pytest.approx(0.8)
    assert report["quarantine_reasons"] == {"isContainedInTable(user_id)": 1}
    assert report["counts"] == {"rows_in": 5, "rows_valid": 4, "rows_quarantined": 1}
    history = load_history(spark, settings.metrics_repository_path, "orders")
    saved = history.where(F.col("run_id") == report["run_id"]).select("name", "instance", "value")
    instance = f"user_id contained in table delta:{tables['users']}(uid)"
    assertDataFrameEqual(
        saved,
        spark.createDataFrame(
            [("Compliance", instance, 0.8)], "name string, instance string, value double"
        ),
    )


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("missing", "uid", "reference table 'delta:{root}/missing' cannot be read"),
        ("users", "user_id", "the reference table 'delta:{root}/users' has no column 'user_id'"),
    ],
)
def test_a_missing_reference_table_or_key_exits_2_and_writes_nothing(
    tables: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    table: str,
    key: str,
    expected: str,
) -> None:
    reference = f"delta:{tables['root'] / table}"
    suite = write_suite(
        tmp_path, [f"isContainedInTable: {{column: user_id, table: '{reference}', key: {key}}}"]
    )
    output = tmp_path / "out"
    code = main(
        [
            "validate",
            str(suite),
            "--input",
            str(tables["orders"]),
            "--output",
            str(output),
            "--quiet",
        ]
    )
    assert code == 2
    assert expected.format(root=tables["root"]) in capsys.readouterr().err
    assert not output.exists()


def test_a_gate_without_a_reader_refuses_the_constraint(
    spark: SparkSession, tables: dict[str, Path], tmp_path: Path
) -> None:
    suite = load_suite(
        write_suite(
            tmp_path,
            [f"isContainedInTable: {{column: user_id, table: '{tables['users']}', key: uid}}"],
        )
    )
    with pytest.raises(SuiteError, match="cannot read reference tables"):
        apply_suite(spark, orders(spark, tables), suite)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ("{column: a, columns: [a], table: t}", "give either column or columns"),
        ("{columns: [a, b], table: t, key: k}", "one reference column per key column"),
        ("{column: a}", "table"),
    ],
)
def test_malformed_arguments_are_refused_before_spark(
    tmp_path: Path, arguments: str, problem: str
) -> None:
    with pytest.raises(SuiteError, match=problem):
        load_suite(write_suite(tmp_path, [f"isContainedInTable: {arguments}"]))


def test_a_contract_export_keeps_the_constraint_as_a_lakegate_rule_that_reads_back(
    tmp_path: Path,
) -> None:
    """ODCS relationships name schema objects, not tables: the rule goes as `engine: lakegate`."""
    suite = load_suite(
        write_suite(
            tmp_path,
            [
                "isContainedInTable: {columns: [region, country], table: 'delta:/d/users', "
                "key: [area, code], min: 0.9}"
            ],
        )
    )
    text, _ = contract_yaml(suite)
    contract = tmp_path / "contract.yaml"
    contract.write_text(text)
    (back,) = load_suite(contract).constraints
    assert (back.kind, back.args) == ("isContainedInTable", suite.constraints[0].args)


@pytest.mark.slow
def test_a_stream_quarantines_a_row_whose_key_the_reference_lacks(
    spark: SparkSession, tables: dict[str, Path], tmp_path: Path
) -> None:
    source, output = tmp_path / "landing", tmp_path / "out"
    source.mkdir()
    batch = pd.DataFrame({"oid": [1, 2, 3], "user_id": ["u1", "u7", None]})
    batch.to_parquet(source / "part-000.parquet", index=False)
    os.utime(source / "part-000.parquet", (1_700_000_000, 1_700_000_000))
    reference = f"delta:{tables['users']}"
    suite = write_suite(
        tmp_path, [f"isContainedInTable: {{column: user_id, table: '{reference}', key: uid}}"]
    )
    code = main(
        [
            "stream", "validate", str(suite), "--source", f"parquet:{source}",
            "--output", str(output), "--checkpoint", str(tmp_path / "checkpoint"),
            "--trigger", "available-now", "--quiet",
        ]
    )  # fmt: skip
    assert code == 1
    valid = spark.read.format("delta").load(str(output / "valid"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(
        valid, spark.createDataFrame([(1, "u1"), (3, None)], "oid long, user_id string")
    )
    message = f"user_id = u7 is not a key of the reference table {reference} (uid)"
    assertDataFrameEqual(
        quarantine.select("oid", F.col(ERRORS_COLUMN)[0]["message"].alias("message")),
        spark.createDataFrame([(2, message)], "oid long, message string"),
    )
