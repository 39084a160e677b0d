# Databricks notebook source
# MAGIC %md
# MAGIC # An MLflow model as a Spark SQL function
# MAGIC One line registers it; every call is checked against the model's signature before any task runs.

# COMMAND ----------

from spark_jobs.session import get_session
from spark_jobs.settings import load_settings
from udfs import register_model_function, run_checked_sql

settings = load_settings()
spark = get_session(settings)  # in a notebook that already has `spark`, this returns it

# COMMAND ----------

register_model_function(
    spark, "predict_users", "models:/users@champion", tracking_uri=settings.tracking_uri
)
spark.read.parquet("data/users_features.parquet").createOrReplaceTempView("features")

# COMMAND ----------

# Recommended: bind by name with struct(*); the key and other columns are ignored.
run_checked_sql(spark, "SELECT user_id, predict_users(struct(*)) AS p FROM features").show(5)

# COMMAND ----------

# Swapped columns are refused before any task runs (ModelUsageError names the argument).
try:
    run_checked_sql(spark, "SELECT predict_users(feature_2, feature_1, feature_3) FROM features")
except ValueError as error:
    print(error)
