"""The same jobs on a real Spark standalone cluster (a master and two workers on loopback).

Outputs through `lakegate submit` equal the local run's, also when an executor is killed in the
middle of the job.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from spark_jobs.submit import spark_submit_path

pytestmark = pytest.mark.slow
SPARK_CLASS = spark_submit_path().parent / "spark-class"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME=str(SPARK_CLASS.parent.parent))
    port = _free_port()
    master_log = logs / "master.log"
    processes = [
        subprocess.Popen(
            [
                str(SPARK_CLASS),
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(_free_port()),
            ],
            stdout=master_log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    ]
    url = f"spark://127.0.0.1:{port}"
    try:
        _wait_for(lambda: "I have been elected leader" in master_log.read_text(), 60, "the master")
        for i in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        str(SPARK_CLASS),
                        "org.apache.spark.deploy.worker.Worker",
                        url,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(_free_port()),
                        "--work-dir",
                        str(logs / f"work{i}"),
                    ],
                    stdout=(logs / f"worker{i}.log").open("w"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
        _wait_for(
            lambda: master_log.read_text().count("Registering worker") >= 2, 60, "two workers"
        )
        yield url
    finally:
        for process in processes:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()


def executor_processes() -> list[psutil.Process]:
    """The Spark executor JVMs running now."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "CoarseGrainedExecutorBackend" in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _kill_mid_job(executor: psutil.Process, job: subprocess.Popen[str]) -> None:
    """Kill `executor` while `job` runs; fail when the kill cannot have disturbed the job."""
    assert job.poll() is None, "the job ended before an executor could be killed"
    executor.kill()  # NoSuchProcess here: the executor was gone already, nothing was tested
    executor.wait(timeout=30)
    assert job.poll() is None, "the job ended as the executor was killed: not mid-job"


def submit(
    url: str, *args: str, state: Path, conf_dir: Path | None = None
) -> subprocess.Popen[str]:
    env = dict(os.environ, LAKEGATE_STATE_DIR=str(state))
    if conf_dir is not None:
        env["LAKEGATE_CONF_DIR"] = str(conf_dir)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark_jobs.cli",
            "submit",
            "--master",
            url,
            "--env",
            "local",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def users_table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spark_jobs.sample_data import synthetic_users

    path = tmp_path_factory.mktemp("users") / "users.parquet"
    spark.createDataFrame(synthetic_users(60_000, seed=3)).repartition(6).write.parquet(str(path))
    return path


def _assert_same_rows(left: DataFrame, right: DataFrame) -> None:
    """Require the same schema and the same multiset of rows, compared by Spark.

    `assertDataFrameEqual` collects and sorts both frames in Python: 35 s for 1.5M rows here,
    against 6 s for the two `exceptAll`s. The rows either side lacks are shown on failure.
    """
    assert left.schema == right.schema
    for extra in (left.exceptAll(right), right.exceptAll(left)):
        assertDataFrameEqual(extra.limit(20), extra.limit(0))


def _validate_args(table: Path, output: Path) -> list[str]:
    return [
        "validate",
        "checks/examples/users_raw.yaml",
        "--input",
        str(table),
        "--output",
        str(output),
        "--quiet",
        "--no-history",
    ]


def _assert_same_outputs(spark: SparkSession, left: Path, right: Path) -> None:
    for name in ("valid", "quarantine"):
        assertDataFrameEqual(
            spark.read.format("delta").load(str(left / name)),
            spark.read.format("delta").load(str(right / name)),
        )


@pytest.fixture(scope="module")
def local_run(
    spark: SparkSession, settings, users_table: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from spark_jobs.validate import ValidateSpec, run

    output = tmp_path_factory.mktemp("local") / "out"
    spec = ValidateSpec(
        suite="checks/examples/users_raw.yaml",
        input=str(users_table),
        output=str(output),
        keep_history=False,
    )
    assert run(spark, settings, spec).exit_code == 1  # the sample data has injected defects
    return output


def test_validate_on_the_cluster_equals_the_local_run_with_an_executor_killed(
    spark: SparkSession, cluster: str, users_table: Path, local_run: Path, tmp_path: Path
) -> None:
    """A lost executor's tasks run again elsewhere: the outputs are still the local run's."""
    output = tmp_path / "out"
    job = submit(cluster, *_validate_args(users_table, output), state=tmp_path / "state")

    _wait_for(lambda: len(executor_processes()) >= 2, 120, "the job's executors")
    time.sleep(3)  # into the Deequ scan
    _kill_mid_job(executor_processes()[0], job)
    stdout, stderr = job.communicate(timeout=300)
    assert job.returncode == 1, stderr
    assert "Rows: 60000 in" in stdout
    _assert_same_outputs(spark, output, local_run)


@pytest.fixture(scope="module")
def features_table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spark_jobs.sample_data import synthetic_users

    path = tmp_path_factory.mktemp("features") / "features.parquet"
    users = (
        spark.createDataFrame(synthetic_users(20_000, seed=4)).dropna().dropDuplicates(["user_id"])
    )
    users.selectExpr(
        "user_id", "feature_1", "feature_2", "feature_1 * feature_1 AS feature_3", "target"
    ).repartition(4).write.parquet(str(path))
    return path


def test_train_predict_and_sql_on_the_cluster_equal_the_local_run(
    spark: SparkSession,
    settings,
    cluster: str,
    features_table: Path,
    tmp_path: Path,
) -> None:
    import yaml

    from spark_jobs import predict
    from spark_jobs import train as train_job
    from spark_jobs.predict import PredictSpec
    from spark_jobs.train import TrainSpec

    train = yaml.safe_load(Path("conf/jobs/train_users.yaml").read_text())
    train.update(model_name="cluster_users", input=str(features_table), derived_features={})
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(train))
    state = tmp_path / "state"

    def run(*args: str) -> str:
        job = submit(cluster, *args, state=state)
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, (stdout + stderr)[-4000:]
        return stdout

    # Train and predict as one pipeline (`lakegate run`): one driver, executors started once.
    pipeline = {
        "pipeline": "cluster",
        "report": str(tmp_path / "pipeline.json"),
        "steps": [
            {"train": {"config": str(config_path)}},
            {
                "predict": {
                    "model": "models:/cluster_users@champion",
                    "input": str(features_table),
                    "output": str(tmp_path / "predictions"),
                    "key": ["user_id"],
                    "gate": False,
                }
            },
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    run("run", str(tmp_path / "pipeline.yaml"), "--quiet")
    trained = json.loads((tmp_path / "pipeline.json").read_text())["steps"]["train"]
    local = train_job.run(spark, settings, TrainSpec(config=str(config_path)))
    assert trained["score"] == pytest.approx(local.score, abs=1e-12)

    local_predictions = predict.run(
        spark,
        settings,
        PredictSpec(
            model=f"models:/cluster_users/{local.version}",
            input=str(features_table),
            output=str(tmp_path / "local_predictions"),
            key=["user_id"],
        ),
    )
    expected = (
        spark.read.format("delta").load(local_predictions.output).select("user_id", "prediction")
    )
    assertDataFrameEqual(
        spark.read.format("delta")
        .load(str(tmp_path / "predictions"))
        .select("user_id", "prediction"),
        expected,
    )

    run(
        "sql",
        "--model",
        "users=models:/cluster_users@champion",
        "--table",
        f"features={features_table}",
        "-e",
        "SELECT user_id, predict_users(struct(*)) AS prediction FROM features",
        "--output",
        str(tmp_path / "sql"),
    )
    assertDataFrameEqual(spark.read.format("delta").load(str(tmp_path / "sql")), expected)


def test_predict_survives_a_killed_executor(
    spark: SparkSession,
    settings,
    cluster: str,
    features_table: Path,
    tmp_path: Path,
) -> None:
    import yaml

    from spark_jobs import predict
    from spark_jobs import train as train_job
    from spark_jobs.predict import PredictSpec
    from spark_jobs.train import TrainSpec

    scoring = tmp_path / "scoring.parquet"
    spark.range(0, 1_500_000, 1, 6).selectExpr(
        "CAST(id AS STRING) AS user_id", "randn(1) AS feature_1", "randn(2) AS feature_2"
    ).selectExpr("*", "feature_1 * feature_1 AS feature_3").write.parquet(str(scoring))
    state = tmp_path / "state"
    state.mkdir()
    train = yaml.safe_load(Path("conf/jobs/train_users.yaml").read_text())
    train.update(model_name="kill_users", input=str(features_table), derived_features={})
    same_store = settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{state / 'mlflow.db'}"}
            )
        }
    )
    # Trained here, in the store the cluster job reads (training on the cluster is tested above).
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    train_job.run(spark, same_store, TrainSpec(config=str(tmp_path / "train.yaml")))
    model = "models:/kill_users@champion"
    # The pandas UDF path, whose Python workers die with the executor (a compiled model runs
    # in the JVM only, and would leave no Python worker to find).
    conf_dir = tmp_path / "conf"
    shutil.copytree("conf", conf_dir)
    local_conf = yaml.safe_load((conf_dir / "local.yaml").read_text())
    local_conf["scoring"] = {"compiled": False}
    (conf_dir / "local.yaml").write_text(yaml.safe_dump(local_conf))

    job = submit(
        cluster,
        "predict",
        "--model",
        model,
        "--input",
        str(scoring),
        "--output",
        str(tmp_path / "predictions"),
        "--key",
        "user_id",
        state=state,
        conf_dir=conf_dir,
    )

    def executors_scoring() -> list[psutil.Process]:
        found = []
        for process in executor_processes():
            try:
                children = [" ".join(c.cmdline()) for c in process.children(recursive=True)]
            except psutil.Error:  # a process that ended (or is a zombie) meanwhile
                continue
            if any("pyspark" in child for child in children):
                found.append(process)
        return found

    victims: list[psutil.Process] = []

    def scoring_started() -> bool:
        victims[:] = executors_scoring()
        return bool(victims)

    _wait_for(scoring_started, 240, "Python workers scoring")
    _kill_mid_job(victims[0], job)
    stdout, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, (stdout + stderr)[-3000:]
    assert "Lost executor" in stderr, "the driver never saw an executor lost"

    local = predict.run(
        spark,
        same_store,
        PredictSpec(
            model=model, input=str(scoring), output=str(tmp_path / "local"), key=["user_id"]
        ),
    )
    _assert_same_rows(
        spark.read.format("delta")
        .load(str(tmp_path / "predictions"))
        .select("user_id", "prediction"),
        spark.read.format("delta").load(local.output).select("user_id", "prediction"),
    )
