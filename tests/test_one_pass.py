"""The one-pass gate judges every constraint type exactly as a plain Deequ VerificationSuite does.

Metrics observed in the write (`checks.gate.apply_suite` + `Gate.verdict`) against a plain
`VerificationSuite` run (`checks.deequ_run.verify`) of the same suite, on multi-partition data
with nulls, `where` filters and an empty table: same statuses, same messages, same metrics
(approximate quantiles within Deequ's own relative error).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.testing import assertDataFrameEqual
from test_constraints import AGGREGATE, CLEAN, DIRTY, ROW_LEVEL, SCHEMA, suite_of

from checks.deequ_run import VerificationOutcome, verify
from checks.gate import GateInconsistent, apply_suite
from checks.suite import CONSTRAINT_TYPES, Suite

WHERE_VARIANTS = [
    "hasMean: {column: amount, where: \"category = 'x'\", max: 3}",
    "isUnique: {column: id, where: 'qty > 1'}",
    "hasUniqueness: {columns: [id], where: 'qty > 1', eq: 1}",
    "isContainedIn: {column: category, values: [x], where: 'amount > 2'}",
    "hasApproxQuantile: {column: amount, quantile: 0.5, where: \"category = 'x'\", max: 3}",
]
ALL_ENTRIES = sorted(
    {*ROW_LEVEL, *(e for pair in AGGREGATE.values() for e in pair), *WHERE_VARIANTS}
)
QUANTILE_RELATIVE_ERROR = 0.01  # Deequ's default for ApproxQuantile


def one_pass(spark: SparkSession, df: DataFrame, suite: Suite) -> VerificationOutcome:
    gate = apply_suite(spark, df, suite)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        return gate.verdict()
    finally:
        gate.release()


def assert_same_verdicts(one: VerificationOutcome, plain: VerificationOutcome) -> None:
    assert [r.constraint for r in one.results] == [r.constraint for r in plain.results]
    for a, b in zip(one.results, plain.results, strict=True):
        assert (a.constraint, a.status, a.message) == (b.constraint, b.status, b.message)
        if a.kind == "hasApproxQuantile" and a.metric is not None and b.metric is not None:
            assert a.metric == pytest.approx(b.metric, rel=QUANTILE_RELATIVE_ERROR, abs=1.0)
        else:
            assert a.metric == b.metric, a.constraint


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    return suite_of(tmp_path_factory.mktemp("one-pass"), "all", ALL_ENTRIES)


def test_every_constraint_type_is_in_the_equivalence_suite(suite: Suite) -> None:
    covered = {c.kind for c in suite.constraints}
    # isContainedInTable reads a reference table: tests/test_contained_in_table.py holds its
    # one-pass verdict to a plain VerificationSuite run.
    assert covered == set(CONSTRAINT_TYPES) - {"isContainedInTable"}


@pytest.mark.parametrize("data", ["clean", "dirty", "empty"])
@pytest.mark.slow
def test_one_pass_verdicts_equal_a_plain_verification_suite(
    spark: SparkSession, suite: Suite, data: str
) -> None:
    rows = {"clean": CLEAN, "dirty": DIRTY, "empty": []}[data]
    # Cached (still three partitions): the ~60 jobs of both runs skip the shuffle that spreads
    # the rows, which each would otherwise recompute (half of this test's time under load).
    df = spark.createDataFrame(rows, SCHEMA).repartition(3).cache()
    try:
        assert df.count() == len(rows) and df.rdd.getNumPartitions() == 3
        assert_same_verdicts(one_pass(spark, df, suite), verify(spark, df, suite))
    finally:
        df.unpersist()


@pytest.mark.slow
def test_one_pass_quarantines_the_rows_row_rules_blame(spark: SparkSession, tmp_path: Path) -> None:
    suite = suite_of(tmp_path, "rows", list(ROW_LEVEL))
    dirty = spark.createDataFrame(DIRTY, SCHEMA).repartition(3)
    gate = apply_suite(spark, dirty, suite)
    try:
        assertDataFrameEqual(gate.valid, dirty.where("rid = 1"))
        assert gate.rows_in == 5
        assert gate.rows_to_quarantine == 4
        expected = {
            c.id: len(rows)
            for c, rows in zip(suite.constraints, ROW_LEVEL.values(), strict=True)
            if rows
        }
        assert gate.reasons() == expected
        outcome = gate.verdict()
        assert {r.constraint for r in outcome.failed()} == set(expected)
    finally:
        gate.release()


def test_multi_column_unique_blames_duplicated_keys_holding_a_null(
    spark: SparkSession, tmp_path: Path
) -> None:
    keys = [("a", None), ("a", None), (None, "x"), ("b", "x"), ("b", "x"), ("c", "y")]
    df = spark.createDataFrame(
        [(i, a, b) for i, (a, b) in enumerate(keys)], "rid int, a string, b string"
    ).repartition(3)
    suite = suite_of(tmp_path, "nullkey", ["isUnique: {columns: [a, b]}"])
    gate = apply_suite(spark, df, suite)
    try:
        assertDataFrameEqual(
            gate.valid.select("rid"), spark.createDataFrame([(2,), (5,)], "rid int")
        )
        outcome = gate.verdict()
        assert outcome.results[0].metric == pytest.approx(2 / 6)
        assert outcome.results[0].metric == verify(spark, df, suite).results[0].metric
    finally:
        gate.release()


@pytest.mark.parametrize(
    ("key_type", "keys"),
    [
        ("string", ["a", "a", None, None, "b", "c", "c", "c", "d"]),
        ("long", [1, 1, None, None, 2**40, 2**40, 3, -4, -4]),
        ("double", [1.5, 1.5, None, None, 0.0, -0.0, float("nan"), float("nan"), 2.0]),
    ],
)
@pytest.mark.parametrize("where", [None, "rid > 0"])
def test_duplicated_keys_inlined_as_a_list_flag_the_rows_the_join_flags(
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_type: str,
    keys: list[object],
    where: str | None,
) -> None:
    """A few duplicated keys of a string or integer column go inline (IN); the rest, a join."""
    from checks import gate as gate_module

    df = spark.createDataFrame(list(enumerate(keys)), f"rid int, k {key_type}").repartition(3)
    entry = f"isUnique: {{column: k, where: '{where}'}}" if where else "isUnique: k"
    suite = suite_of(tmp_path, "inline", [entry])

    def split(inline_keys: int) -> tuple[list[Row], list[Row]]:
        monkeypatch.setattr(gate_module, "INLINE_DUPLICATE_KEYS", inline_keys)
        gate = apply_suite(spark, df, suite)
        plan = gate.valid._jdf.queryExecution().optimizedPlan().toString()
        assert ("Join" in plan) == (inline_keys == 0 or key_type == "double")
        valid = gate.valid.select("rid").collect()
        quarantine = gate.quarantine.select("rid", "_lakegate_errors").collect()
        gate.release()
        return valid, quarantine

    inlined, joined = split(1_000), split(0)
    for a, b in zip(inlined, joined, strict=True):
        assertDataFrameEqual(a, b)
    assert len(inlined[1]) > 0
    assert len(inlined[0]) + len(inlined[1]) == len(keys)


COUNTS_ONLY_KEYS = [
    "isUnique: id",
    "hasDistinctness: {columns: [id], min: 0.5}",
    "hasUniqueValueRatio: {columns: [id], where: 'rid > 10', min: 0.5}",
    "hasNumberOfDistinctValues: {column: id, min: 1}",
]


@pytest.mark.parametrize(
    ("entries", "duplicated", "cached_rows"),
    [
        (COUNTS_ONLY_KEYS, True, [2, 2]),
        (COUNTS_ONLY_KEYS, False, [0, 0]),
        (["isUnique: id", "hasEntropy: {column: id, min: 0}"], True, [98]),
    ],
    ids=["counts-only", "counts-only-no-duplicates", "with-entropy"],
)
@pytest.mark.slow
def test_a_unique_key_grouping_caches_only_its_duplicated_keys_unless_entropy_needs_all(
    spark: SparkSession,
    tmp_path: Path,
    entries: list[str],
    duplicated: bool,
    cached_rows: list[int],
) -> None:
    ids = [f"k{i}" for i in range(96)]
    ids += ["dup1", "dup1", "dup2", "dup2", "dup2"] if duplicated else ["u1", None]
    df = spark.createDataFrame([(i, k) for i, k in enumerate(ids)], "rid int, id string")
    df = df.repartition(4)
    suite = suite_of(tmp_path, "keys", entries)
    gate = apply_suite(spark, df, suite)
    try:
        assert sorted(frame.count() for frame in gate._cached) == sorted(cached_rows)
        valid = df.where("rid < 96") if duplicated else df
        gate.valid.write.format("noop").mode("overwrite").save()
        assertDataFrameEqual(gate.valid, valid)
        assert_same_verdicts(gate.verdict(), verify(spark, df, suite))
    finally:
        gate.release()


def test_an_empty_quarantine_is_written_without_a_second_scan(
    spark: SparkSession, tmp_path: Path
) -> None:
    suite = suite_of(tmp_path, "ok", ["isComplete: name", "isUnique: id"])
    clean = spark.createDataFrame(CLEAN, SCHEMA)
    gate = apply_suite(spark, clean, suite)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        assert gate.rows_to_quarantine == 0
        empty = gate.quarantine_to_write()
        plan = empty._jdf.queryExecution().optimizedPlan()
        assert plan.getClass().getSimpleName() == "LocalRelation"  # nothing to scan
        assert empty.count() == 0
        assert empty.schema == gate.quarantine.schema
    finally:
        gate.release()


def test_a_row_rule_that_disagrees_with_deequ_is_reported_as_a_bug(
    spark: SparkSession, tmp_path: Path
) -> None:
    from checks.constraint_types import ConstraintType
    from checks.suite import Constraint

    suite = suite_of(tmp_path, "bug", ["isComplete: name"])
    dirty = spark.createDataFrame(DIRTY, SCHEMA)
    broken_rule = ConstraintType(
        "isComplete",
        CONSTRAINT_TYPES["isComplete"].args,
        CONSTRAINT_TYPES["isComplete"].deequ,
        "always",
        lambda args, ctx: (dirty["rid"] < 0, dirty["name"]),  # blames no row: wrong
    )
    constraint = suite.constraints[0]
    wrong = Constraint(constraint.check, 0, broken_rule, constraint.args, constraint.line)
    check = suite.checks[0]
    suite = Suite(suite.name, suite.path, "", (type(check)(check.name, check.level, (wrong,)),))
    gate = apply_suite(spark, dirty, suite)
    try:
        gate.valid.write.format("noop").mode("overwrite").save()
        with pytest.raises(GateInconsistent, match="isComplete"):
            gate.verdict()
    finally:
        gate.release()
