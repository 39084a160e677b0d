# Databricks notebook source
# MAGIC %md
# MAGIC # Predictions in SQL
# MAGIC
# MAGIC One line turns the registered champion into the SQL function `predict_users`; a
# MAGIC prediction is then just a `SELECT`. Every call is checked against the model's signature
# MAGIC before any task runs. Needs the model and feature table of notebook 02.

# COMMAND ----------

from lakegate_config.settings import load_settings
from udfs import ModelUsageError, register_model_function, run_checked_sql

settings = load_settings()
try:
    spark  # noqa: B018  (provided by Databricks)
except NameError:
    from spark_jobs.services.session import get_session

    spark = get_session(settings)

MODEL_NAME = "notebook_users"
workdir = settings.state_path / "notebooks"
spark.read.format("delta").load(str(workdir / "features")).createOrReplaceTempView("features")

# COMMAND ----------

register_model_function(
    spark,
    "predict_users",
    f"models:/{MODEL_NAME}@champion",
    tracking_uri=settings.tracking_uri,
    registry_uri=settings.registry_uri,
)

# COMMAND ----------

# MAGIC %md
# MAGIC Recommended: bind by name with `struct(*)`; the key and other columns are ignored.

# COMMAND ----------

by_name = run_checked_sql(spark, "SELECT user_id, predict_users(struct(*)) AS churn FROM features")
by_name.show(5)

# COMMAND ----------

# MAGIC %md
# MAGIC Positional arguments bind in the signature's order; the same predictions come back.

# COMMAND ----------

positional = run_checked_sql(
    spark,
    "SELECT user_id, predict_users(feature_1, feature_2, feature_3) AS churn FROM features",
)
assert sorted(positional.collect()) == sorted(by_name.collect())
run_checked_sql(
    spark,
    "SELECT churn, COUNT(*) AS users FROM "
    "(SELECT predict_users(struct(*)) AS churn FROM features) GROUP BY churn",
).show()

# COMMAND ----------

# MAGIC %md
# MAGIC Swapped columns are refused before any task runs, naming the argument.

# COMMAND ----------

try:
    run_checked_sql(spark, "SELECT predict_users(feature_2, feature_1, feature_3) FROM features")
except ModelUsageError as error:
    print(error)
else:
    raise AssertionError("swapped arguments were not refused")
