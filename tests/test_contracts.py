"""ODCS v3 data contracts: the mapping (no Spark), the oracle corpus, refusals, the round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from checks.contract_export import suite_contract
from checks.contracts import admits_only_zero, level_of, load_contract, translate_contract
from checks.suite import SuiteError
from checks.suite_formats import load_suite
from lakegate_config.yaml_document import YamlDocument
from spark_jobs.cli import main

CORPUS = Path(__file__).parent / "contracts" / "corpus.odcs.yaml"
ITEMS_CONTRACT = Path("checks/examples/items.odcs.yaml")
ORDERS_SCHEMA = (
    "rid int, code string, qty bigint, price double, status string, email string, day string, "
    "tenant string, order_no bigint"
)
ORDERS = [
    (1, "A1", 1, 10.0, "new", "a@x.com", "2024-01-01", "t1", 1),
    (2, "B2", 2, 20.0, "paid", "b@x.com", "2024-02-01", "t1", 2),
    (3, "C3", 3, 30.0, "new", "c@x.com", "2024-03-01", "t1", 3),
    (4, "A1", 4, 40.0, "paid", "d@x.com", "2024-04-01", "t2", 1),
    (5, "D4", None, 50.0, "bad", "bad-email", "2024-13-01", "t2", 2),
    (6, "E5", 6, -1.0, "", None, "2024-06-01", "t2", 2),
    (7, "F6", 7, 70.0, "N/A", "g@x.com", None, "t3", 1),
    (8, None, 8, 80.0, None, "h@x.com", "2024-08-01", "t3", 2),
    (9, "G7", 9, 90.0, "new", "i@x.com", "2024-09-01", "t3", 3),
    (10, "H8", 100, 100.0, "paid", "j@x.com", "2024-10-01", "t3", 4),
]
P, F = "success", "failure"
# The oracle: every rule of the corpus, (its id or path, constraint type) -> status, by hand
# from ODCS's semantics on ORDERS (comments in the corpus file say which rows break which rule).
CORPUS_EXPECTED: dict[tuple[str, str], str] = {
    ("schema[0].properties[0].required", "isComplete"): P,
    ("schema[0].properties[0].unique", "isUnique"): P,
    ("rid_in_list", "satisfies"): P,
    ("schema[0].properties[1].required", "isComplete"): F,
    ("schema[0].properties[1].unique", "isUnique"): F,
    ("schema[0].properties[1].logicalTypeOptions.minLength", "satisfies"): P,
    ("schema[0].properties[1].logicalTypeOptions.maxLength", "satisfies"): P,
    ("code_dup_rows0", "isUnique"): F,
    ("code_dup_rows2", "hasDuplicateRowCount"): P,
    ("code_dup_pct", "customSql"): F,
    ("code_nulls_info", "isComplete"): F,
    ("schema[0].properties[2].logicalTypeOptions.minimum", "isInRange"): P,
    ("qty_nulls0", "isComplete"): F,
    ("qty_nulls_lt2", "hasSize"): P,
    ("qty_nulls_pct10", "satisfies"): P,
    ("qty_nulls_pct_gt20", "satisfies"): F,
    ("qty_nulls_not_1_5", "hasSize"): F,
    ("qty_nulls_ge1", "hasSize"): P,
    ("qty_invalid_one", "hasSize"): P,
    ("qty_max_sql", "customSql"): F,
    ("qty_empty_sql", "customSql"): F,
    ("qty_bounds_custom", "hasMin"): P,
    ("qty_bounds_custom", "hasMax"): P,
    ("schema[0].properties[3].logicalTypeOptions.exclusiveMinimum", "isInRange"): F,
    ("schema[0].properties[3].logicalTypeOptions.multipleOf", "satisfies"): F,
    ("price_nulls_not0", "hasSize"): F,
    ("price_missing_minus1", "hasSize"): P,
    ("price_negative_sql", "customSql"): P,
    ("price_mean_sql", "customSql"): P,
    ("price_nonnegative", "isNonNegative"): F,
    ("price_mean_deequ", "hasMean"): P,
    ("schema[0].properties[4].enum", "isContainedIn"): P,
    ("status_missing_le3", "hasSize"): P,
    ("status_missing0", "satisfies"): F,
    ("status_missing_pct", "satisfies"): F,
    ("status_invalid3", "hasSize"): P,
    ("status_invalid0", "isContainedIn"): P,
    ("status_invalid_pct", "satisfies"): P,
    ("schema[0].properties[5].logicalTypeOptions.pattern", "hasPattern"): F,
    ("schema[0].properties[5].logicalTypeOptions.format", "containsEmail"): F,
    ("email_pattern0", "hasPattern"): F,
    ("email_pattern_pct", "satisfies"): P,
    ("schema[0].properties[6].logicalTypeOptions.format", "satisfies"): F,
    ("day_pattern0", "hasPattern"): P,
    ("schema[0].properties[7].primaryKey", "isComplete"): P,
    ("tenant_nulls_warn", "isComplete"): P,
    ("schema[0].properties[8].primaryKey", "isComplete"): P,
    ("schema[0].properties[7].primaryKey", "isPrimaryKey"): F,
    ("rows_eq10", "hasSize"): P,
    ("rows_gt10", "hasSize"): F,
    ("rows_between", "hasSize"): P,
    ("rows_not_between", "hasSize"): P,
    ("rows_not10", "hasSize"): F,
    ("rows_le9", "hasSize"): F,
    ("key_dups_le2", "hasDuplicateRowCount"): P,
    ("key_dups0_warn", "isUnique"): F,
}
CORPUS_QUARANTINED = {1, 4, 5, 6, 8}  # rows the failing error-level row rules blame


def contract_file(tmp_path: Path, objects: list[dict[str, Any]], **top: Any) -> Path:
    """A contract file holding `objects` as its schema."""
    document = {"apiVersion": "v3.2.0", "kind": "DataContract", "id": "t", "version": "1", **top}
    document["schema"] = objects
    path = tmp_path / "contract.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def one_rule(tmp_path: Path, rule: dict[str, Any], column: str | None = "a") -> Path:
    """A contract with one quality rule, on property `column` or on the schema object."""
    prop: dict[str, Any] = {"name": "a", "logicalType": "integer"}
    obj: dict[str, Any] = {"name": "t", "properties": [prop, {"name": "b"}]}
    (prop if column else obj)["quality"] = [rule]
    return contract_file(tmp_path, [obj])


def mapped(path: Path, **options: Any) -> list[tuple[str, dict[str, Any]]]:
    from lakegate_config.yaml_document import load_yaml_document

    return list(translate_contract(load_yaml_document(path), **options).rules)


# ---- mapping, no Spark ------------------------------------------------------------------------


def test_the_items_example_maps_every_rule_to_a_constraint_with_its_path() -> None:
    suite = load_contract(ITEMS_CONTRACT)
    found = [(c.meta["path"], c.id, c.blames_rows) for c in suite.constraints]
    assert found == [
        ("schema[0].properties[0].primaryKey", "isComplete(id)", True),
        ("schema[0].properties[1].required", "isComplete(productName)", True),
        (
            "schema[0].properties[1].logicalTypeOptions.maxLength",
            "satisfies(productName maxLength 50)",
            True,
        ),
        ("schema[0].properties[2].quality[0]", "containsURL(description)", False),
        ("schema[0].properties[3].enum", "isContainedIn(priority)", True),
        ("schema[0].properties[4].logicalTypeOptions.minimum", "isInRange(numViews)", True),
        ("schema[0].properties[4].quality[0]", "isComplete(numViews)", True),
        ("schema[0].properties[0].primaryKey", "isPrimaryKey(id)", True),
        ("schema[0].quality[0]", "hasSize()", False),
        ("schema[0].quality[1]", "customSql(most_viewed)", False),
    ]
    assert dict(suite.expected_schema)["numViews"] == "bigint"
    urls = suite.constraints[3]
    assert urls.meta["id"] == "description_urls" and urls.meta["businessImpact"] == "operational"
    assert [c.level.value for c in suite.checks if "description" in c.name] == ["warning"]


def test_the_corpus_holds_at_least_forty_rules_each_in_the_oracle() -> None:
    suite = load_contract(CORPUS)
    keys = [(c.meta.get("id", c.meta["path"]), c.kind) for c in suite.constraints]
    assert len(keys) >= 40
    assert sorted(keys) == sorted(CORPUS_EXPECTED)


@pytest.mark.parametrize(
    ("operators", "unit", "row_level"),
    [
        ({"mustBe": 0}, "rows", True),
        ({"mustBeLessThan": 1}, "rows", True),
        ({"mustBeLessThan": 0.5}, "rows", True),
        ({"mustBeLessOrEqualTo": 0}, "rows", True),
        ({"mustBeLessOrEqualTo": 0.9}, "rows", True),
        ({"mustBeBetween": [0, 0]}, "rows", True),
        ({"mustBeBetween": [-3, 0.5]}, "rows", True),
        ({"mustBeLessThan": 2}, "rows", False),
        ({"mustBe": 1}, "rows", False),
        ({"mustNotBe": 1}, "rows", False),
        ({"mustBeGreaterThan": -1}, "rows", False),
        ({"mustNotBeBetween": [1, 5]}, "rows", False),
        ({"mustBeLessThan": 0}, "rows", False),  # admits nothing: a table-level failure
        ({"mustBe": 0}, "percent", True),
        ({"mustBeLessOrEqualTo": 0}, "percent", True),
        ({"mustBeLessThan": 0.0001}, "percent", False),  # a big table has a smaller share
        ({"mustBeLessThan": 1}, "percent", False),
    ],
)
def test_a_rule_is_a_row_rule_exactly_when_it_admits_no_failing_row(
    operators: dict[str, Any], unit: str, row_level: bool
) -> None:
    assert admits_only_zero(list(operators.items()), unit) is row_level


def test_percent_thresholds_become_shares_and_counts_stay_counts(tmp_path: Path) -> None:
    percent = {"metric": "nullValues", "mustBeBetween": [5, 10], "unit": "percent"}
    rows = {"metric": "nullValues", "mustBeLessThan": 3}
    assert mapped(one_rule(tmp_path, percent))[-1][1] == {
        "satisfies": {"name": "a nullValues", "condition": "`a` IS NULL", "between": [0.05, 0.1]}
    }
    assert mapped(one_rule(tmp_path, rows))[-1][1] == {"hasSize": {"where": "`a` IS NULL", "lt": 3}}


def test_invalid_values_count_only_present_values_outside_the_valid_ones(tmp_path: Path) -> None:
    rule = {"metric": "invalidValues", "arguments": {"validValues": [1, 2]}, "mustBeLessThan": 5}
    ((_, entry),) = mapped(one_rule(tmp_path, rule))[-1:]
    assert entry == {"hasSize": {"where": "(`a` IS NOT NULL AND NOT (`a` IN (1, 2)))", "lt": 5}}


def test_sql_placeholders_name_the_validated_table_and_the_property(tmp_path: Path) -> None:
    rule = {
        "type": "sql",
        "query": 'SELECT count(*) FROM "{object}" WHERE {property} < 0',
        "mustBe": 0,
    }
    ((_, entry),) = mapped(one_rule(tmp_path, rule))[-1:]
    assert entry["customSql"]["query"] == "SELECT count(*) FROM {table} WHERE `a` < 0"
    assert entry["customSql"]["eq"] == 0


@pytest.mark.parametrize(
    ("severity", "level"),
    [(None, "error"), ("error", "error"), ("critical", "error"), ("warning", "warning"),
     ("info", "warning"), ("Low", "warning"), ("whatever", None)],
)  # fmt: skip
def test_severity_maps_to_a_level(severity: str | None, level: str | None) -> None:
    assert level_of(severity) == level


def test_a_composite_primary_key_follows_primary_key_position(tmp_path: Path) -> None:
    props = [
        {"name": "b", "primaryKey": True, "primaryKeyPosition": 2},
        {"name": "a", "primaryKey": True, "primaryKeyPosition": 1},
    ]
    entries = [e for _, e in mapped(contract_file(tmp_path, [{"name": "t", "properties": props}]))]
    assert {"isPrimaryKey": {"columns": ["a", "b"]}} in entries
    assert {"isComplete": {"column": "a"}} in entries and {"isComplete": {"column": "b"}} in entries


@pytest.mark.parametrize(
    ("rule", "column", "path", "says"),
    [
        ({"metric": "nullValue", "mustBe": 0}, "a", "schema[0].properties[0].quality[0].metric",
         "did you mean 'nullValues'"),
        ({"metric": "rowCount", "mustBe": 1}, "a", "schema[0].properties[0].quality[0].metric",
         "schema-level metric"),
        ({"metric": "nullValues", "mustBe": 0}, None, "schema[0].quality[0].metric",
         "property-level metric"),
        ({"metric": "duplicateValues", "arguments": {"properties": ["a", "zz"]}, "mustBe": 0},
         None, "schema[0].quality[0].arguments.properties", "unknown property 'zz'"),
        ({"metric": "nullValues", "arguments": {"x": 1}, "mustBe": 0}, "a",
         "schema[0].properties[0].quality[0].arguments.x", "takes no argument 'x'"),
        ({"metric": "nullValues"}, "a", "schema[0].properties[0].quality[0]", "no operator"),
        ({"metric": "nullValues", "mustBe": 0, "unit": "km"}, "a",
         "schema[0].properties[0].quality[0].unit", "give rows or percent"),
        ({"type": "custom", "engine": "lakegate", "implementation": {"isCompleet": "a"}}, "a",
         "schema[0].properties[0].quality[0].implementation", "did you mean 'isComplete'"),
        ({"type": "sql", "query": "SELECT {property}", "mustBe": 0}, None,
         "schema[0].quality[0].query", "{property} names the rule's property"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_refused_with_its_line_and_path(
    tmp_path: Path, rule: dict[str, Any], column: str | None, path: str, says: str
) -> None:
    file = one_rule(tmp_path, rule, column)
    with pytest.raises(SuiteError) as raised:
        load_contract(file)
    message = str(raised.value)
    assert re.search(rf"{re.escape(str(file))}:\d+: {re.escape(path)}: ", message), message
    assert says in message


def test_an_operator_on_the_wrong_level_is_an_unknown_key_with_its_path(tmp_path: Path) -> None:
    prop = {"name": "a", "mustBe": 0, "requird": True}
    file = contract_file(tmp_path, [{"name": "t", "properties": [prop]}])
    with pytest.raises(SuiteError) as raised:
        load_contract(file)
    message = str(raised.value)
    assert f"{file}:9: schema[0].properties[0].mustBe: unknown key 'mustBe'" in message
    assert (
        "schema[0].properties[0].requird: unknown key 'requird'; did you mean 'required'?"
        in message
    )


def test_an_unknown_logical_type_is_refused_and_time_is_not_executable(tmp_path: Path) -> None:
    typo = contract_file(
        tmp_path, [{"name": "t", "properties": [{"name": "a", "logicalType": "strin"}]}]
    )
    with pytest.raises(
        SuiteError, match=r"logicalType: unknown logicalType 'strin'; did you mean 'string'"
    ):
        load_contract(typo)
    time = contract_file(
        tmp_path, [{"name": "t", "properties": [{"name": "a", "logicalType": "time"}]}]
    )
    with pytest.raises(SuiteError, match=r"--allow-unexecutable skips it"):
        load_contract(time)
    assert load_contract(time, allow_unexecutable=True).expected_schema == ()


def test_report_html_shows_each_rules_contract_annotations_and_the_skipped_rules() -> None:
    from spark_jobs.services.html_report import render_report_html

    constraint = {
        "check": "items.description (warning)", "level": "warning",
        "constraint": "containsURL(description)", "type": "containsURL",
        "columns": ["description"], "expectation": ">= 0.5", "status": "failure",
        "metric": 0.4, "message": None, "deequ_constraint": "", "row_level": False,
        "contract": {"path": "schema[0].properties[2].quality[0]", "id": "description_urls",
                     "dimension": "conformity", "businessImpact": "operational", "tags": ["web"]},
    }  # fmt: skip
    report = {
        "suite": "items", "suite_file": "items.odcs.yaml", "run_id": "r", "started_at": "",
        "finished_at": "", "duration_seconds": 1.0, "input": "items.csv", "status": "warning",
        "exit_code": 0, "counts": {"rows_in": 5, "rows_valid": 5, "rows_quarantined": 0},
        "quarantine_reasons": {}, "constraints": [constraint], "outputs": {},
        "skipped": [{"path": "schema[0].quality[3].type", "line": 12, "reason": "a text rule"}],
    }  # fmt: skip
    html = render_report_html(report, [], {})
    assert "description_urls · conformity · impact: operational · web" in html
    assert "<code>schema[0].quality[3].type</code>" in html and "a text rule" in html


def test_text_rules_are_refused_unless_allowed_then_reported_as_skipped(tmp_path: Path) -> None:
    rule = {"type": "text", "description": "emails are verified"}
    file = one_rule(tmp_path, rule)
    with pytest.raises(SuiteError, match=r"quality\[0\]\.type: a text rule .* cannot be executed"):
        load_contract(file)
    suite = load_contract(file, allow_unexecutable=True)
    assert suite.skipped == (
        {
            "path": "schema[0].properties[0].quality[0].type",
            "line": suite.skipped[0]["line"],
            "reason": "a text rule describes the data in words; it cannot be executed",
        },
    )
    assert suite.skipped[0]["line"] is not None


def test_several_schema_objects_need_a_schema_name(tmp_path: Path) -> None:
    objects = [
        {"name": "a", "properties": [{"name": "x", "required": True}]},
        {"name": "b", "properties": [{"name": "y", "required": True}]},
    ]
    file = contract_file(tmp_path, objects)
    with pytest.raises(SuiteError, match=r"2 schema objects \(a, b\); pick one with --schema-name"):
        load_suite(file)
    assert [c.columns for c in load_suite(file, schema_name="b").constraints] == [["y"]]
    with pytest.raises(SuiteError, match="no schema object named 'c'"):
        load_suite(file, schema_name="c")


def test_odcs_v2_contracts_are_refused(tmp_path: Path) -> None:
    file = contract_file(tmp_path, [], apiVersion="v2.2.2")
    with pytest.raises(SuiteError, match="lakegate reads ODCS v3 contracts"):
        load_suite(file)


def test_validate_refuses_a_bad_contract_with_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = one_rule(tmp_path, {"metric": "rowCount", "mustBe": 5})
    out = tmp_path / "out"
    code = main(["validate", str(file), "--input", "data/items.csv", "--output", str(out)])
    assert code == 2
    assert "schema[0].properties[0].quality[0].metric: rowCount is a schema-level metric" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_contract_check_lints_without_spark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contract", "check", str(ITEMS_CONTRACT)]) == 0
    shown = capsys.readouterr().out
    assert "schema[0].quality[1] -> customSql(most_viewed)  [table, warning]" in shown
    text = one_rule(tmp_path, {"type": "text", "description": "verified"})
    assert main(["contract", "check", str(text)]) == 2
    assert "not executable" in capsys.readouterr().out
    assert main(["contract", "check", str(text), "--allow-unexecutable"]) == 0


def test_contract_check_reports_odcs_json_schema_problems_with_line_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("jsonschema")
    rule = {"metric": "nullValues", "mustBe": 0, "dimension": "completenes"}
    file = one_rule(tmp_path, rule)
    assert main(["contract", "check", str(file)]) == 2
    shown = capsys.readouterr().out
    assert "ODCS JSON schema: 1 problem(s)" in shown
    assert (
        f"{file}:13: schema[0].properties[0].quality[0].dimension: 'completenes' is not one of"
        in shown
    )
    assert main(["contract", "check", str(ITEMS_CONTRACT)]) == 0
    assert "ODCS JSON schema: 0 problem(s)" in capsys.readouterr().out


def test_export_writes_odcs_forms_that_load_as_the_same_constraints(tmp_path: Path) -> None:
    suite = load_suite("checks/examples/items.yaml")
    out = tmp_path / "items.odcs.yaml"
    assert main(["contract", "export", "checks/examples/items.yaml", "-o", str(out)]) == 0
    contract = yaml.safe_load(out.read_text())
    assert contract["schema"][0]["properties"][0] == {
        "name": "id",
        "required": True,
        "unique": True,
    }
    again = load_suite(out)

    def described(s: Any) -> list[tuple[str, list[str], str, str]]:
        return sorted(
            (c.kind, c.columns, c.assertion_text(), check.level.value)
            for check in s.checks
            for c in check.constraints
        )

    assert described(again) == described(suite)


# ---- on Spark: the corpus, table-level rules, the round trip -----------------------------------


@pytest.fixture(scope="module")
def orders(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[DataFrame, Path]:
    path = tmp_path_factory.mktemp("orders") / "orders.parquet"
    df = spark.createDataFrame(ORDERS, ORDERS_SCHEMA)
    df.coalesce(1).write.parquet(str(path))
    return df, path


def validate(contract: Path, table: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["validate", str(contract), "--input", str(table), "--output", str(out),
                 "--no-history", "--no-html-report", "--quiet", *extra])  # fmt: skip
    return code, json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_the_corpus_gives_the_oracles_status_for_every_rule(
    spark: SparkSession, orders: tuple[DataFrame, Path], tmp_path: Path
) -> None:
    df, table = orders
    code, report = validate(CORPUS, table, tmp_path / "out")
    statuses = {
        (c["contract"].get("id", c["contract"]["path"]), c["type"]): c["status"]
        for c in report["constraints"]
    }
    wrong = {k: v for k, v in statuses.items() if CORPUS_EXPECTED.get(k) != v}
    assert wrong == {}
    assert len(statuses) == len(CORPUS_EXPECTED)
    assert code == 1 and report["status"] == "failure"
    counts = report["counts"]
    assert counts["rows_in"] == counts["rows_valid"] + counts["rows_quarantined"] == len(ORDERS)
    valid = spark.read.format("delta").load(report["outputs"]["valid"])
    assertDataFrameEqual(valid, df.where(~df.rid.isin(CORPUS_QUARANTINED)))
    quarantine = spark.read.format("delta").load(report["outputs"]["quarantine"])
    assert {r.rid for r in quarantine.select("rid").collect()} == CORPUS_QUARANTINED
    sql = next(c for c in report["constraints"] if c["contract"].get("id") == "price_mean_sql")
    assert sql["metric"] == pytest.approx(48.9)
    assert sql["contract"]["type"] == "sql"


def test_a_contract_of_table_level_rules_quarantines_nothing_and_lists_skipped_rules(
    spark: SparkSession, orders: tuple[DataFrame, Path], tmp_path: Path
) -> None:
    df, table = orders
    corpus = yaml.safe_load(CORPUS.read_text())
    table_level = [r for r in corpus["schema"][0]["quality"] if r["id"].startswith("rows_")]
    props = [
        {
            "name": "qty",
            "logicalType": "integer",
            "quality": [
                {"metric": "nullValues", "mustBeLessThan": 5},
                {"type": "sql", "query": "SELECT count(*) FROM {object}", "mustBe": 3},
                {"type": "text", "description": "quantities are counted by hand"},
            ],
        }
    ]
    objects = [{"name": "orders", "properties": props, "quality": table_level}]
    file = contract_file(tmp_path, objects)
    code, report = validate(file, table, tmp_path / "out", "--allow-unexecutable")
    assert code == 1  # rows_gt10, rows_not10 and the sql rule fail: the whole table stays valid
    assert report["counts"]["rows_quarantined"] == 0
    assertDataFrameEqual(spark.read.format("delta").load(report["outputs"]["valid"]), df)
    assert [s["path"] for s in report["skipped"]] == ["schema[0].properties[0].quality[2].type"]


def test_a_sql_rule_whose_query_does_not_analyse_exits_2_before_writing(
    orders: tuple[DataFrame, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, table = orders
    rule = {"type": "sql", "query": "SELECT count(nope) FROM {object}", "mustBe": 0}
    file = contract_file(tmp_path, [{"name": "orders", "quality": [rule]}])
    out = tmp_path / "out"
    code = main(["validate", str(file), "--input", str(table), "--output", str(out), "--quiet"])
    assert code == 2
    assert "is not valid SQL on this table" in capsys.readouterr().err
    assert not (out / "report.json").exists()


ROUND_TRIP_SUITE = """
suite: orders
schema: {rid: int, code: string, qty: bigint, price: double}
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: code
      - isUnique: code
      - isContainedIn: {column: status, values: [new, paid, bad, '', N/A]}
      - isInRange: {column: qty, min: 1, max: 9}
      - hasPattern: {column: email, pattern: '@'}
      - satisfies: {name: cheap, condition: 'price < 95', where: 'qty > 1'}
      - hasSize: {between: [5, 20]}
      - hasMean: {column: price, min: 40}
  - name: watch
    level: warning
    constraints:
      - isComplete: day
      - isUnique: tenant
      - hasSize: {lt: 5}
"""


@pytest.mark.slow
def test_export_then_validate_gives_the_suites_statuses_and_split(
    spark: SparkSession, orders: tuple[DataFrame, Path], tmp_path: Path
) -> None:
    _, table = orders
    suite_file = tmp_path / "orders.yaml"
    suite_file.write_text(ROUND_TRIP_SUITE)
    exported = tmp_path / "orders.odcs.yaml"
    assert main(["contract", "export", str(suite_file), "-o", str(exported)]) == 0
    code_a, a = validate(suite_file, table, tmp_path / "suite")
    code_b, b = validate(exported, table, tmp_path / "contract")

    def statuses(report: dict[str, Any]) -> list[tuple[str, str, str]]:
        plain = [re.sub(r" in check .*$", "", c["constraint"]) for c in report["constraints"]]
        return sorted(zip(plain, [c["level"] for c in report["constraints"]],
                          [c["status"] for c in report["constraints"]], strict=True))  # fmt: skip

    assert statuses(b) == statuses(a)
    assert (code_b, b["status"], b["counts"]) == (code_a, a["status"], a["counts"])
    assert a["counts"]["rows_quarantined"] > 0

    def table_of(report: dict[str, Any], name: str) -> DataFrame:
        return spark.read.format("delta").load(report["outputs"][name]).drop("_lakegate_errors")

    assertDataFrameEqual(table_of(b, "valid"), table_of(a, "valid"))
    assertDataFrameEqual(table_of(b, "quarantine"), table_of(a, "quarantine"))
    assert YamlDocument  # the exported contract is also a document lakegate's mapping reads
    assert suite_contract(load_suite(suite_file))[1] == []
