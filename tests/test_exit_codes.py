"""One exit code per kind of fault, whichever command meets it (docs/bad-inputs.md, "Exit codes").

An environment problem (a tracking store or registry that cannot be reached, a port another
process holds) is exit 3 in every command; a fault in what the user gave is exit 2.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lakegate_config.settings import PROJECT_ROOT
from spark_jobs.cli import main

UNREACHABLE = "cannot reach the MLflow registry"


@pytest.fixture
def unreachable_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir) -> str:
    """conf/test.yaml with a sqlite tracking store under a regular file (it cannot be opened)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    conf = tmp_path / "conf"
    conf.mkdir()
    document = yaml.safe_load((PROJECT_ROOT / "conf" / "test.yaml").read_text())
    document["mlflow"] = {"tracking_uri": f"sqlite:///{blocker / 'mlflow.db'}"}
    (conf / "test.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(conf))
    # mlflow.set_tracking_uri (called by earlier tests in this process) also sets the
    # environment variable, which outranks conf/: without this the store would be reachable.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return str(blocker)


@pytest.fixture(scope="module")
def features(spark, tmp_path_factory) -> str:
    from model_fixtures import users_frame

    path = str(tmp_path_factory.mktemp("exit-codes") / "users.parquet")
    spark.createDataFrame(users_frame(rows=20)).write.parquet(path)
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_predict_with_an_unreachable_registry_exits_3(
    unreachable_registry, features, tmp_path, capsys
):
    output = tmp_path / "out"
    code = main(
        [
            "predict",
            "--env",
            "test",
            "--model",
            "models:/users@champion",
            "--input",
            features,
            "--output",
            str(output),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert UNREACHABLE in err and "Traceback" not in err
    assert not output.exists()


def test_sql_with_an_unreachable_registry_exits_3(unreachable_registry, spark, capsys):
    code = main(
        ["sql", "--env", "test", "--model", "users=models:/users@champion", "-e", "SELECT 1"]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert UNREACHABLE in err and "Traceback" not in err


def test_train_with_an_unreachable_registry_exits_3(
    unreachable_registry, features, tmp_path, capsys
):
    data = yaml.safe_load((PROJECT_ROOT / "conf/jobs/train_users.yaml").read_text())
    data.update({"model_name": "exit_codes", "input": features, "derived_features": {}})
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["train", str(config), "--env", "test"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err


def test_serve_on_a_taken_port_exits_3(taken_port, state_dir, capsys):
    code = main(["serve", "--env", "test", "--port", str(taken_port)])
    assert code == 3
    assert f"cannot listen on 127.0.0.1:{taken_port}" in capsys.readouterr().err


def test_serve_sql_on_a_taken_port_exits_3(taken_port, state_dir, capsys):
    code = main(["serve-sql", "--env", "test", "--port", str(taken_port)])
    assert code == 3
    assert f"cannot listen on 127.0.0.1:{taken_port}" in capsys.readouterr().err
