"""Every constraint type passes on clean data, fails on dirty data, and blames the right rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from checks.deequ_run import VerificationOutcome, verify
from checks.gate import ERRORS_COLUMN, apply_suite
from checks.suite import Suite, check_against_schema
from checks.suite_formats import load_suite

SCHEMA = (
    "rid int, id long, name string, email string, site string, category string, "
    "amount double, qty long, low double, high double, code string, num_text string, "
    "card string, ssn string"
)
CARD, SSN = "4111 1111 1111 1111", "123-45-6789"
CLEAN = [
    (1, 1, "ab", "a@x.com", "see http://a.com", "x", 1.0, 1, 0.0, 1.0, "A-1", "1", CARD, SSN),
    (2, 2, "bc", "b@x.com", "see http://b.com", "y", 2.0, 2, 0.0, 1.0, "B-2", "2", CARD, SSN),
    (3, 3, "cd", "c@x.com", "see http://c.com", "x", 3.0, 3, 0.0, 1.0, "C-3", "3", CARD, SSN),
    (4, 4, "de", "d@x.com", "see http://d.com", "y", 4.0, 4, 0.0, 1.0, "D-4", "4", CARD, SSN),
    (5, 5, "ef", "e@x.com", "see http://e.com", "x", 5.0, 5, 0.0, 1.0, "E-5", "5", CARD, SSN),
]
DIRTY = [
    (1, 1, "a", "a@x.com", "http://a.com", "x", 1.0, 1, 0.0, 1.0, "A-1", "1", CARD, SSN),
    (2, 2, None, "bad", "nope", "y", -2.0, 2, 0.0, 1.0, "B-2", "-2", CARD, SSN),
    (3, 2, "c", "c@x.com", "http://c", "z", 3.0, 3, 0.0, 1.0, "bad", "x", "1234", SSN),
    (4, 4, "d", "d@x.com", None, "x", 4.0, 4, 5.0, 1.0, "D-4", "4", CARD, "000-12-3456"),
    (5, 5, "e", "e@x.com", "http://e.com", "x", 100.0, 5, 0.0, 1.0, "E-5", "5", CARD, SSN),
]

# constraint entry (YAML) -> (passes on CLEAN, rows of DIRTY it blames; None = aggregate fail)
ROW_LEVEL = {
    "isComplete: name": {2},
    "areComplete: {columns: [name, site]}": {2, 4},
    "isUnique: id": {2, 3},
    "isUnique: {columns: [id, category]}": set(),
    "isContainedIn: {column: category, values: [x, y]}": {3},
    "isInRange: {column: amount, min: 0, max: 10}": {2, 5},
    "isNonNegative: amount": {2},
    "isPositive: amount": {2},
    "containsEmail: email": {2},
    "containsURL: site": {2, 3, 4},
    "hasPattern: {column: code, pattern: '^[A-Z]-[0-9]$'}": {3},
    "isLessThan: {column_a: low, column_b: high}": {4},
    "isLessThanOrEqualTo: {column_a: low, column_b: high}": {4},
    "isGreaterThan: {column_a: high, column_b: low}": {4},
    "isGreaterThanOrEqualTo: {column_a: high, column_b: low}": {4},
    "isNonNegative: {column: amount, where: \"category = 'y'\"}": {2},
    "isNonNegative: num_text": {2},  # text cast to a number, as Deequ does ('x' is NULL)
    "satisfies: {name: small amounts, condition: 'amount < 50'}": {5},
    "satisfies: {name: low below high, condition: 'low < high', where: 'qty > 1'}": {4},
    "isPrimaryKey: id": {2, 3},
    "areUnique: {columns: [id, low]}": {2, 3},
    "haveCompleteness: {columns: [name, site], eq: 1}": {2, 4},
    "areAnyComplete: {columns: [name, site]}": set(),
    "haveAnyCompleteness: {columns: [name, email], eq: 1}": set(),
    "containsCreditCardNumber: card": {3},
    "containsSocialSecurityNumber: ssn": {4},
    "isInRange: {column: amount, min: 1, max: 100, include_max: false, where: 'qty > 0'}": {
        2,
        5,
    },
    "isInRange: {column: amount, min: 0, include_min: false, where: 'rid > 0'}": {2},
}
# (entry that passes on CLEAN, entry that fails on DIRTY)
AGGREGATE = {
    "hasSize": ("hasSize: {eq: 5}", "hasSize: {min: 6}"),
    "hasCompleteness": (
        "hasCompleteness: {column: name, min: 0.9}",
        "hasCompleteness: {column: name, min: 0.9}",
    ),
    "hasUniqueness": (
        "hasUniqueness: {columns: [id], eq: 1}",
        "hasUniqueness: {columns: [id], eq: 1}",
    ),
    "hasDistinctness": (
        "hasDistinctness: {columns: [category], max: 0.5}",
        "hasDistinctness: {columns: [category], max: 0.5}",
    ),
    "hasApproxQuantile": (
        "hasApproxQuantile: {column: amount, quantile: 0.5, between: [2, 4]}",
        "hasApproxQuantile: {column: amount, quantile: 0.5, max: 2}",
    ),
    "hasMin": ("hasMin: {column: amount, min: 0}", "hasMin: {column: amount, min: 0}"),
    "hasMax": ("hasMax: {column: amount, max: 10}", "hasMax: {column: amount, max: 10}"),
    "hasMean": ("hasMean: {column: amount, eq: 3}", "hasMean: {column: amount, max: 10}"),
    "hasSum": ("hasSum: {column: amount, eq: 15}", "hasSum: {column: amount, max: 50}"),
    "hasStandardDeviation": (
        "hasStandardDeviation: {column: amount, lt: 2}",
        "hasStandardDeviation: {column: amount, lt: 2}",
    ),
    "hasEntropy": (
        "hasEntropy: {column: category, gt: 0.5}",
        "hasEntropy: {column: category, min: 5}",
    ),
    "hasMinLength": ("hasMinLength: {column: name, eq: 2}", "hasMinLength: {column: name, min: 2}"),
    "hasMaxLength": (
        "hasMaxLength: {column: name, max: 2}",
        "hasMaxLength: {column: name, max: 0}",
    ),
    "hasDataType": (
        "hasDataType: {column: num_text, datatype: Integral}",
        "hasDataType: {column: num_text, datatype: Integral}",
    ),
    "hasApproxCountDistinct": (
        "hasApproxCountDistinct: {column: category, eq: 2}",
        "hasApproxCountDistinct: {column: category, max: 2}",
    ),
    "hasCorrelation": (
        "hasCorrelation: {column_a: amount, column_b: qty, min: 0.99}",
        "hasCorrelation: {column_a: amount, column_b: qty, min: 0.99}",
    ),
    "containsURL ratio": (
        "containsURL: {column: site, min: 0.9}",
        "containsURL: {column: site, min: 0.9}",
    ),
    "hasUniqueValueRatio": (
        "hasUniqueValueRatio: {columns: [id], eq: 1}",
        "hasUniqueValueRatio: {columns: [id], eq: 1}",
    ),
    "hasNumberOfDistinctValues": (
        "hasNumberOfDistinctValues: {column: category, eq: 2}",
        "hasNumberOfDistinctValues: {column: category, eq: 2}",
    ),
    "customSql": (
        "customSql: {name: big amounts, query: 'SELECT count(*) FROM {table} WHERE amount > 50',"
        " eq: 0}",
        "customSql: {name: big amounts, query: 'SELECT count(*) FROM {table} WHERE amount > 50',"
        " eq: 0}",
    ),
    "hasDuplicateRowCount": (
        "hasDuplicateRowCount: {columns: [id], eq: 0}",
        "hasDuplicateRowCount: {columns: [id], eq: 0}",
    ),
    "haveCompleteness ratio": (
        "haveCompleteness: {columns: [name, site], min: 0.9}",
        "haveCompleteness: {columns: [name, site], min: 0.9}",
    ),
    "haveAnyCompleteness ratio": (
        "haveAnyCompleteness: {columns: [name, site], min: 0.9}",
        "haveAnyCompleteness: {columns: [name, site], where: 'rid = 2 or rid = 4', max: 0.5}",
    ),
    "satisfies ratio": (
        "satisfies: {name: most amounts small, condition: 'amount < 4', min: 0.6}",
        "satisfies: {name: most amounts small, condition: 'amount < 4', min: 0.8}",
    ),
    "hasHistogramValues": (
        "hasHistogramValues: {column: category, value: x, measure: absolute, eq: 3}",
        "hasHistogramValues: {column: name, value: null, eq: 0}",
    ),
    "hasMutualInformation": (
        "hasMutualInformation: {column_a: id, column_b: category, gt: 0.5}",
        "hasMutualInformation: {column_a: id, column_b: category, max: 0.5}",
    ),
    "hasExactQuantile": (
        "hasExactQuantile: {column: amount, quantile: 0.5, eq: 3}",
        "hasExactQuantile: {column: amount, quantile: 0.5, max: 2}",
    ),
    "hasVariance": (
        "hasVariance: {column: amount, eq: 2}",
        "hasVariance: {column: amount, max: 10}",
    ),
    "hasSkewness": (
        "hasSkewness: {column: amount, between: [-0.1, 0.1]}",
        "hasSkewness: {column: amount, max: 1}",
    ),
    "hasKurtosis": ("hasKurtosis: {column: amount, lt: 0}", "hasKurtosis: {column: amount, lt: 0}"),
    "hasRange": ("hasRange: {column: amount, eq: 4}", "hasRange: {column: amount, max: 10}"),
    "hasInterquartileRange": (
        "hasInterquartileRange: {column: amount, eq: 2}",
        "hasInterquartileRange: {column: amount, max: 1}",
    ),
    "hasZerosCount": (
        "hasZerosCount: {column: qty, eq: 0}",
        "hasZerosCount: {column: low, max: 1}",
    ),
    "hasDataType on a bigint column": (
        "hasDataType: {column: qty, datatype: Integral}",
        "hasDataType: {column: amount, datatype: Integral, min: 0.5}",
    ),
    "isComplete with where": (
        "isComplete: {column: name, where: \"category = 'x'\"}",
        "isComplete: {column: name, where: \"category = 'y'\"}",
    ),
}


def suite_of(tmp_path: Path, name: str, entries: list[str]) -> Suite:
    body = "suite: t\nchecks:\n  - name: all\n    level: error\n    constraints:\n"
    body += "".join(f"      - {entry}\n" for entry in entries)
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return load_suite(path)


def run(spark: SparkSession, suite: Suite, df: DataFrame) -> VerificationOutcome:
    check_against_schema(suite, df.schema)
    return verify(spark, df, suite)


@pytest.fixture(scope="module")
def clean(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(CLEAN, SCHEMA)


@pytest.fixture(scope="module")
def dirty(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(DIRTY, SCHEMA).repartition(3)


@pytest.mark.slow
def test_every_constraint_passes_on_clean_data(
    spark: SparkSession, clean: DataFrame, tmp_path: Path
) -> None:
    entries = list(ROW_LEVEL) + [passing for passing, _ in AGGREGATE.values()]
    outcome = run(spark, suite_of(tmp_path, "pass", entries), clean)
    failures = {
        r.constraint: (r.metric, r.message) for r in outcome.results if r.status != "success"
    }
    assert failures == {}
    assert outcome.status == "success"


@pytest.mark.slow
def test_every_aggregate_constraint_fails_on_dirty_data(
    spark: SparkSession, dirty: DataFrame, tmp_path: Path
) -> None:
    entries = [failing for _, failing in AGGREGATE.values()]
    outcome = run(spark, suite_of(tmp_path, "fail", entries), dirty)
    statuses = {name: r.status for name, r in zip(AGGREGATE, outcome.results, strict=True)}
    assert statuses == dict.fromkeys(AGGREGATE, "failure")
    # Only the filtered completeness check can name rows; the rest judge the whole table.
    assert [r.blames_rows for r in outcome.results] == [
        n == "isComplete with where" for n in AGGREGATE
    ]


@pytest.mark.slow
def test_row_level_constraints_blame_exactly_the_breaking_rows(
    spark: SparkSession, dirty: DataFrame, tmp_path: Path
) -> None:
    suite = suite_of(tmp_path, "rows", list(ROW_LEVEL))
    outcome = run(spark, suite, dirty)
    expected_status = {
        c.id: ("failure" if rows else "success")
        for c, rows in zip(suite.constraints, ROW_LEVEL.values(), strict=True)
    }
    assert {r.constraint: r.status for r in outcome.results} == expected_status

    split = apply_suite(spark, dirty, suite)
    try:
        blamed = split.quarantine.select("rid", F.explode(ERRORS_COLUMN).alias("e")).select(
            "rid", F.col("e.constraint").alias("constraint")
        )
        expected = [
            (rid, c.id)
            for c, rows in zip(suite.constraints, ROW_LEVEL.values(), strict=True)
            for rid in rows
        ]
        assertDataFrameEqual(blamed, spark.createDataFrame(expected, "rid int, constraint string"))
        assertDataFrameEqual(split.valid, dirty.where("rid = 1"))
    finally:
        split.release()


def test_quarantine_messages_name_the_value(
    spark: SparkSession, dirty: DataFrame, tmp_path: Path
) -> None:
    suite = suite_of(
        tmp_path, "msg", ["isContainedIn: {column: category, values: [x, y]}", "isUnique: id"]
    )
    split = apply_suite(spark, dirty, suite)
    try:
        messages = split.quarantine.select("rid", F.explode(ERRORS_COLUMN).alias("e")).select(
            "rid", "e.check", "e.column", "e.message"
        )
        assertDataFrameEqual(
            messages,
            spark.createDataFrame(
                [
                    (3, "all", "category", "category = 'z' is not one of ['x', 'y']"),
                    (2, "all", "id", "id = 2 occurs more than once"),
                    (3, "all", "id", "id = 2 occurs more than once"),
                ],
                "rid int, check string, column string, message string",
            ),
        )
    finally:
        split.release()


def test_items_example_reproduces_the_seed_result(spark: SparkSession) -> None:
    items = spark.createDataFrame(
        [
            (1, "Thingy A", "awesome thing.", "high", 0),
            (2, "Thingy B", "available at http://thingb.com", None, 0),
            (3, None, None, "low", 5),
            (4, "Thingy D", "checkout https://thingd.ca", "low", 10),
            (5, "Thingy E", None, "high", 12),
        ],
        "id long, productName string, description string, priority string, numViews long",
    )
    suite = load_suite("checks/examples/items.yaml")
    outcome = run(spark, suite, items)
    failed = [(r.constraint, r.metric) for r in outcome.failed()]
    assert failed == [("isComplete(productName)", 0.8), ("containsURL(description)", 0.4)]
    assert (
        outcome.failed()[0].deequ_constraint
        == "CompletenessConstraint(Completeness(productName,None,None))"
    )
    split = apply_suite(spark, items, suite)
    assertDataFrameEqual(split.quarantine.select("id"), spark.createDataFrame([(3,)], "id long"))
