"""The main job end to end on a small copy of the sample data, and a pipeline that fails."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.pipeline import StepFailed, load_pipeline, run_pipeline
from spark_jobs.sample_data import synthetic_users, write_sample
from spark_jobs.services.training import mlflow_stores

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow


def pipeline_file(tmp_path: Path, model: str = "pipeline_users", **changes: object) -> Path:
    """The demo pipeline with its paths under `tmp_path` and its own model name."""
    train = yaml.safe_load(Path("conf/jobs/train_users.yaml").read_text())
    train["model_name"] = model
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    changes = {"train": {"config": str(tmp_path / "train.yaml")}, **changes}
    changes["predict"] = {"model": f"models:/{model}@champion", **changes.get("predict", {})}  # type: ignore[dict-item]
    config = yaml.safe_load(Path("conf/pipelines/users.yaml").read_text())
    config["report"] = str(tmp_path / "out/pipeline_report.json")
    config["sample_data"] = {"path": str(tmp_path / "users.parquet"), "rows": 4000, "seed": 11}
    for step in config["steps"]:
        ((kind, body),) = step.items()
        for field in ("input", "output"):
            if field in body and not body[field].startswith("models:"):
                body[field] = str(
                    tmp_path
                    / body[field].replace("data/generated/", "").replace("out/users/", "out/")
                )
        body.update(changes.get(kind, {}))  # type: ignore[arg-type]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pipeline_run(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    config = load_pipeline(pipeline_file(tmp_path))
    return tmp_path, run_pipeline(spark, settings, config, quiet=True)


def test_pipeline_quarantines_the_injected_defects(pipeline_run) -> None:
    tmp_path, result = pipeline_run
    raw = synthetic_users(4000, seed=11)
    validate = result.validate
    expected_bad = (
        raw["user_id"].duplicated(keep=False)
        | raw["feature_1"].isna()
        | ~raw["segment"].isin(["free", "pro", "team"])
        | (raw["sessions"] < 0)
    )
    counts = validate.counts
    assert (counts.rows_in, counts.rows_valid, counts.rows_quarantined) == (
        4000,
        int((~expected_bad).sum()),
        int(expected_bad.sum()),
    )
    assert validate.quarantine_reasons == {
        "isUnique(user_id)": int(raw["user_id"].duplicated(keep=False).sum()),
        "isComplete(feature_1)": int(raw["feature_1"].isna().sum()),
        "isContainedIn(segment)": int((~raw["segment"].isin(["free", "pro", "team"])).sum()),
        "isNonNegative(sessions)": int((raw["sessions"] < 0).sum()),
    }
    written = json.loads((tmp_path / "out/pipeline_report.json").read_text())
    assert written["steps"]["validate"]["counts"] == {
        "rows_in": counts.rows_in,
        "rows_valid": counts.rows_valid,
        "rows_quarantined": counts.rows_quarantined,
    }


def test_pipeline_registers_a_champion_and_predicts_what_the_model_predicts(
    spark: SparkSession,
    settings: Settings,
    pipeline_run,
) -> None:
    tmp_path, result = pipeline_run
    trained = result.train
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    champion = client.get_model_version_by_alias("pipeline_users", "champion")
    assert str(champion.version) == trained.version

    features = spark.read.format("delta").load(str(tmp_path / "out/features"))
    assert spark.sql("SELECT COUNT(*) AS n FROM features").first().n == features.count()
    with mlflow_stores(settings.tracking_uri, settings.registry_uri):
        model = mlflow.pyfunc.load_model(f"models:/pipeline_users/{trained.version}")
    frame = features.toPandas()
    frame["expected"] = model.predict(frame[["feature_1", "feature_2", "feature_3"]])
    expected = spark.createDataFrame(frame[["user_id", "expected"]]).select(
        "user_id", F.col("expected").cast("long").alias("prediction")
    )
    predictions = spark.read.format("delta").load(str(tmp_path / "out/predictions"))
    assertDataFrameEqual(predictions.select("user_id", F.col("prediction").cast("long")), expected)
    assert result.predict.rows_gated == 0
    assert result.predict.model_version == trained.version


def test_predict_gate_stops_out_of_range_rows(
    spark: SparkSession,
    settings: Settings,
    pipeline_run,
    tmp_path: Path,
) -> None:
    from spark_jobs import predict
    from spark_jobs.predict import PredictSpec

    root, _ = pipeline_run
    features = spark.read.format("delta").load(str(root / "out/features"))
    odd = (
        features.limit(3)
        .withColumn("feature_1", F.lit(1e6))
        .withColumn("user_id", F.concat(F.lit("odd-"), "user_id"))
    )
    source = tmp_path / "scoring.parquet"
    features.limit(50).unionByName(odd).write.parquet(str(source))
    outcome = predict.run(
        spark,
        settings,
        PredictSpec(
            model="models:/pipeline_users@champion",
            input=str(source),
            output=str(tmp_path / "p"),
            key=["user_id"],
            gate=True,
        ),
    )
    assert (outcome.rows_in, outcome.rows, outcome.rows_gated) == (53, 50, 3)
    assert outcome.gate_reasons == {"isInRange(feature_1)": 3}
    gated = spark.read.format("delta").load(str(tmp_path / "p_quarantine")).select("user_id")
    assertDataFrameEqual(gated, odd.select("user_id"))


def test_a_failing_step_stops_the_pipeline_and_keeps_finished_outputs(
    spark: SparkSession, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sample(tmp_path / "users.parquet", 2000, 5)
    path = pipeline_file(tmp_path, model="broken_users")
    train = yaml.safe_load((tmp_path / "train.yaml").read_text())
    train["features"] = ["feature_1", "feature_9"]
    train["derived_features"] = {}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "step 3 (train) failed" in err and "feature_9" in err and "Traceback" not in err
    assert spark.read.format("delta").load(str(tmp_path / "out/features")).count() > 0
    assert not (tmp_path / "out/predictions").exists()


def test_a_table_wide_failure_in_validate_stops_the_pipeline(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    suite = yaml.safe_load(Path("checks/examples/users_raw.yaml").read_text())
    suite["checks"][0]["constraints"][0] = {"hasSize": {"min": 10_000_000}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    config = load_pipeline(
        pipeline_file(tmp_path, validate={"suite": str(tmp_path / "suite.yaml")})
    )
    with pytest.raises(StepFailed, match=r"hasSize\(\)") as failure:
        run_pipeline(spark, settings, config, quiet=True)
    assert failure.value.exit_code == 1
    assert (tmp_path / "out/validated/report.json").exists()
    assert not (tmp_path / "out/features").exists()


def test_an_error_level_anomaly_in_validate_stops_the_pipeline(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    suite = yaml.safe_load(Path("checks/examples/users_raw.yaml").read_text())
    suite["anomalies"] = [
        {"Size": {"strategy": "SimpleThresholds", "lowerBound": 0, "upperBound": 10}}
    ]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    config = load_pipeline(
        pipeline_file(tmp_path, validate={"suite": str(tmp_path / "suite.yaml")})
    )
    with pytest.raises(StepFailed, match=r"anomaly Size") as failure:
        run_pipeline(spark, settings, config, quiet=True)
    assert failure.value.exit_code == 1
    assert not (tmp_path / "out/features").exists()


@pytest.mark.parametrize(
    "broken",
    [
        {"validate": {"suite": "no/such/suite.yaml"}},
        {"train": {"config": "no/such/train.yaml"}},
    ],
    ids=["missing suite", "missing train config"],
)
def test_a_step_failing_on_a_bad_file_names_its_step_and_ends_its_progress_line(
    spark: SparkSession,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    broken: dict[str, dict[str, str]],
) -> None:
    write_sample(tmp_path / "users.parquet", 2000, 5)
    code = main(["run", str(pipeline_file(tmp_path, model="bad_file_users", **broken))])
    err = capsys.readouterr().err
    kind = next(iter(broken))
    step = {"validate": 1, "train": 3}[kind]
    assert code == 2, err
    assert f"\nlakegate: error: step {step} ({kind}) failed: " in err
    assert "no/such/" in err and "Traceback" not in err
