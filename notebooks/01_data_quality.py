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
from checks.suite import check_against_schema, load_suite
from spark_jobs.services.settings import load_settings
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
