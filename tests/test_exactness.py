"""Exactness and names: the row rules and Deequ compare the same way, on every awkward input.

Each constraint judged by a predicate (`isInRange`, `isContainedIn`) has one SQL text that Deequ
evaluates and the row rule parses; bounds are kept as written, values typed by the column.
Column names holding dots, spaces, back-quotes or unicode, keys naming a column twice and
reserved names in any case either work as in a plain Deequ run or are refused (exit 2), never
exit 70. A property test pits the one-pass gate against a plain `VerificationSuite` run.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import (
    DecimalType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)
from pyspark.testing import assertDataFrameEqual

from checks.deequ_run import VerificationOutcome, verify
from checks.gate import apply_suite, check_reserved_columns
from checks.suite import Suite, SuiteError, check_against_schema
from checks.suite_formats import load_suite

TWO_53 = 2**53
DEC = DecimalType(38, 18)


def suite_of(tmp_path: Path, entries: list[str], name: str = "s") -> Suite:
    body = "suite: t\nchecks:\n  - name: all\n    level: error\n    constraints:\n"
    body += "".join(f"      - {entry}\n" for entry in entries)
    path = tmp_path / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    return load_suite(path)


def entry(kind: str, **args: Any) -> str:
    """One constraint as a YAML flow mapping (JSON is YAML): names and values quoted safely."""
    return f"{kind}: {json.dumps(args, ensure_ascii=False)}"


def gate_run(
    spark: SparkSession, df: DataFrame, suite: Suite
) -> tuple[VerificationOutcome, list[Row], list[Row]]:
    """Apply the suite as validate does: the verdict, the valid rows and the quarantined rows."""
    gate = apply_suite(spark, df, suite)
    try:
        valid = gate.valid.collect()  # the write that observes the metrics
        quarantined = gate.quarantine_to_write().collect()
        return gate.verdict(), valid, quarantined
    finally:
        gate.release()


def statuses(outcome: VerificationOutcome) -> list[tuple[str, str, float | None]]:
    return [(r.constraint, r.status, r.metric) for r in outcome.results]


def test_eq_one_with_a_tolerance_is_a_threshold_that_blames_no_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(
        [(1, "see https://example.com"), (2, "no link"), (3, "http://a.org")], "id int, d string"
    )
    loose = suite_of(tmp_path, [entry("containsURL", column="d", eq=1, tolerance=0.7)])
    outcome, valid, quarantined = gate_run(spark, df, loose)
    assert statuses(outcome) == [("containsURL(d)", "success", pytest.approx(2 / 3))]
    assert quarantined == []
    assertDataFrameEqual(valid, df.collect())
    exact = suite_of(tmp_path, [entry("containsURL", column="d", eq=1, tolerance=0)], "exact")
    outcome, _, quarantined = gate_run(spark, df, exact)
    assert [r.status for r in outcome.results] == ["failure"]
    assert [r["id"] for r in quarantined] == [2]  # tolerance 0 is still "every row"


def test_in_range_compares_decimals_and_longs_beyond_2_53_exactly(
    spark: SparkSession, tmp_path: Path
) -> None:
    schema = StructType([StructField("d", DEC), StructField("n", LongType())])
    rows = [
        (Decimal("1.000000000000000001"), TWO_53 + 1),
        (Decimal("1"), TWO_53),
        (None, None),
    ]
    df = spark.createDataFrame(rows, schema)
    suite = suite_of(
        tmp_path,
        [
            entry("isInRange", column="d", max=1),
            entry("isInRange", column="n", max=TWO_53),
            entry("isInRange", column="d", min="1.000000000000000001"),  # quoted: every digit
        ],
    )
    outcome, valid, quarantined = gate_run(spark, df, suite)
    assert [r.status for r in outcome.results] == ["failure", "failure", "failure"]
    assert statuses(outcome) == statuses(verify(spark, df, suite))
    assert [r.metric for r in outcome.results] == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assertDataFrameEqual(valid, [Row(d=None, n=None)])
    reasons = {r["d"]: sorted(e["constraint"] for e in r["_lakegate_errors"]) for r in quarantined}
    assert reasons == {
        Decimal("1.000000000000000001"): [
            "isInRange(d) in check 'all', constraint 1",
            "isInRange(n)",
        ],
        Decimal("1.000000000000000000"): ["isInRange(d) in check 'all', constraint 3"],
    }


def test_bounds_are_kept_as_written_and_refused_when_spark_cannot_hold_them(
    tmp_path: Path,
) -> None:
    suite = suite_of(tmp_path, [entry("isInRange", column="d", min="0.1", max=TWO_53 + 1)])
    args = suite.constraints[0].args
    assert (args.min, args.max) == (Decimal("0.1"), TWO_53 + 1)
    assert type(args.max) is int
    for bad, why in [("nan", "not a finite number"), ("1" * 39, "more than 38 digits")]:
        with pytest.raises(SuiteError, match=why):
            suite_of(tmp_path, [entry("isInRange", column="d", max=bad)], "bad")


def test_contained_in_compares_values_typed_by_the_column(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(
        [("true", 1, 0.1, True), ("false", 2, 0.5, False), ("True", 3, None, None)],
        "s string, i int, f float, b boolean",
    )
    suite = suite_of(
        tmp_path,
        [
            "isContainedIn: {column: s, values: [true, false]}",  # the text `true`, not `True`
            "isContainedIn: {column: i, values: [1.0, 2, '3.5']}",  # numbers as numbers
            "isContainedIn: {column: f, values: [0.1, 0.5]}",  # a FLOAT equals the float 0.1
            "isContainedIn: {column: b, values: ['TRUE', false]}",
        ],
    )
    outcome, _, quarantined = gate_run(spark, df, suite)
    assert statuses(outcome) == statuses(verify(spark, df, suite))
    assert [r.status for r in outcome.results] == ["failure", "failure", "success", "success"]
    assert len(quarantined) == 1
    assert quarantined[0]["s"] == "True"
    assert [e["constraint"] for e in quarantined[0]["_lakegate_errors"]] == [
        "isContainedIn(s)",
        "isContainedIn(i)",
    ]


@pytest.mark.slow
def test_a_back_quoted_name_works_in_key_and_metric_constraints(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(
        [(1, "http://a.org", 1), (2, "http://b.org", 1), (3, "http://c.org", 2)],
        "`a``b` int, `u``rl` string, `k``ey` int",
    )
    suite = suite_of(
        tmp_path,
        [
            entry("isUnique", column="a`b"),
            entry("isUnique", column="k`ey"),  # duplicated: the duplicate-key path
            entry("isComplete", column="a`b"),
            entry("hasMin", column="a`b", eq=1),
            entry("containsURL", column="u`rl"),
            entry("hasUniqueness", columns=["a`b", "k`ey"], eq=1),
            entry("isInRange", column="a`b", min=1, max=3),
            entry("isContainedIn", column="k`ey", values=[1, 2]),
        ],
    )
    check_against_schema(suite, df.schema)
    outcome, valid, quarantined = gate_run(spark, df, suite)
    assert [r.status for r in outcome.results] == ["success", "failure", *["success"] * 6]
    assert statuses(outcome) == statuses(verify(spark, df, suite))
    assert sorted(r["a`b"] for r in quarantined) == [1, 2]
    assert [r["a`b"] for r in valid] == [3]


def test_a_key_naming_one_column_twice_is_judged_as_a_plain_deequ_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame([(1,), (2,), (2,), (None,)], "d int")
    suite = suite_of(
        tmp_path,
        [
            "hasUniqueness: {columns: [d, d], between: [0.33, 0.34]}",  # 1 of 3 non-null keys
            "hasDistinctness: {columns: [d, d], between: [0.66, 0.67]}",  # 2 of 3
            "isUnique: {columns: [d, d]}",
            "hasUniqueness: {columns: [d], between: [0.33, 0.34]}",
        ],
    )
    outcome, _, quarantined = gate_run(spark, df, suite)
    assert statuses(outcome) == statuses(verify(spark, df, suite))
    assert [r.status for r in outcome.results] == ["success", "success", "failure", "success"], (
        statuses(outcome)
    )
    assert sorted(r["d"] for r in quarantined) == [2, 2]


@pytest.mark.parametrize("name", ["_LAKEGATE_ERRORS", "_Lakegate_Dup_0", "_lakegate_errors"])
def test_reserved_names_are_refused_in_any_case(spark: SparkSession, name: str) -> None:
    df = spark.createDataFrame([], StructType([StructField(name, StringType())]))
    with pytest.raises(SuiteError, match="reserves for its own output"):
        check_reserved_columns(df)


def test_materialize_reads_dotted_and_back_quoted_key_columns(spark: SparkSession) -> None:
    from spark_jobs.materialize import check_unique_keys, latest_per_key

    df = spark.createDataFrame(
        [("a", 1, 10), ("a", 2, 20), ("b", 1, 30)], "`user.id` string, `t``s` int, rows int"
    )
    latest = latest_per_key(df, ["user.id"], "t`s")
    assertDataFrameEqual(
        latest,
        [
            Row(**{"user.id": "a", "t`s": 2, "rows": 20}),
            Row(**{"user.id": "b", "t`s": 1, "rows": 30}),
        ],
    )
    check_unique_keys(latest, ["user.id"], "t`s")  # one row per key: no error


# ---- property test: the one-pass gate against a plain VerificationSuite run ----------------

ODD_NAMES = ["a.b", "c d", "a`b", "ünï", "x.y`z", "Amount", "n", "`q`r"]


@st.composite
def awkward_tables(draw: st.DrawFn) -> tuple[list[str], list[tuple[Any, ...]]]:
    names = draw(st.lists(st.sampled_from(ODD_NAMES), min_size=3, max_size=3, unique_by=str.lower))
    decimals = st.none() | st.integers(-3, 3).map(lambda k: Decimal(1) + Decimal(k) / 10**18)
    longs = st.none() | st.integers(-2, 2).map(lambda k: TWO_53 + k)
    doubles = st.none() | st.sampled_from([float("nan"), 0.1, -0.0, 1.5, 1e300])
    rows = draw(st.lists(st.tuples(decimals, longs, doubles), max_size=5))
    return names, rows


def _suite_entries(names: list[str], data: st.DataObject) -> list[str]:
    d, n, x = names
    dec_bound = str(Decimal(1) + Decimal(data.draw(st.integers(-2, 2))) / 10**18)
    long_bound = TWO_53 + data.draw(st.integers(-2, 2))
    return [
        entry("isInRange", column=d, min=dec_bound),
        entry("isInRange", column=n, max=long_bound),
        entry("isInRange", column=x, min=0, max=1.5),
        entry("isContainedIn", column=n, values=[TWO_53, TWO_53 + 1]),
        entry("isContainedIn", column=d, values=[dec_bound, 1.0]),
        entry("isContainedIn", column=x, values=[0.1, 1.5]),
        entry("isComplete", column=d),
        entry("isUnique", column=n),
        entry("isUnique", columns=[n, d]),
        entry("hasMin", column=n, min=TWO_53),
        entry("hasMax", column=d, max=1),
        entry("hasUniqueness", columns=[x, x], min=0.5),
        entry("isNonNegative", column=x),
    ]


@settings(
    max_examples=6,  # each example is a gate run and a plain run (~20 s on a loaded machine)
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(table=awkward_tables(), data=st.data())
@pytest.mark.slow
def test_the_gate_judges_awkward_tables_as_a_plain_verification_suite(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    table: tuple[list[str], list[tuple[Any, ...]]],
    data: st.DataObject,
) -> None:
    names, rows = table
    schema = StructType(
        [
            StructField(names[0], DEC),
            StructField(names[1], LongType()),
            StructField(names[2], DoubleType()),
        ]
    )
    df = spark.createDataFrame(rows, schema)
    suite = suite_of(tmp_path_factory.mktemp("prop"), _suite_entries(names, data))
    check_against_schema(suite, df.schema)
    one_pass, valid, quarantined = gate_run(spark, df, suite)  # GateInconsistent would raise
    assert statuses(one_pass) == statuses(verify(spark, df, suite))
    assert len(valid) + len(quarantined) == len(rows)


# ---- the corpus of awkward data through the whole command: never exit 70 --------------------

CORPUS_SUITE = [
    entry("isComplete", column="a.b"),
    entry("isUnique", column="a`b"),
    entry("isInRange", column="dec", max=1),
    entry("isInRange", column="big", max=TWO_53),
    entry("isContainedIn", column="c d", values=[True, False]),
    entry("hasMin", column="ünï", min=0),
    entry("containsURL", column="c d", eq=1, tolerance=0.7),
    entry("hasUniqueness", columns=["big", "big"], min=0.5),
    entry("isNonNegative", column="ünï"),
]


def _corpus_table(spark: SparkSession, empty: bool, extra: str | None) -> DataFrame:
    fields = [
        StructField("a.b", StringType()),
        StructField("a`b", LongType()),
        StructField("dec", DEC),
        StructField("big", LongType()),
        StructField("c d", StringType()),
        StructField("ünï", DoubleType()),
        *([StructField(extra, StringType())] if extra else []),
    ]
    rows = [
        ("x", 1, Decimal("1.000000000000000001"), TWO_53 + 1, "true", float("nan")),
        (None, 1, None, None, None, None),
        ("y", 2, Decimal("0.5"), TWO_53, "http://a.org", -0.0),
    ]
    rows = [] if empty else [(*r, *(["r"] if extra else [])) for r in rows]
    return spark.createDataFrame(rows, StructType(fields))


@pytest.mark.parametrize(
    ("case", "empty", "extra", "expected"),
    [
        ("awkward names and values", False, None, 1),
        ("an empty table", True, None, 1),
        ("a reserved name in capitals", False, "_LAKEGATE_ERRORS", 2),
    ],
)
@pytest.mark.slow
def test_validate_never_ends_in_an_internal_error_on_the_awkward_corpus(
    spark: SparkSession,
    tmp_path: Path,
    case: str,
    empty: bool,
    extra: str | None,
    expected: int,
) -> None:
    from spark_jobs.cli import main

    source = tmp_path / "in"
    _corpus_table(spark, empty, extra).write.parquet(str(source))
    suite = tmp_path / "suite.yaml"
    suite_of(tmp_path, CORPUS_SUITE)  # parses
    suite.write_text((tmp_path / "s.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    args = ["validate", str(suite), "--input", str(source), "--output", str(tmp_path / "o")]
    code = main([*args, "--quiet"])
    assert code != 70, case
    assert code == expected, case


def test_histogram_rules_refuse_a_back_quoted_column_with_the_fix(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame([("x",)], "`a``b` string")
    suite = suite_of(tmp_path, [entry("hasHistogramValues", column="a`b", value="x", min=0.5)])
    with pytest.raises(SuiteError, match="back-quote in its name"):
        verify(spark, df, suite)
