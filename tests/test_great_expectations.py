"""Great Expectations suites: the seeds' suite on the seeds' rows, GX semantics, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from checks.constraint_types import CONSTRAINT_TYPES
from checks.deequ_run import verify
from checks.great_expectations import (
    gx_suite_data,
    load_gx_suite,
    translate_gx_suite,
)
from checks.suite import SuiteError, check_against_schema
from checks.suite_formats import load_suite, parse_suite
from lakegate_config.yaml_document import YamlDocument
from spark_jobs.cli import main

SEEDS_SUITE = Path("checks/examples/great_expectations_suite.json")
SEEDS_ROWS = [
    ("1", "male", 1, 1334),
    ("2", "female", 2, 643),
    ("3", "male", 2, 645),
    ("4", "male", 1, 234),
    ("5", "female", 2, 23),
    ("6", "male", 1, 454),
    ("6", "male", 1, 454),
]


def write_suite(path: Path, expectations: list[dict[str, Any]], *, v1: bool = True) -> Path:
    """A GX suite file in the 1.x shape (`name`, `type`) or the 0.13 one."""
    if v1:
        doc = {"name": "people", "id": "0f1e", "meta": {"great_expectations_version": "1.3.0"}}
        doc["expectations"] = [
            {"type": e["type"], "kwargs": e["kwargs"], "meta": {}, "id": str(i)}
            for i, e in enumerate(expectations)
        ]
    else:
        doc = {"expectation_suite_name": "people", "data_asset_type": "Dataset", "meta": {}}
        doc["expectations"] = [
            {"expectation_type": e["type"], "kwargs": e["kwargs"], "meta": {}} for e in expectations
        ]
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_seeds_suite_on_the_seeds_rows_passes_with_mean_col2_541(spark: SparkSession) -> None:
    suite = load_gx_suite(SEEDS_SUITE)
    people = spark.createDataFrame(SEEDS_ROWS, "id string, gender string, col1 long, col2 long")
    check_against_schema(suite, people.schema)
    outcome = verify(spark, people, suite)
    assert [(r.constraint, r.status) for r in outcome.results] == [
        ("isContainedIn(gender)", "success"),
        ("hasMean(col1)", "success"),
        ("hasMax(col2)", "success"),
        ("hasMean(col2)", "success"),
    ]
    assert outcome.results[3].metric == 541.0  # GX's observed_value in the seeds
    assert outcome.results[2].metric == 1334.0


def test_gx_suite_data_is_the_yaml_suite_shape(tmp_path: Path) -> None:
    data = gx_suite_data(SEEDS_SUITE)
    suite = parse_suite(YamlDocument(SEEDS_SUITE, data, lines={}))
    assert suite.name == "default"
    assert [c.kind for c in suite.constraints] == ["isContainedIn", "hasMean", "hasMax", "hasMean"]
    assert suite.constraints[1].args.min == 1 and suite.constraints[1].args.max == 3


# Rows chosen so that Deequ's own null handling would give other verdicts than GX's.
PEOPLE = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, None],
        "name": ["ann", "bob", "cy", None, "dan", "eve"],
        "code": ["AB1", "CD2", "xx", None, "EF3", "GH4"],
        "grade": ["a", "b", "a", None, "c", "a"],
        "score": [1.0, 2.0, 3.0, 4.0, None, 10.0],
        "a": [5, 6, 7, 8, 9, 10],
        "b": [1, 2, 7, 3, 4, 5],
    }
)
PEOPLE_SCHEMA = "id int, name string, code string, grade string, score double, a int, b int"


def _share(mask: pd.Series) -> float:
    return float(mask.mean())


def _non_null(column: str) -> pd.Series:
    return PEOPLE[column].dropna()


# (expectation type, kwargs, GX's verdict computed here from its definition with pandas)
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("expect_table_row_count_to_be_between", {"min_value": 5, "max_value": 6}, 5 <= 6 <= 6),
    ("expect_table_row_count_to_equal", {"value": 7}, len(PEOPLE) == 7),
    ("expect_column_values_to_not_be_null", {"column": "name"}, bool(PEOPLE["name"].notna().all())),
    (
        "expect_column_values_to_not_be_null",
        {"column": "name", "mostly": 0.8},
        _share(PEOPLE["name"].notna()) >= 0.8,
    ),
    ("expect_column_values_to_be_unique", {"column": "id"}, _non_null("id").is_unique),
    (
        "expect_column_values_to_be_in_set",
        {"column": "grade", "value_set": ["a", "b"], "mostly": 0.82},
        _share(_non_null("grade").isin(["a", "b"])) >= 0.82,
    ),
    (
        "expect_column_distinct_values_to_be_in_set",
        {"column": "grade", "value_set": ["a", "b", "c"]},
        set(_non_null("grade")) <= {"a", "b", "c"},
    ),
    (
        "expect_column_values_to_be_between",
        {"column": "score", "min_value": 0, "max_value": 10},
        bool(_non_null("score").between(0, 10).all()),
    ),
    (
        "expect_column_values_to_match_regex",
        {"column": "code", "regex": "^[A-Z]{2}[0-9]$", "mostly": 0.8},
        _share(_non_null("code").str.contains(r"^[A-Z]{2}[0-9]$")) >= 0.8,
    ),
    (
        "expect_column_mean_to_be_between",
        {"column": "score", "min_value": 3, "max_value": 5},
        3 <= _non_null("score").mean() <= 5,
    ),
    (
        "expect_column_max_to_be_between",
        {"column": "score", "min_value": 0, "max_value": 9},
        0 <= _non_null("score").max() <= 9,
    ),
    (
        "expect_column_min_to_be_between",
        {"column": "score", "min_value": 1, "strict_min": True},
        _non_null("score").min() > 1,
    ),
    (
        "expect_column_sum_to_be_between",
        {"column": "score", "min_value": 20, "max_value": 20},
        20 <= _non_null("score").sum() <= 20,
    ),
    (
        "expect_column_value_lengths_to_be_between",
        {"column": "name", "min_value": 2, "max_value": 3},
        bool(_non_null("name").str.len().between(2, 3).all()),
    ),
    (
        "expect_column_value_lengths_to_be_between",
        {"column": "name", "min_value": 3, "max_value": 3},
        bool(_non_null("name").str.len().between(3, 3).all()),
    ),
    (
        "expect_column_proportion_of_unique_values_to_be_between",
        {"column": "grade", "min_value": 0.6, "max_value": 0.6},
        _non_null("grade").nunique() / len(_non_null("grade")) == 0.6,
    ),
    (
        "expect_compound_columns_to_be_unique",
        {"column_list": ["id", "name"]},
        not PEOPLE[["id", "name"]].dropna(how="all").duplicated().any(),
    ),
    (
        "expect_column_pair_values_A_to_be_greater_than_B",
        {"column_A": "a", "column_B": "b"},
        bool((PEOPLE["a"] > PEOPLE["b"]).all()),
    ),
    (
        "expect_column_pair_values_A_to_be_greater_than_B",
        {"column_A": "a", "column_B": "b", "or_equal": True},
        bool((PEOPLE["a"] >= PEOPLE["b"]).all()),
    ),
    (
        "expect_column_pair_values_A_to_be_greater_than_B",
        {"column_A": "a", "column_B": "b", "mostly": 0.8},
        _share(PEOPLE["a"] > PEOPLE["b"]) >= 0.8,
    ),
    (
        "expect_column_quantile_values_to_be_between",
        {
            "column": "score",
            "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[2, 4]]},
            "allow_relative_error": True,
        },
        2 <= _non_null("score").median() <= 4,
    ),
]


@pytest.fixture(scope="module")
def people(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(PEOPLE.astype(object).where(PEOPLE.notna(), None), PEOPLE_SCHEMA)


def test_every_translation_gives_gx_verdict_on_rows_with_nulls(
    spark: SparkSession, people: DataFrame, tmp_path: Path
) -> None:
    expectations = [{"type": kind, "kwargs": kwargs} for kind, kwargs, _ in CASES]
    expectations.append({"type": "expect_column_values_to_be_of_type", "kwargs": {
        "column": "id", "type_": "IntegerType"}})  # fmt: skip
    path = write_suite(tmp_path / "people.json", expectations)
    translation = translate_gx_suite(path)
    suite = parse_suite(translation.document)
    check_against_schema(suite, people.schema)  # the type expectation holds: id is int
    outcome = verify(spark, people, suite)

    verdicts: dict[int, bool] = {}
    for (check_index, index), origin in translation.origins.items():
        constraint = suite.checks[check_index].constraints[index]
        result = next(
            r
            for r in outcome.results
            if r.check == constraint.check and r.constraint == constraint.id
            and r.expectation == constraint.assertion_text()
        )  # fmt: skip
        verdicts[origin] = verdicts.get(origin, True) and result.status == "success"
    expected = {i: gx for i, (_, _, gx) in enumerate(CASES)}
    wrong = {
        f"{CASES[i][0]} {CASES[i][1]}": (verdicts[i], expected[i])
        for i in expected
        if verdicts[i] != expected[i]
    }
    assert not wrong, f"lakegate verdict != GX verdict: {wrong}"
    # both verdicts occur, so the comparison means something
    assert set(expected.values()) == {True, False}


def test_type_expectation_becomes_the_schema_and_a_mismatch_is_refused(
    people: DataFrame, tmp_path: Path
) -> None:
    path = write_suite(
        tmp_path / "types.json",
        [
            {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "id",
                                                                      "type_": "StringType"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        ],
    )  # fmt: skip
    suite = load_gx_suite(path)
    assert suite.expected_schema == (("id", "string"),)
    with pytest.raises(SuiteError, match="column 'id' is int, expected string"):
        check_against_schema(suite, people.schema)


def test_gx_013_and_1x_shapes_give_the_same_suite(tmp_path: Path) -> None:
    expectations = [{"type": kind, "kwargs": kwargs} for kind, kwargs, _ in CASES]
    new = gx_suite_data(write_suite(tmp_path / "new.json", expectations, v1=True))
    old = gx_suite_data(write_suite(tmp_path / "old.json", expectations, v1=False))
    assert new["checks"] == old["checks"] and new["suite"] == old["suite"] == "people"


def test_unsupported_expectation_is_named_with_index_and_line_before_spark(
    tmp_path: Path,
) -> None:
    path = write_suite(
        tmp_path / "s.json",
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
            {"type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {"column": "x"}},
        ],
    )
    line = path.read_text().splitlines().index("    {", 10) + 1  # the second expectation
    with pytest.raises(SuiteError) as error:
        load_gx_suite(path)
    message = str(error.value)
    assert f"s.json:{line}: expectation 2 (expect_column_kl_divergence_to_be_less_than)" in message
    assert "not supported" in message and "expect_column_values_to_be_in_set" in message


@pytest.mark.parametrize(
    ("kind", "kwargs", "needs"),
    [
        ("expect_column_median_to_be_between", {"column": "s", "min_value": 1}, "hasExactQuantile"),
        ("expect_column_values_to_be_between", {"column": "s", "min_value": 1, "mostly": 0.9},
         "satisfies"),
        ("expect_column_values_to_be_between", {"column": "s", "min_value": 1,
                                                "strict_min": True}, "isInRange"),
    ],
)  # fmt: skip
def test_expectations_that_need_a_coming_constraint_type_say_so(
    tmp_path: Path, kind: str, kwargs: dict[str, Any], needs: str
) -> None:
    path = write_suite(tmp_path / "s.json", [{"type": kind, "kwargs": kwargs}])
    fields = {"isInRange": "gt"}.get(needs)
    ctype = CONSTRAINT_TYPES.get(needs)
    if ctype is not None and (fields is None or fields in ctype.args.model_fields):
        assert needs in json.dumps(gx_suite_data(path))  # the type has arrived: translated
        return
    with pytest.raises(SuiteError, match=f"expectation 1 \\({kind}\\): not supported: needs"):
        load_gx_suite(path)


def test_bad_arguments_are_refused_naming_the_expectation(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path / "s.json",
        [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "s"}}],
    )
    with pytest.raises(SuiteError, match=r"expectation 1 .*give min_value, max_value or both"):
        load_gx_suite(path)
    not_gx = tmp_path / "not.json"
    not_gx.write_text('{"suite": "x"}')
    with pytest.raises(SuiteError, match="not a Great Expectations suite"):
        load_gx_suite(not_gx)


def test_convert_writes_a_commented_yaml_suite_that_loads_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "suite.yaml"
    assert main(["convert", str(SEEDS_SUITE), "-o", str(output)]) == 0
    text = output.read_text()
    assert "# expect_column_distinct_values_to_be_in_set (expectation 1)" in text
    converted = load_suite(output)
    original = load_gx_suite(SEEDS_SUITE)
    assert [(c.id, c.assertion_text(), c.args) for c in converted.constraints] == [
        (c.id, c.assertion_text(), c.args) for c in original.constraints
    ]
    assert main(["convert", str(SEEDS_SUITE)]) == 0
    assert capsys.readouterr().out == text
    bad = write_suite(tmp_path / "bad.json", [{"type": "expect_nothing", "kwargs": {}}])
    assert main(["convert", str(bad), "-o", str(tmp_path / "bad.yaml")]) == 2
    assert not (tmp_path / "bad.yaml").exists()


def test_validate_accepts_a_gx_suite_wherever_a_yaml_suite_goes(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spark_jobs.cli import main

    source = tmp_path / "people.parquet"
    spark.createDataFrame(
        SEEDS_ROWS, "id string, gender string, col1 long, col2 long"
    ).write.parquet(str(source))
    code = main(
        [
            "validate",
            "checks/examples/great_expectations_suite.json",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--quiet",
            "--no-history",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCESS" in out and "Rows: 7 in, 7 valid, 0 quarantined" in out
