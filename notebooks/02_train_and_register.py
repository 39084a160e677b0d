# Databricks notebook source
# MAGIC %md
# MAGIC # Train and register a model
# MAGIC
# MAGIC The seeds' synthetic users, checked and turned into features with Spark, then a
# MAGIC scikit-learn pipeline (scaler + logistic regression) trained, logged to MLflow with its
# MAGIC signature, input example and input gate, registered, and promoted to `champion` when it
# MAGIC scores at least as well as the current one. Run notebook 03 afterwards to predict in SQL.

# COMMAND ----------

from mlflow import MlflowClient

from spark_jobs import features as features_job
from spark_jobs import train as train_job
from spark_jobs import validate as validate_job
from spark_jobs.features import FeaturesSpec
from spark_jobs.sample_data import write_sample
from lakegate_config.settings import load_settings
from spark_jobs.services.training import load_train_config
from spark_jobs.train import TrainSpec
from spark_jobs.validate import ValidateSpec

settings = load_settings()
try:
    spark  # noqa: B018  (provided by Databricks)
except NameError:
    from spark_jobs.services.session import get_session

    spark = get_session(settings)

MODEL_NAME = "notebook_users"
workdir = settings.state_path / "notebooks"
raw = write_sample(workdir / "users.parquet", rows=5000, seed=21)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Quality gate, then features
# MAGIC Rows with missing features, unknown segments, negative counts or duplicated ids go to
# MAGIC quarantine; the features are Spark SQL expressions over the valid rows.

# COMMAND ----------

checked = validate_job.run(
    spark,
    settings,
    ValidateSpec(
        suite="checks/examples/users_raw.yaml",
        input=str(raw),
        output=str(workdir / "validated"),
        keep_history=False,
    ),
)
print(checked.counts, checked.quarantine_reasons)

features = features_job.run(
    spark,
    settings,
    FeaturesSpec(
        input=str(workdir / "validated" / "valid"),
        key=["user_id"],
        definitions={
            "feature_1": "feature_1",
            "feature_2": "feature_2",
            "feature_3": "feature_1 * feature_1",
        },
        passthrough=["target"],
        output=str(workdir / "features"),
        table="features",
    ),
)
spark.sql("SELECT * FROM features LIMIT 3").show()

# COMMAND ----------

# MAGIC %md
# MAGIC ## Train, register, promote

# COMMAND ----------

config = load_train_config("conf/jobs/train_users.yaml").model_copy(
    update={"model_name": MODEL_NAME}
)
result = train_job.run(
    spark,
    settings,
    TrainSpec(config="conf/jobs/train_users.yaml", input=str(workdir / "features")),
    config=config,
)
print(result.summary())
# The registry agrees with the decision: champion is this version when it scored at least as
# well as the previous champion, else still the previous one.
registry = MlflowClient(settings.tracking_uri, registry_uri=settings.registry_uri)
champion = registry.get_model_version_by_alias(MODEL_NAME, "champion")
previous = result.previous_champion_score
assert result.promoted == (previous is None or result.score >= previous), result.summary()
expected = result.version if result.promoted else result.previous_champion_version
assert str(champion.version) == expected, (champion.version, result.summary())
assert registry.get_run(champion.run_id).data.metrics[result.metric] == max(
    result.score, previous if previous is not None else result.score
)
