"""`lakegate serve-sql`: a real Thrift JDBC server on loopback, reached by beeline and PyHive."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pyspark
import pytest
from mlflow import MlflowClient
from model_fixtures import train, users_frame
from pyhive import hive

from lakegate_config.settings import Settings
from spark_jobs.cli import main

FEATURES = ["feature_1", "feature_2", "feature_3"]
MODEL = "jdbcusers"
BEELINE = str(Path(pyspark.__file__).parent / "bin" / "beeline")
LAKEGATE = str(Path(sys.executable).with_name("lakegate"))
PREDICT = f"SELECT user_id, predict_{MODEL}(struct(*)) AS p FROM features ORDER BY user_id"
REFRESH_INTERVAL = 3


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def versions(settings: Settings) -> tuple[str, str]:
    first = train(settings, MODEL)
    second = train(
        settings,
        MODEL,
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.001}},
    )
    _point_champion(settings, str(first.version))
    return str(first.version), str(second.version)


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=50, seed=21)


@pytest.fixture(scope="module")
def server(
    settings: Settings, versions, users: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve-sql")
    users.to_parquet(folder / "features.parquet")
    port = _free_port()
    log = folder / "server.log"
    command = [
        LAKEGATE,
        "serve-sql",
        "--port",
        str(port),
        "--model",
        f"{MODEL}=models:/{MODEL}@champion",
        "--table",
        f"features={folder / 'features.parquet'}",
        "--refresh-interval",
        str(REFRESH_INTERVAL),
    ]
    with log.open("w") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LAKEGATE_ENV": "test"},
        )
    deadline = time.monotonic() + 240
    while "serving jdbc:hive2://" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"serve-sql did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield Server(process, port, log)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _point_champion(settings: Settings, version: str) -> None:
    MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(
        MODEL, "champion", version
    )


def _expected(settings: Settings, users: pd.DataFrame, version: str) -> list[int]:
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    return [int(v) for v in model.predict(users[FEATURES])]


def _beeline(server: Server, query: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BEELINE,
            "-u",
            f"jdbc:hive2://127.0.0.1:{server.port}",
            "--silent=true",
            "--outputformat=csv2",
            "-e",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pyhive(server: Server, query: str) -> list[tuple]:
    connection = hive.connect(host="127.0.0.1", port=server.port)
    try:
        cursor = connection.cursor()
        cursor.execute(query)
        return cursor.fetchall()
    finally:
        connection.close()


@pytest.mark.slow
def test_beeline_predictions_equal_the_models_own(server, settings, users, versions):
    result = _beeline(server, PREDICT)
    assert result.returncode == 0, result.stderr[-2000:]
    # beeline echoes its prompt before the first line of output
    text = re.sub(r"^\d+: jdbc:hive2://\S+> ", "", result.stdout.strip(), flags=re.MULTILINE)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(row["user_id"]) for row in rows] == users["user_id"].tolist()
    assert [int(row["p"]) for row in rows] == _expected(settings, users, versions[0])


@pytest.mark.slow
def test_pyhive_positional_call_equals_the_models_own(server, settings, users, versions):
    query = (
        f"SELECT predict_{MODEL}(feature_1, feature_2, feature_3) FROM features ORDER BY user_id"
    )
    assert [row[0] for row in _pyhive(server, query)] == _expected(settings, users, versions[0])


@pytest.mark.slow
def test_four_clients_at_once_get_the_same_right_answers(server, settings, users, versions):
    expected = _expected(settings, users, versions[0])
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: _pyhive(server, PREDICT), range(4)))
    for answer in answers:
        assert [row[1] for row in answer] == expected


@pytest.mark.slow
def test_views_and_functions_are_listed_to_clients(server):
    assert ("features",) in [(row[1],) for row in _pyhive(server, "SHOW TABLES")]
    functions = [row[0] for row in _pyhive(server, f"SHOW USER FUNCTIONS LIKE 'predict_{MODEL}'")]
    assert functions == [f"predict_{MODEL}"]


@pytest.mark.slow
def test_swapped_columns_fail_the_statement_with_a_clear_message(server):
    query = f"SELECT predict_{MODEL}(feature_2, feature_1, feature_3) FROM features"
    result = _beeline(server, query)
    assert result.returncode != 0
    assert f"{MODEL}: argument 1 is column 'feature_2' but the model's input 1" in result.stderr
    with pytest.raises(hive.OperationalError, match="the struct argument has no field 'feature_3'"):
        _pyhive(server, f"SELECT predict_{MODEL}(struct(feature_1, feature_2)) FROM features")


@pytest.mark.slow
def test_a_string_argument_fails_the_statement_with_a_cast_hint(server):
    query = f"SELECT predict_{MODEL}(CAST(feature_1 AS STRING), feature_2, feature_3) FROM features"
    with pytest.raises(
        hive.OperationalError, match=r"is string but the model's input 1 'feature_1' is double"
    ):
        _pyhive(server, query)


@pytest.mark.slow
def test_refresh_models_picks_up_a_moved_alias_while_the_server_runs(
    server, settings, users, versions
):
    _point_champion(settings, versions[1])
    try:
        report = _pyhive(server, "SELECT refresh_models()")[0][0]
        assert f"now {MODEL} version {versions[1]}" in report or "unchanged" in report
        moved = [row[1] for row in _pyhive(server, PREDICT)]
        assert moved == _expected(settings, users, versions[1])
        assert moved != _expected(settings, users, versions[0])
    finally:
        _point_champion(settings, versions[0])


@pytest.mark.slow
def test_the_refresh_interval_moves_back_without_any_statement(server, settings, users, versions):
    expected = _expected(settings, users, versions[0])
    deadline = time.monotonic() + REFRESH_INTERVAL * 10 + 30
    while [row[1] for row in _pyhive(server, PREDICT)] != expected:
        assert time.monotonic() < deadline, "the alias was not re-resolved in time"
        time.sleep(1)
    assert "now jdbcusers version" in server.log.read_text()


class _Weighty(mlflow.pyfunc.PythonModel):
    """A model holding 10 MB of weights, so a worker keeping it shows in its memory."""

    def __init__(self) -> None:
        self.weights = np.ones(1_250_000)

    def predict(self, context, model_input, params=None):
        return model_input.iloc[:, 0] * self.weights[0]


def test_a_worker_keeps_memory_flat_across_twenty_alias_moves(tmp_path, monkeypatch):
    """Each alias move ships the model under a new path; a worker keeps a bounded number."""
    from udfs.scoring import MAX_MODELS_VARIABLE, load_model_cached, loaded_model_paths

    monkeypatch.setenv(MAX_MODELS_VARIABLE, "2")
    saved = tmp_path / "weighty"
    mlflow.pyfunc.save_model(str(saved), python_model=_Weighty())
    moves = []
    for move in range(20):
        shipped = tmp_path / f"move-{move}" / "model"
        shutil.copytree(saved, shipped)
        moves.append(str(shipped))
    process = psutil.Process()
    for path in moves[:2]:
        load_model_cached(path)
    warm = process.memory_info().rss
    for path in moves[2:]:
        model = load_model_cached(path)
    grown_mb = (process.memory_info().rss - warm) / 2**20
    print(f"worker memory grew {grown_mb:.1f} MB over 18 moves of a 10 MB model")
    assert grown_mb < 40, f"the worker grew {grown_mb:.0f} MB over 18 moves of a 10 MB model"
    assert loaded_model_paths() == moves[-2:]
    assert model.predict(pd.DataFrame({"x": [2.0]})).tolist() == [2.0]


def test_a_bind_beyond_loopback_without_authentication_is_refused(capsys):
    assert main(["serve-sql", "--host", "0.0.0.0", "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert "will not listen on 0.0.0.0 without authentication" in err
    assert "LDAP, KERBEROS or CUSTOM" in err


@pytest.mark.slow
def test_a_taken_port_is_refused_before_spark_starts(server, capsys):
    assert main(["serve-sql", "--port", str(server.port)]) == 3
    assert f"cannot listen on 127.0.0.1:{server.port}" in capsys.readouterr().err


@pytest.mark.slow
def test_without_authentication_configured_any_user_and_password_get_in(server):
    """The control for the LDAP test below: the same client is let in when no mode is set."""
    connection = hive.connect(
        host="127.0.0.1", port=server.port, auth="LDAP", username="analyst", password="wrong"
    )
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == [(1,)]
    finally:
        connection.close()


@pytest.mark.slow
def test_sigterm_stops_the_server_its_jvm_and_closes_the_port(server):
    process = psutil.Process(server.process.pid)
    jvms = [child for child in process.children(recursive=True) if "java" in child.name()]
    assert jvms, "the server's JVM was not found"
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(jvms, timeout=30)
    assert not alive
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect(("127.0.0.1", server.port))


@pytest.mark.slow
def test_configured_ldap_authentication_is_enforced(settings, versions, tmp_path):
    """hive_conf reaches HiveServer2: with LDAP on (an unreachable directory), nobody gets in."""
    conf = tmp_path / "conf"
    conf.mkdir()
    closed = _free_port()
    (conf / "test.yaml").write_text(
        (settings.project_root / "conf" / "test.yaml").read_text()
        + "sql_server:\n  hive_conf:\n    hive.server2.authentication: LDAP\n"
        + f"    hive.server2.authentication.ldap.url: ldap://127.0.0.1:{closed}\n"
        + "    hive.server2.authentication.ldap.baseDN: dc=example,dc=com\n"
    )
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "LAKEGATE_ENV": "test", "LAKEGATE_CONF_DIR": str(conf)}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [LAKEGATE, "serve-sql", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 240
        while "serving jdbc:hive2://" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with pytest.raises(Exception, match=r"(?i)TSocket read 0 bytes|auth|login|sasl"):
            hive.connect(
                host="127.0.0.1", port=port, auth="LDAP", username="analyst", password="wrong"
            ).cursor().execute("SELECT 1")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
