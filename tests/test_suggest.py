"""Suggested suites: Deequ's suggestions as lakegate constraints, each proven on the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from checks.deequ_run import verify
from checks.suggestions import prove_suggestions, suggest_constraints
from checks.suite import check_against_schema
from checks.suite_formats import load_suite
from spark_jobs.cli import main


def _row(i: int) -> tuple[int, str, float, str | None]:
    status = ["new", "paid", "shipped"][i % 3]
    note = None if i % 4 == 0 else f"note {i}"
    return (i, status, float(i % 50), note)


@pytest.fixture(scope="module")
def orders(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 clean rows, then three that a profile of the first 1000 never saw."""
    rows = [_row(i) for i in range(1, 1001)]
    rows += [(1000, "lost", -5.0, "late"), (1001, "new", 3.0, None), (1002, "paid", 4.0, None)]
    path = tmp_path_factory.mktemp("orders") / "orders.parquet"
    frame = spark.createDataFrame(rows, "id long, status string, amount double, note string")
    frame.coalesce(1).write.parquet(str(path))
    return path


def test_suggestions_say_what_in_the_data_suggested_them(spark: SparkSession, orders: Path) -> None:
    df = spark.read.parquet(str(orders)).where("id < 1000")
    suggestions = suggest_constraints(spark, df)
    by_kind = {(s.kind, s.column): s for s in suggestions}
    assert ("isComplete", "id") in by_kind and ("isUnique", "id") in by_kind
    assert ("isNonNegative", "amount") in by_kind
    contained = by_kind[("isContainedIn", "status")].constraint["isContainedIn"]
    assert sorted(contained["values"]) == ["new", "paid", "shipped"]
    completeness = by_kind[("hasCompleteness", "note")]
    assert completeness.rule == "RetainCompletenessRule"
    assert completeness.current_value.startswith("Completeness: 0.75")
    assert 0 < completeness.constraint["hasCompleteness"]["min"] < 0.75


@pytest.mark.slow
def test_suggestions_from_part_of_a_table_are_relaxed_until_the_table_passes(
    spark: SparkSession, orders: Path
) -> None:
    table = spark.read.parquet(str(orders))
    suggestions = suggest_constraints(spark, table.where("id < 1000"))  # misses the odd rows
    suggested = prove_suggestions(spark, table, "orders", suggestions)
    kept = {(s.kind, s.column): s for s in suggested.kept}
    # a duplicated id: isUnique becomes a uniqueness ratio the table meets
    unique = kept[("hasUniqueness", "id")]
    assert "relaxed" in unique.note
    assert 0.99 < unique.constraint["hasUniqueness"]["min"] < 1
    # one negative amount and one unseen status: ratios too
    assert "relaxed" in kept[("isNonNegative", "amount")].note
    assert kept[("isContainedIn", "status")].constraint["isContainedIn"]["min"] < 1
    assert ("isComplete", "id") in kept and not kept[("isComplete", "id")].note
    outcome = verify(spark, table, suggested.suite())
    assert outcome.status == "success", [r for r in outcome.results if r.status != "success"]
    # and the unrelaxed suggestions would have failed on this table
    naive = prove_suggestions(spark, table.where("id < 1000"), "orders", suggestions)
    assert verify(spark, table, naive.suite()).status == "failure"


def _assert_passes(spark: SparkSession, df: DataFrame, suite_path: Path) -> None:
    suite = load_suite(suite_path)
    check_against_schema(suite, df.schema)
    outcome = verify(spark, df, suite)
    assert outcome.status == "success", [r for r in outcome.results if r.status != "success"]


def test_suggest_command_writes_a_commented_suite_that_passes_on_its_table(
    spark: SparkSession, orders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "suites" / "orders.yaml"
    code = main(["suggest", "--input", str(orders), "--output", str(output), "--sample", "0.5"])
    assert code == 0
    text = output.read_text()
    assert "suite: orders" in text
    assert "# Completeness: 1.0 (CompleteIfCompleteRule: 'id' is not null)" in text
    assert not list(output.parent.glob("*.tmp-*"))
    _assert_passes(spark, spark.read.parquet(str(orders)), output)
    assert "constraint(s) written to" in capsys.readouterr().out


def test_suggest_refuses_a_bad_sample_fraction(tmp_path: Path, orders: Path) -> None:
    code = main(["suggest", "--input", str(orders), "--output", str(tmp_path / "s.yaml"),
                 "--sample", "1.5"])  # fmt: skip
    assert code == 2 and not (tmp_path / "s.yaml").exists()
