"""MLflow tracking and registry on PostgreSQL: a throwaway cluster, a real `mlflow server` on it.

The cluster comes from the machine's PostgreSQL (`initdb`/`pg_ctl`, Debian's `postgresql`
package); the server talks to it with psycopg (lakegate's `postgres` extra). Without either the
tests skip, except in CI (CI set), where they fail: CI installs both.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from model_fixtures import train, users_frame
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SERVER_START_SECONDS = 240


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def _postgres_bin() -> Path:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    if found is None:
        _missing("no PostgreSQL server binaries (initdb): apt-get install postgresql")
    return Path(os.path.realpath(found)).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_cluster_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as `postgres` then (Debian's package user)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    binaries = _postgres_bin()
    try:
        import psycopg  # SQLAlchemy's default PostgreSQL driver, which MLflow's server uses
    except ImportError:
        _missing("psycopg is not installed (lakegate[postgres])")
    base = Path(tempfile.mkdtemp(prefix="lakegate-pg-"))
    base.chmod(0o755)  # the cluster owner reaches its folders under it
    data, sockets = base / "data", base / "run"
    for folder in (data, sockets):
        folder.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        _as_cluster_owner(
            [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    started = subprocess.run(
        _as_cluster_owner(
            [*pg_ctl, "-l", str(sockets / "log"), "-w", "-t", "120", "-o", options, "start"]
        ),
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        connection = psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
        connection.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_cluster_owner([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    port = _free_port()
    log = (artifacts.parent / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            postgres_url,
            "--artifacts-destination",
            str(artifacts),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",  # one process: uvicorn's supervisor of several kills workers that
            "1",  # miss its 5 s health pings, which they do on a loaded machine
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # MLflow's server-side job execution (on by default over a database store) starts a
        # job runner and seven huey consumers, each a Python importing MLflow: no test here
        # runs a job, so the server is one process instead of ten.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health in time"
            time.sleep(1)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        log.close()


@pytest.fixture
def pg_settings(
    settings: Settings, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The test settings with the PostgreSQL-backed server as tracking store and registry."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow_conf = settings.mlflow.model_copy(update={"tracking_uri": mlflow_server})
    yield settings.model_copy(update={"mlflow": mlflow_conf})
    mlflow.set_tracking_uri(settings.tracking_uri)  # training sets the global URI
    mlflow.set_registry_uri(settings.registry_uri)


def _registry_rows(postgres_url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def test_train_register_alias_and_predict_against_mlflow_on_postgres(
    spark: SparkSession, pg_settings: Settings, postgres_url: str, tmp_path: Path
) -> None:
    result = train(pg_settings, "pg_users")
    assert (result.version, result.aliases) == ("1", ["challenger", "champion"])
    assert _registry_rows(
        postgres_url,
        "SELECT version FROM model_versions WHERE name = %s",
        "pg_users",
    ) == [(1,)]
    assert sorted(
        _registry_rows(
            postgres_url,
            "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
            "pg_users",
        )
    ) == [("challenger", 1), ("champion", 1)]

    frame = users_frame(rows=40, seed=11)[["user_id", "feature_1", "feature_2", "feature_3"]]
    features = tmp_path / "features.parquet"
    frame.to_parquet(features)
    output = tmp_path / "predictions"
    args = ["predict", "--model", "models:/pg_users@champion", "--input", str(features)]
    assert main([*args, "--key", "user_id", "--output", str(output)]) == 0

    import mlflow.sklearn

    model = mlflow.sklearn.load_model("models:/pg_users@champion")  # through the server
    expected = pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "prediction": model.predict(frame[["feature_1", "feature_2", "feature_3"]]),
            "model_name": "pg_users",
            "model_version": "1",
        }
    )
    written = spark.read.format("delta").load(str(output))
    assertDataFrameEqual(
        written.drop("scored_at"),
        spark.createDataFrame(
            expected, "user_id long, prediction long, model_name string, model_version string"
        ),
    )


def test_two_trainers_at_once_lose_no_version_and_keep_aliases_consistent(
    pg_settings: Settings, postgres_url: str
) -> None:
    name, rounds = "pg_race", 3
    client = MlflowClient(tracking_uri=pg_settings.tracking_uri)
    for round_ in range(rounds):
        start = threading.Barrier(2)

        def trainer(seed: int, start: threading.Barrier = start) -> str:
            start.wait(timeout=60)
            return train(pg_settings, name, seed=seed).version

        with ThreadPoolExecutor(2) as pool:
            versions = list(pool.map(trainer, [round_ * 2, round_ * 2 + 1]))
        assert len(set(versions)) == 2, f"round {round_}: {versions}"

    registered = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    assert registered == list(range(1, 2 * rounds + 1))
    assert _registry_rows(
        postgres_url, "SELECT count(*) FROM model_versions WHERE name = %s", name
    ) == [(2 * rounds,)]
    scores = {
        v: client.get_run(client.get_model_version(name, str(v)).run_id).data.metrics["accuracy"]
        for v in registered
    }
    champion = int(client.get_model_version_by_alias(name, "champion").version)
    assert scores[champion] == max(scores.values()), scores
    assert int(client.get_model_version_by_alias(name, "challenger").version) in registered
    assert pd.Series(scores).notna().all()
