"""Training: pipeline from config, logging, registration, champion/challenger promotion, CLI."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from model_fixtures import train, train_config, users_frame

from lakegate_config.settings import Settings
from lakegate_config.yaml_document import DocumentError
from spark_jobs.cli import main
from spark_jobs.services.training import (
    build_pipeline,
    fit_and_evaluate,
    load_train_config,
    mlflow_stores,
    promote,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def test_bundled_users_config_is_valid_and_builds_scaler_then_logistic_regression():
    config = load_train_config(PROJECT_ROOT / "conf/jobs/train_users.yaml")
    pipeline = build_pipeline(config)
    assert [type(step).__name__ for _, step in pipeline.steps] == [
        "StandardScaler",
        "LogisticRegression",
    ]
    assert pipeline.steps[-1][1].C == 1.0
    assert config.derived_features == {"feature_3": "feature_1 * feature_1"}


def test_unknown_config_field_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model_name: m\ninput: x.parquet\nfeatures: [a]\ntarget: y\ntask: regression\n"
        "estimator: {class: sklearn.linear_model.LinearRegression}\nlearning_rate: 3\n"
    )
    with pytest.raises(DocumentError, match=r"bad.yaml:7: learning_rate"):
        load_train_config(path)


def test_first_model_becomes_champion_and_logs_params_metrics_and_signature(settings, client):
    result = train(settings, "train_promotion")
    assert result.promoted and result.version == "1"
    assert result.aliases == ["challenger", "champion"]
    run = client.get_run(result.run_id)
    assert run.data.params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.metrics["accuracy"] == pytest.approx(result.score)
    assert run.data.metrics["rows"] == 200
    assert run.data.tags["lakegate.data_source"] == "memory"
    model = client.get_model_version("train_promotion", "1")
    from mlflow.models import get_model_info

    with mlflow_stores(settings.tracking_uri, settings.registry_uri):
        info = get_model_info(f"models:/train_promotion/{model.version}")
    assert info.signature.inputs.input_names() == ["feature_1", "feature_2", "feature_3"]
    assert info.saved_input_example_info is not None


def test_worse_challenger_does_not_take_champion_but_better_one_does(settings, client):
    first = train(settings, "train_ladder")
    worse = train(
        settings,
        "train_ladder",
        estimator={
            "class": "sklearn.dummy.DummyClassifier",
            "params": {"strategy": "constant", "constant": 0},
        },
    )
    assert worse.score < first.score
    assert not worse.promoted
    assert (
        str(client.get_model_version_by_alias("train_ladder", "champion").version) == first.version
    )
    assert (
        str(client.get_model_version_by_alias("train_ladder", "challenger").version)
        == worse.version
    )
    assert "champion stays version 1" in worse.summary()
    better = train(
        settings,
        "train_ladder",
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 10.0}},
    )
    assert better.score >= first.score
    assert better.promoted
    assert (
        str(client.get_model_version_by_alias("train_ladder", "champion").version) == better.version
    )


def test_regressor_is_scored_with_r2(settings):
    result = train(settings, "train_regressor", "regression")
    assert result.metric == "r2"
    assert 0.9 < result.score <= 1.0


def test_training_leaves_the_processes_mlflow_environment_as_it_found_it(settings, monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which outranks conf/ in Settings: a
    # notebook or server that trained once would send every later command to that store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    train(settings, "train_environment")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    # mlflow's own module-level URIs too: a later command that relies on them (a notebook's
    # `mlflow.pyfunc.load_model("models:/...")`) must not find this training's store
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


def _write_config(tmp_path: Path, input_path: Path, **overrides: object) -> Path:
    data = yaml.safe_load((PROJECT_ROOT / "conf/jobs/train_users.yaml").read_text())
    data.update({"model_name": "train_cli", "input": str(input_path), **overrides})
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_cli_reads_parquet_with_spark_builds_feature_3_and_exits_0(
    spark, settings, tmp_path, capsys, client
):
    raw = users_frame().drop(columns=["feature_3", "spend"])
    spark.createDataFrame(raw).write.parquet(str(tmp_path / "users.parquet"))
    config = _write_config(tmp_path, tmp_path / "users.parquet")
    assert main(["train", str(config), "--json", str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["model_name"] == "train_cli" and result["promoted"] is True
    assert result["rows"] == 200
    assert "champion -> version" in capsys.readouterr().out
    run = client.get_run(result["run_id"])
    assert run.data.params["features"] == "feature_1,feature_2,feature_3"


def test_train_cli_missing_feature_column_exits_2_naming_it(spark, tmp_path, capsys):
    raw = users_frame().drop(columns=["feature_2", "feature_3"])
    spark.createDataFrame(raw).write.parquet(str(tmp_path / "users.parquet"))
    config = _write_config(tmp_path, tmp_path / "users.parquet")
    assert main(["train", str(config)]) == 2
    assert "has no column 'feature_2'" in capsys.readouterr().err


def test_train_cli_bad_estimator_class_exits_2(spark, tmp_path, capsys):
    spark.createDataFrame(users_frame()).write.parquet(str(tmp_path / "users.parquet"))
    config = _write_config(
        tmp_path, tmp_path / "users.parquet", estimator={"class": "sklearn.linear_model.Nope"}
    )
    assert main(["train", str(config)]) == 2
    assert "sklearn.linear_model.Nope" in capsys.readouterr().err


def test_train_cli_missing_input_exits_2(tmp_path, spark, capsys):
    config = _write_config(tmp_path, tmp_path / "absent.parquet")
    assert main(["train", str(config)]) == 2
    assert "absent.parquet" in capsys.readouterr().err


def test_tree_model_is_logged_with_skops_and_loads_back(settings):
    import mlflow

    tree = {
        "estimator": {
            "class": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 3, "random_state": 0},
        },
        "preprocessing": [],
    }
    result = train(settings, "train_tree", **tree)
    fitted = fit_and_evaluate(users_frame(), train_config("train_tree", **tree))
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.sklearn.load_model(result.model_uri)
    features = users_frame()[["feature_1", "feature_2", "feature_3"]]
    predictions = model.predict(features)
    assert predictions.tolist() == fitted.pipeline.predict(features).tolist()
    assert set(pd.unique(predictions)) == {0, 1}
    assert result.score == fitted.score


def _version_scoring(client: MlflowClient, name: str, experiment_id: str, score: float) -> str:
    """A registered version whose run logged `accuracy` = score (no model artifact needed)."""
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "accuracy", score)
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/model"
    return str(client.create_model_version(name, source, run_id=run.info.run_id).version)


def test_concurrent_promotions_leave_the_better_version_champion(settings, client):
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    name = "promotion_race"
    client.create_registered_model(name)
    experiment_id = mlflow.get_experiment_by_name(settings.mlflow.experiment) or None
    experiment_id = (
        experiment_id.experiment_id
        if experiment_id
        else mlflow.create_experiment(settings.mlflow.experiment)
    )
    for round_ in range(8):
        base = round_ / 10
        better = _version_scoring(client, name, experiment_id, base + 0.09)
        worse = _version_scoring(client, name, experiment_id, base + 0.05)
        start = threading.Barrier(2)

        def promote_after_start(version: str, score: float, start=start) -> bool:
            start.wait(timeout=30)
            return promote(client, name, version, score, "accuracy")[0]

        with ThreadPoolExecutor(2) as pool:
            promoted = list(
                pool.map(promote_after_start, [worse, better], [base + 0.05, base + 0.09])
            )
        champion = str(client.get_model_version_by_alias(name, "champion").version)
        assert champion == better, f"round {round_}: {promoted}"
    assert [m.name for m in client.search_registered_models(f"name LIKE '{name}%'")] == [name]
