"""The suite format rejects bad suites before Spark runs, naming file, line and entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from checks.suite import SuiteError, check_against_schema
from checks.suite_formats import load_suite

SCHEMA = StructType(
    [
        StructField("id", LongType()),
        StructField("productName", StringType()),
        StructField("numViews", LongType()),
        StructField("price", DoubleType()),
    ]
)


def write_suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(body)
    return path


def suite_with(constraint_lines: str) -> str:
    return "suite: s\nchecks:\n  - name: c\n    level: error\n    constraints:\n" + constraint_lines


def test_items_example_loads_with_every_constraint_in_order() -> None:
    suite = load_suite("checks/examples/items.yaml")
    assert [c.id for c in suite.constraints] == [
        "hasSize()",
        "isComplete(id)",
        "isUnique(id)",
        "isComplete(productName)",
        "isContainedIn(priority)",
        "isNonNegative(numViews)",
        "containsURL(description)",
        "hasApproxQuantile(numViews)",
    ]
    blames = {c.id: c.blames_rows for c in suite.constraints}
    assert blames["containsURL(description)"] is False  # a ratio (>= 0.5) cannot blame a row
    assert blames["isComplete(productName)"] is True


@pytest.mark.parametrize("path", sorted(Path("checks/examples").glob("*.yaml")))
def test_every_example_suite_is_valid(path: Path) -> None:
    assert load_suite(path).constraints


def test_unknown_constraint_is_named_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path, suite_with("      - isComplete: id\n      - isCompelte: productName\n")
    )
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert f"{path}:7" in message
    assert "unknown constraint 'isCompelte'" in message
    assert "did you mean 'isComplete'" in message


def test_missing_argument_is_named(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - isContainedIn: {column: priority}\n"))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert f"{path}:6" in str(err.value)
    assert "values" in str(err.value)
    assert "Field required" in str(err.value)


def test_aggregate_constraint_without_assertion_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - hasMean: {column: price}\n"))
    with pytest.raises(SuiteError, match="missing assertion"):
        load_suite(path)


def test_wrong_argument_type_is_named(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - hasSize:\n          min: lots\n"))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert f"{path}:7" in str(err.value)
    assert "min" in str(err.value)


def test_unknown_argument_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - isComplete: {column: id, colour: red}\n"))
    with pytest.raises(SuiteError, match="colour"):
        load_suite(path)


def test_invalid_regular_expression_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - hasPattern: {column: id, pattern: '([a-z'}\n"))
    with pytest.raises(SuiteError, match="not a valid regular expression"):
        load_suite(path)


def test_reversed_between_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - hasMean: {column: price, between: [5, 1]}\n"))
    with pytest.raises(SuiteError, match="lower bound is greater"):
        load_suite(path)


def test_constraint_written_as_plain_string_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - isComplete\n"))
    with pytest.raises(SuiteError, match="one-key mapping"):
        load_suite(path)


def test_duplicate_check_names_are_rejected(tmp_path: Path) -> None:
    body = suite_with("      - isComplete: id\n") + (
        "  - name: c\n    constraints:\n      - isComplete: id\n"
    )
    path = write_suite(tmp_path, body)
    with pytest.raises(SuiteError, match="two checks are named 'c'"):
        load_suite(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "suite: s\nchecks:\n  - name: [unclosed\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert "not valid YAML" in str(err.value)
    assert str(path) in str(err.value)


def test_missing_suite_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_unknown_level_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - isComplete: id\n").replace("error", "fatal"))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert f"{path}:4" in str(err.value)
    assert "level" in str(err.value)


def test_unknown_column_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - isComplete: prodName\n"))
    with pytest.raises(SuiteError) as err:
        check_against_schema(load_suite(path), SCHEMA)
    message = str(err.value)
    assert f"{path}:6" in message
    assert "unknown column 'prodName'" in message
    assert "did you mean 'productName'" in message


def test_numeric_constraint_on_a_string_column_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - hasMean: {column: productName, max: 3}\n"))
    with pytest.raises(SuiteError, match="is string, but this constraint needs a numeric column"):
        check_against_schema(load_suite(path), SCHEMA)


def test_pattern_constraint_on_a_numeric_column_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_with("      - containsURL: numViews\n"))
    with pytest.raises(SuiteError, match="needs a string column"):
        check_against_schema(load_suite(path), SCHEMA)
