"""Deequ's constraint vocabulary with Deequ's semantics, and the four bugs of issue 14.

Each rule's metric is compared with a plain PyDeequ VerificationSuite of the same Check
(`checks.deequ_run.verify`); the one-pass gate must agree with it and quarantine exactly the rows
that pulled a row-level metric below 1. Examples of every type on clean and dirty data are in
tests/test_constraints.py (ROW_LEVEL, AGGREGATE), which tests/test_one_pass.py runs through both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from test_constraints import suite_of
from test_one_pass import assert_same_verdicts, one_pass

from checks.constraint_types import CONSTRAINT_TYPES, HISTOGRAM_NULL, JVM_CHECK_METHODS
from checks.deequ_run import compile_checks, verify
from checks.gate import ERRORS_COLUMN, apply_suite
from checks.suite import SuiteError, check_against_schema, check_sql_conditions
from checks.suite_formats import load_suite
from lakegate_config.settings import Settings
from spark_jobs.validate import ValidateSpec, run

# Names Deequ (or Delta) cannot take as they are: a dot, a space.
ODD_SCHEMA = "rid int, `a.b` double, `c d` string, `x.y` double, `k 2` string"
ODD_ROWS = [
    (1, 1.0, "see http://a.com", 2.0, "p"),
    (2, -1.0, "see http://b.com", 0.5, "q"),
    (3, None, "nope", 4.0, "p"),
    (4, 3.0, None, 5.0, None),
    (5, 3.0, "see http://c.com", 6.0, "q"),
]


@pytest.fixture(scope="module")
def odd(spark: SparkSession) -> Iterator[DataFrame]:
    """Three partitions, cached: each job of the module's Deequ and gate runs skips the shuffle."""
    df = spark.createDataFrame(ODD_ROWS, ODD_SCHEMA).repartition(3).cache()
    df.count()
    yield df
    df.unpersist()


def blamed_rows(gate_quarantine: DataFrame) -> dict[str, set[int]]:
    rows = gate_quarantine.select("rid", F.explode(ERRORS_COLUMN).alias("e")).collect()
    found: dict[str, set[int]] = {}
    for row in rows:
        found.setdefault(row["e"]["constraint"], set()).add(row["rid"])
    return found


def test_every_deequ_method_lakegate_calls_exists_in_the_jar(spark: SparkSession) -> None:
    jvm = spark._jvm
    check_class = jvm.org.apache.spark.util.Utils.classForName(
        "com.amazon.deequ.checks.Check", True, False
    )
    methods = {m.getName() for m in check_class.getMethods()}
    # Deequ's range form of isContainedIn, and a foreign key: each as a satisfies
    lakegate_only = {"isInRange", "isContainedInTable"}
    assert set(CONSTRAINT_TYPES) - lakegate_only <= methods
    assert set(JVM_CHECK_METHODS) <= methods
    histogram = jvm.org.apache.spark.util.Utils.classForName(
        "com.amazon.deequ.analyzers.Histogram$", True, False
    )
    module = histogram.getField("MODULE$").get(None)
    assert module.NullFieldReplacement() == HISTOGRAM_NULL


def test_eq_is_exact_unless_the_suite_gives_a_tolerance(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame([(1,), (2,), (3,)], "rid int")
    suite = suite_of(
        tmp_path,
        "eq",
        ["hasSize: {eq: 3.000000001}", "hasSize: {eq: 3.000000001, tolerance: 0.00001}"],
    )
    plain = verify(spark, df, suite)
    assert [r.status for r in plain.results] == ["failure", "success"]
    assert [r.expectation for r in plain.results] == ["== 3", "== 3 ± 1e-05"]
    assert_same_verdicts(one_pass(spark, df, suite), plain)


@pytest.mark.slow
def test_validate_job_quarantines_duplicated_keys_that_hold_a_null(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    keys = [("a", None), ("a", None), (None, "x"), ("b", "x"), ("b", "x"), ("c", "y")]
    source = str(tmp_path / "keys.parquet")
    spark.createDataFrame(
        [(i, a, b) for i, (a, b) in enumerate(keys)], "rid int, a string, b string"
    ).repartition(3).write.parquet(source)
    suite_path = tmp_path / "keys.yaml"
    suite_path.write_text(
        "suite: keys\nchecks:\n  - name: key\n    constraints:\n"
        "      - isUnique: {columns: [a, b]}\n"
    )
    output = tmp_path / "out"
    spec = ValidateSpec(suite=str(suite_path), input=source, output=str(output), keep_history=False)
    result = run(spark, settings, spec)
    valid = spark.read.format("delta").load(str(output / "valid"))
    assertDataFrameEqual(valid.select("rid"), spark.createDataFrame([(2,), (5,)], "rid int"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assert sorted(r.rid for r in quarantine.collect()) == [0, 1, 3, 4]
    report = json.loads((output / "report.json").read_text())
    assert report["constraints"][0]["metric"] == pytest.approx(1 / 3)
    assert result.counts.rows_quarantined == 4


ODD_ENTRIES = [
    "isComplete: a.b",
    "isComplete: '`c d`'",  # the back-quoted spelling names the same column
    "areComplete: {columns: [a.b, c d]}",
    "haveCompleteness: {columns: [a.b, c d], min: 0.5}",
    "areAnyComplete: {columns: [a.b, c d]}",
    "haveAnyCompleteness: {columns: [a.b, k 2], eq: 1}",
    "hasCompleteness: {column: a.b, min: 0.5}",
    "isUnique: a.b",
    "isUnique: {columns: [a.b, k 2]}",
    "isPrimaryKey: {columns: [c d, a.b]}",
    "areUnique: {columns: [a.b, x.y]}",
    "hasUniqueness: {columns: [a.b], max: 1}",
    "hasDistinctness: {columns: [a.b, c d], max: 1}",
    "hasUniqueValueRatio: {columns: [a.b], max: 1}",
    "hasDuplicateRowCount: {columns: [a.b], eq: 2}",
    "hasNumberOfDistinctValues: {column: c d, min: 3}",
    "hasHistogramValues: {column: k 2, value: p, measure: absolute, eq: 2}",
    "hasMutualInformation: {column_a: c d, column_b: k 2, min: 0}",
    "isContainedIn: {column: k 2, values: [p, q]}",
    "isInRange: {column: a.b, min: -1, max: 3}",
    "isNonNegative: a.b",
    "isPositive: x.y",
    "containsURL: c d",
    "hasPattern: {column: c d, pattern: 'http'}",
    "hasMinLength: {column: c d, min: 1}",
    "hasMin: {column: a.b, min: -1}",
    "hasMean: {column: a.b, gt: 0}",
    "hasStandardDeviation: {column: a.b, lt: 10}",
    "hasApproxQuantile: {column: a.b, quantile: 0.5, max: 3}",
    "hasExactQuantile: {column: a.b, quantile: 0.5, max: 3}",
    "hasVariance: {column: a.b, lt: 10}",
    "hasSkewness: {column: a.b, lt: 10}",
    "hasKurtosis: {column: a.b, lt: 10}",
    "hasRange: {column: a.b, eq: 4}",
    "hasInterquartileRange: {column: a.b, lt: 10}",
    "hasZerosCount: {column: a.b, eq: 0}",
    "hasEntropy: {column: c d, gt: 0}",
    "hasApproxCountDistinct: {column: a.b, eq: 3}",
    "hasDataType: {column: a.b, datatype: Fractional}",
    "hasCorrelation: {column_a: a.b, column_b: x.y, lt: 1}",
    "isLessThan: {column_a: a.b, column_b: x.y}",
    "satisfies: {name: odd names, condition: '`a.b` < `x.y` OR `c d` IS NULL'}",
]


@pytest.mark.slow
def test_dotted_and_spaced_column_names_work_unquoted_in_every_constraint(
    spark: SparkSession, odd: DataFrame, tmp_path: Path
) -> None:
    suite = suite_of(tmp_path, "odd", ODD_ENTRIES)
    check_against_schema(suite, odd.schema)
    check_sql_conditions(odd, suite)
    plain = verify(spark, odd, suite)
    # One gate gives both the one-pass verdict and the quarantine (as validate uses it).
    gate = apply_suite(spark, odd, suite)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        blamed = blamed_rows(gate.quarantine)
        assert_same_verdicts(gate.verdict(), plain)
    finally:
        gate.release()
    broken = {
        r.constraint: r.message
        for r in plain.results
        if r.message and not r.message.startswith("Value: ")
    }
    assert broken == {}  # every constraint was computed: no exception in any message
    assert {r.constraint for r in plain.failed()} == {
        "isComplete(a.b)",
        "isComplete(c d)",
        "areComplete(a.b,c d)",
        "isUnique(a.b)",
        "isNonNegative(a.b)",
        "containsURL(c d)",
        "hasPattern(c d)",
        "isLessThan(a.b,x.y)",
        "satisfies(odd names)",
    }
    assert blamed == {
        "isComplete(a.b)": {3},
        "isComplete(c d)": {4},
        "areComplete(a.b,c d)": {3, 4},
        "isUnique(a.b)": {4, 5},
        "isNonNegative(a.b)": {2},
        "containsURL(c d)": {3, 4},
        "hasPattern(c d)": {3, 4},
        "isLessThan(a.b,x.y)": {3},  # NULL fails, as in Deequ
        "satisfies(odd names)": {3},  # NULL OR false is not true
    }


@pytest.mark.slow
def test_a_delta_output_keeps_column_names_with_spaces(
    spark: SparkSession, settings: Settings, odd: DataFrame, tmp_path: Path
) -> None:
    source = str(tmp_path / "odd.parquet")
    odd.write.parquet(source)
    suite_path = tmp_path / "odd.yaml"
    suite_path.write_text(
        "suite: odd\nchecks:\n  - name: names\n    constraints:\n"
        "      - isComplete: c d\n      - isNonNegative: a.b\n"
    )
    output = tmp_path / "out"
    plain_source, plain_suite = str(tmp_path / "plain.parquet"), tmp_path / "plain.yaml"
    odd.select("rid").write.parquet(plain_source)
    plain_suite.write_text(
        "suite: plain\nchecks:\n  - name: rid\n    constraints:\n      - isComplete: rid\n"
    )
    # A table without column mapping first; then it is turned on, and kept on the next run.
    for suite_file, input_path in [
        (plain_suite, plain_source),
        (suite_path, source),
        (suite_path, source),
    ]:
        spec = ValidateSpec(
            suite=str(suite_file), input=input_path, output=str(output), keep_history=False
        )
        run(spark, settings, spec)
    valid = spark.read.format("delta").load(str(output / "valid"))
    assert valid.columns == odd.columns
    assertDataFrameEqual(valid, odd.where("rid in (1, 3, 5)"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assert quarantine.columns == [*odd.columns, ERRORS_COLUMN]
    assert sorted(r.rid for r in quarantine.collect()) == [2, 4]


def test_histogram_rules_refuse_a_dotted_column_before_spark(
    odd: DataFrame, tmp_path: Path
) -> None:
    suite = suite_of(tmp_path, "hist", ["hasNumberOfDistinctValues: {column: a.b, eq: 3}"])
    with pytest.raises(SuiteError, match=r"histogram cannot read column 'a\.b'.*rename it"):
        check_against_schema(suite, odd.schema)


def test_satisfies_quarantines_rows_by_the_condition_name(
    spark: SparkSession, odd: DataFrame, tmp_path: Path
) -> None:
    suite = suite_of(
        tmp_path,
        "sat",
        [
            "satisfies: {name: ordered, condition: '`a.b` <= `x.y`'}",  # NULL a.b: not met
            "satisfies: {name: ordered p, condition: '`a.b` <= `x.y`', where: \"`k 2` = 'p'\"}",
            "satisfies: {name: mostly ordered, condition: '`a.b` <= `x.y`', min: 0.6}",
        ],
    )
    check_sql_conditions(odd, suite)
    plain = verify(spark, odd, suite)
    assert [(r.status, r.metric) for r in plain.results] == [
        ("failure", 0.8),
        ("failure", 0.5),
        ("success", 0.8),
    ]
    assert_same_verdicts(one_pass(spark, odd, suite), plain)
    gate = apply_suite(spark, odd, suite)
    try:
        messages = gate.quarantine.select("rid", F.explode(ERRORS_COLUMN).alias("e")).select(
            "rid", "e.constraint", "e.message"
        )
        assertDataFrameEqual(
            messages,
            spark.createDataFrame(
                [
                    (3, "satisfies(ordered)", "ordered: `a.b` <= `x.y` does not hold"),
                    (
                        3,
                        "satisfies(ordered p) where `k 2` = 'p'",
                        "ordered p: `a.b` <= `x.y` does not hold",
                    ),
                ],
                "rid int, constraint string, message string",
            ),
        )
    finally:
        gate.release()


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("amount > 0", "is not valid SQL on this table"),
        ("`a.b` +", "is not valid SQL on this table"),
        ("`a.b` + 1", "is double, not a boolean"),
    ],
)
def test_a_satisfies_condition_that_does_not_analyse_is_refused_before_spark_runs(
    odd: DataFrame, tmp_path: Path, condition: str, reason: str
) -> None:
    suite = suite_of(tmp_path, "bad", [f"satisfies: {{name: rule, condition: '{condition}'}}"])
    with pytest.raises(SuiteError, match=f"bad.yaml:6: .*satisfies.*{reason}"):
        check_sql_conditions(odd, suite)


def test_has_data_type_reports_the_share_deequ_asserts_on_for_any_column_type(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(
        [(1, "1"), (2, "2.5"), (3, "x"), (None, None)], "n bigint, t string"
    ).repartition(2)
    suite = suite_of(
        tmp_path,
        "types",
        [
            "hasDataType: {column: n, datatype: Integral}",
            "hasDataType: {column: n, datatype: Numeric}",
            "hasDataType: {column: t, datatype: Integral, min: 0.3}",
            "hasDataType: {column: t, datatype: Numeric, where: 'n > 1'}",
        ],
    )
    check_against_schema(suite, df.schema)  # a bigint column is accepted, as by Deequ
    plain = verify(spark, df, suite)
    # NULL is Deequ's `Unknown`, left out of the share.
    assert [(r.status, r.metric) for r in plain.results] == [
        ("success", 1.0),
        ("success", 1.0),
        ("success", pytest.approx(1 / 3)),
        ("failure", 0.5),
    ]
    assert_same_verdicts(one_pass(spark, df, suite), plain)


def test_is_non_negative_casts_text_as_deequ_does_and_refuses_dates(
    spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(
        [("1", True), ("-2", False), ("x", None), (None, True)], "t string, b boolean"
    ).withColumn("d", F.current_date())
    suite = suite_of(tmp_path, "cast", ["isNonNegative: t", "isPositive: {column: b, min: 0.5}"])
    check_against_schema(suite, df.schema)
    plain = verify(spark, df, suite)
    # 'x' casts to NULL and NULL is compliant: only '-2' breaks the rule; false is 0.
    assert [(r.status, r.metric) for r in plain.results] == [("failure", 0.75), ("success", 0.75)]
    gate = apply_suite(spark, df, suite)
    try:
        assert [r.t for r in gate.quarantine.collect()] == ["-2"]
    finally:
        gate.release()
    dated = suite_of(tmp_path, "date", ["isNonNegative: d"])
    with pytest.raises(SuiteError, match="column 'd' is date, but this constraint needs a number"):
        check_against_schema(dated, df.schema)


def test_completeness_of_plain_columns_is_deequs_own_constraint(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pydeequ.checks import Check, CheckLevel

    suite = suite_of(
        tmp_path,
        "complete",
        [
            "areComplete: {columns: [a, b, c]}",
            "haveAnyCompleteness: {columns: [a, b], min: 0.5}",
        ],
    )
    ours = compile_checks(spark, suite)[0]._Check.constraints()
    deequ = (
        Check(spark, CheckLevel.Error, "all")
        .areComplete(["a", "b", "c"])
        .haveAnyCompleteness(["a", "b"], lambda x: x >= 0.5)
    )._Check.constraints()
    assert [ours.apply(i).toString() for i in range(2)] == [
        deequ.apply(i).toString() for i in range(2)
    ]


def test_histogram_values_count_null_as_a_value_of_its_own(
    spark: SparkSession, odd: DataFrame, tmp_path: Path
) -> None:
    entries = [
        "hasHistogramValues: {column: k 2, value: null, measure: absolute, eq: 1}",
        "hasHistogramValues: {column: k 2, value: null, eq: 0.2}",
        "hasHistogramValues: {column: k 2, value: q, where: 'rid > 1', eq: 0.5}",
        "hasHistogramValues: {column: k 2, value: absent, max: 0}",
        "hasHistogramValues: {column: rid, value: 3, measure: absolute, eq: 1}",
        "hasHistogramValues: {column: k 2, value: p, measure: absolute, gt: 2}",
    ]
    suite = suite_of(tmp_path, "histogram", entries)
    check_against_schema(suite, odd.schema)
    plain = verify(spark, odd, suite)
    assert [(r.status, r.metric) for r in plain.results] == [
        ("success", 1.0),
        ("success", 0.2),
        ("failure", 0.4),  # as Deequ: under `where`, 2 rows of the table's 5
        ("success", 0.0),
        ("success", 1.0),
        ("failure", 2.0),
    ]
    assert_same_verdicts(one_pass(spark, odd, suite), plain)


def test_the_suite_example_with_new_rules_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "suite: s\nchecks:\n  - name: c\n    constraints:\n"
        "      - satisfies: {name: positive, condition: 'amount > 0', min: 0.9}\n"
        "      - isInRange: {column: amount, min: 0, include_min: false}\n"
    )
    suite = load_suite(path)
    assert [c.id for c in suite.constraints] == ["satisfies(positive)", "isInRange(amount)"]
