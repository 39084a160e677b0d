# Databricks notebook source
# MAGIC %md
# MAGIC # Data quality with lakegate
# MAGIC
# MAGIC Unit tests for data: the Items example from Deequ (five items, two failing constraints,
# MAGIC one quarantined row) and the Great Expectations examples from our notes, both written as
# MAGIC lakegate suites and run through the same code as `lakegate validate`.
# MAGIC
# MAGIC On Databricks, install lakegate on the cluster (`%pip install lakegate`) and the provided
# MAGIC `spark` is used; locally, lakegate builds the session from `conf/`.

# COMMAND ----------

import tempfile

from checks.deequ_run import verify
from checks.gate import ERRORS_COLUMN
from checks.suite import check_against_schema
from checks.suite_formats import load_suite
from lakegate_config.settings import load_settings
from spark_jobs.validate import ValidateSpec, run

settings = load_settings()
try:
    spark  # noqa: B018  (provided by Databricks)
except NameError:
    from spark_jobs.services.session import get_session

    spark = get_session(settings)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The Items example

# COMMAND ----------

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
items_suite = load_suite("checks/examples/items.yaml")
check_against_schema(items_suite, items.schema)
outcome = verify(spark, items, items_suite)
for result in outcome.failed():
    print(f"{result.deequ_constraint}: {result.message}")
assert [(r.constraint, r.metric) for r in outcome.failed()] == [
    ("isComplete(productName)", 0.8),
    ("containsURL(description)", 0.4),
]

# COMMAND ----------

# MAGIC %md
# MAGIC The whole job on a table: valid rows, quarantined rows with their reasons, a report.

# COMMAND ----------

workdir = tempfile.mkdtemp(prefix="lakegate-notebook-")
items.write.mode("overwrite").parquet(f"{workdir}/items.parquet")
result = run(
    spark,
    settings,
    ValidateSpec(
        suite="checks/examples/items.yaml",
        input=f"{workdir}/items.parquet",
        output=f"{workdir}/items",
        keep_history=False,
    ),
)
print(result.counts)
quarantine = spark.read.format("delta").load(f"{workdir}/items/quarantine")
quarantine.select("id", f"{ERRORS_COLUMN}.message").show(truncate=False)
assert [row.id for row in quarantine.collect()] == [3]

# COMMAND ----------

# MAGIC %md
# MAGIC ## The Great Expectations examples
# MAGIC
# MAGIC `expect_column_distinct_values_to_be_in_set`, `expect_column_mean_to_be_between` and
# MAGIC `expect_column_max_to_be_between`, as lakegate constraints.

# COMMAND ----------

people = spark.createDataFrame(
    [
        ("1", "male", 1, 1334),
        ("2", "female", 2, 643),
        ("3", "male", 2, 645),
        ("4", "male", 1, 234),
        ("5", "female", 2, 23),
        ("6", "male", 1, 454),
        ("6", "male", 1, 454),
    ],
    "id string, gender string, col1 long, col2 long",
)
ge_suite = load_suite("checks/examples/great_expectations.yaml")
check_against_schema(ge_suite, people.schema)
ge_outcome = verify(spark, people, ge_suite)
for result in ge_outcome.results:
    print(f"{result.status:8} {result.constraint:28} value {result.metric}")
assert ge_outcome.status == "success"
assert [r.metric for r in ge_outcome.results][-1] == 541.0  # the observed mean of col2

# COMMAND ----------

# MAGIC %md
# MAGIC ## The seeds' Great Expectations suite, as it is
# MAGIC
# MAGIC The JSON GX wrote (`get_expectation_suite`) loads as a lakegate suite; `lakegate convert` shows
# MAGIC the translation.

# COMMAND ----------

from checks.great_expectations import load_gx_suite, suite_yaml

print(suite_yaml("checks/examples/great_expectations_suite.json"))
gx_suite = load_gx_suite("checks/examples/great_expectations_suite.json")
gx_outcome = verify(spark, people, gx_suite)
assert gx_outcome.status == "success" and gx_outcome.results[-1].metric == 541.0

# COMMAND ----------

# MAGIC %md
# MAGIC ## A suite suggested by Deequ, proven on the data
# MAGIC
# MAGIC Deequ's constraint suggestion (default rules) profiles the Items table; every suggestion is
# MAGIC checked on the table and relaxed or dropped when it fails.

# COMMAND ----------

from checks.suggestions import prove_suggestions, suggest_constraints, suggested_suite_yaml

items_df = spark.read.option("header", True).option("inferSchema", True).csv("data/items.csv")
suggested = prove_suggestions(spark, items_df, "items_suggested", suggest_constraints(spark, items_df))
print(suggested_suite_yaml(suggested, "data/items.csv"))
assert verify(spark, items_df, suggested.suite()).status == "success"

# COMMAND ----------

# MAGIC %md
# MAGIC ## Anomaly checks on the metrics history
# MAGIC
# MAGIC Three runs make a history; a run with half the rows is an anomaly for RelativeRateOfChange.

# COMMAND ----------

from pathlib import Path

import yaml

from checks.anomalies import compute_current_metrics, evaluate_anomalies, parse_anomalies
from lakegate_config.yaml_document import YamlDocument

anomaly_doc = YamlDocument(
    Path("anomalies.yaml"),
    yaml.safe_load("anomalies:\n  - Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8}"),
)
anomaly_checks = parse_anomalies(anomaly_doc)
anomaly_repo = Path(tempfile.mkdtemp()) / "metrics.json"
for _ in range(3):
    compute_current_metrics(spark, people, anomaly_checks, repository=anomaly_repo,
                            tags={"suite": "people"})
half = compute_current_metrics(spark, people.limit(3), anomaly_checks)
[size_result] = evaluate_anomalies(spark, anomaly_checks, half, anomaly_repo, "people")
print(size_result.message)
assert size_result.status == "failure"

# COMMAND ----------

# MAGIC %md
# MAGIC ## report.html
# MAGIC
# MAGIC One self-contained page per run: status, constraints, anomalies, quarantine samples, and a
# MAGIC chart per metric over the suite's history.

# COMMAND ----------

from spark_jobs.services.html_report import render_report_html

page = render_report_html(
    {"suite": "people", "run_id": "notebook", "input": "people", "status": "failure",
     "started_at": "", "finished_at": None, "duration_seconds": 0, "exit_code": 1,
     "suite_file": "", "counts": {"rows_in": 3, "rows_valid": 3, "rows_quarantined": 0},
     "quarantine_reasons": {}, "constraints": [], "anomalies": [size_result.as_dict()]},
    history=[],
    samples={},
)
Path(tempfile.mkdtemp(), "report.html").write_text(page)
assert "RelativeRateOfChange" in page
