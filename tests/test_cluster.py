"""The same jobs on a real Spark standalone cluster (a master and two workers on loopback).

Outputs through `lakegate submit` equal the local run's, also when an executor is killed in the
middle of the job.

Two cluster jobs serve every test (each job pays a driver JVM, two executor JVMs and their
Python workers): one `lakegate run` pipeline that validates, trains and predicts (an executor
is killed while the predict step scores), and one `lakegate sql` over the model it trained.
The local reference is the same pipeline run in this process's session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from jvm_flags import JVM_SPEED_FLAGS
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.submit import spark_submit_path

pytestmark = pytest.mark.slow
SPARK_CLASS = spark_submit_path().parent / "spark-class"
MODEL = "models:/cluster_users@champion"
USERS = 6_000  # the suite wants at least 1000 rows
PYTHON_WORKER = "pyspark.daemon"  # spark.python.daemon.module
PREDICT_TASKS = 6  # files of the scored table: three tasks per executor, so a kill lands mid-job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class Cluster:
    """A standalone master and two one-core workers started by this module."""

    url: str
    master_log: Path
    processes: list[subprocess.Popen[bytes]]

    def wait_ready(self) -> None:
        """Wait until both workers registered with the master."""
        _wait_for(
            lambda: self.master_log.read_text().count("Registering worker") >= 2,
            180,
            "two workers registered with the master",
        )

    def executors(self) -> list[psutil.Process]:
        """The executor JVMs our workers run now (never another cluster's)."""
        found = []
        for worker in self.processes[1:]:
            try:
                found += psutil.Process(worker.pid).children()
            except psutil.Error:
                continue
        return found


def _spark_class(
    main: str, args: list[str], log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SPARK_CLASS), main, *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Start the master and the workers at once; users call `wait_ready` when they need them.

    The JVMs start while the local reference runs (a worker that finds no master yet retries
    its registration).
    """
    logs = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME=str(SPARK_CLASS.parent.parent))
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_args = ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())]
    master_log = logs / "master.log"
    processes = [
        _spark_class("org.apache.spark.deploy.master.Master", master_args, master_log, env)
    ]
    try:
        for i in range(2):
            worker_args = [url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1g"]
            worker_args += ["--webui-port", str(_free_port()), "--work-dir", str(logs / f"w{i}")]
            processes.append(
                _spark_class(
                    "org.apache.spark.deploy.worker.Worker",
                    worker_args,
                    logs / f"worker{i}.log",
                    env,
                )
            )
        yield Cluster(url, master_log, processes)
    finally:
        for process in processes:
            try:
                children = psutil.Process(process.pid).children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                child.kill()
            process.kill()
            process.wait()


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
    command = [sys.executable, "-m", "spark_jobs.cli", "submit", "--master", url, "--env", "local"]
    return subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _write_tables(spark: SparkSession, folder: Path) -> tuple[Path, Path]:
    """The raw users to validate, and the features to train on and score."""
    from spark_jobs.sample_data import synthetic_users

    users = folder / "users.parquet"
    spark.createDataFrame(synthetic_users(USERS, seed=3)).repartition(2).write.parquet(str(users))
    features = folder / "features.parquet"
    spark.createDataFrame(synthetic_users(20_000, seed=4)).dropna().dropDuplicates(
        ["user_id"]
    ).selectExpr(
        "user_id", "feature_1", "feature_2", "feature_1 * feature_1 AS feature_3", "target"
    ).repartition(PREDICT_TASKS).write.parquet(str(features))
    return users, features


def _pipeline(folder: Path, users: Path, features: Path) -> Path:
    """A validate + train + predict pipeline writing under `folder`; its file."""
    train = yaml.safe_load(Path("conf/jobs/train_users.yaml").read_text())
    train.update(model_name="cluster_users", input=str(features), derived_features={})
    folder.mkdir(parents=True)
    (folder / "train.yaml").write_text(yaml.safe_dump(train))
    suite = Path("checks/examples/users_raw.yaml").resolve()  # not the conf copy's root
    validate = {"suite": str(suite), "input": str(users)}
    predict = {"model": MODEL, "input": str(features), "key": ["user_id"], "gate": False}
    pipeline = {
        "pipeline": "cluster",
        "report": str(folder / "pipeline.json"),
        "steps": [
            {"validate": {**validate, "output": str(folder / "validated"), "keep_history": False}},
            {"train": {"config": str(folder / "train.yaml")}},
            {"predict": {**predict, "output": str(folder / "predictions")}},
        ],
    }
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    return folder / "pipeline.yaml"


def _cluster_conf(folder: Path, events: Path | None = None) -> Path:
    """conf/ (in `folder`) with local.yaml giving the executors the suite's C1-only JIT flag.

    With `events`, scoring goes through the pandas UDF and Spark's event log is kept there:
    the pandas UDF's Python workers die with their executor (a compiled model runs in the JVM
    only, and would leave no Python worker to find); the event log shows which tasks were lost
    and where they ran again.
    """
    conf = folder / "conf"
    shutil.copytree("conf", conf)
    local = yaml.safe_load((conf / "local.yaml").read_text())
    # The executors compile with C1 only, as the suite's other JVMs (tests/jvm_flags.py).
    spark_conf: dict[str, object] = {"spark.executor.extraJavaOptions": JVM_SPEED_FLAGS}
    if events is not None:
        local["scoring"] = {"compiled": False}
        events.mkdir()
        spark_conf |= {"spark.eventLog.enabled": True, "spark.eventLog.dir": events.as_uri()}
    local["spark"]["conf"].update(spark_conf)
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    return conf


@dataclass(frozen=True)
class Runs:
    """The cluster pipeline (an executor killed mid-predict) and the same pipeline run locally."""

    cluster: Path
    local: Path
    features: Path
    state: Path
    stderr: str
    killed_executor: str
    events: Path


def _executor_id(process: psutil.Process) -> str:
    command = process.cmdline()
    return command[command.index("--executor-id") + 1]


def _run_killing_an_executor(cluster: Cluster, job: subprocess.Popen[str]) -> str:
    """Kill an executor once its Python workers score; the killed executor's id."""
    victims: list[psutil.Process] = []

    def scoring() -> bool:
        for executor in cluster.executors():
            try:
                children = [" ".join(c.cmdline()) for c in executor.children(recursive=True)]
            except psutil.Error:  # a process that ended (or is a zombie) meanwhile
                continue
            # Python's workers only (`python -m pyspark.daemon` and its forks): a short-lived
            # child of the executor JVM shows the JVM's own command line, whose class path
            # names pyspark's jars, until it execs (a kill there hit no task: 7 Dec 2026).
            if any(PYTHON_WORKER in child for child in children):
                victims.append(executor)
                return True
        return job.poll() is not None

    # Validate and train run no Python on the executors: the first Python worker is predict's.
    _wait_for(scoring, 600, "Python workers scoring")
    if not victims:
        stdout, stderr = job.communicate()
        pytest.fail(f"the job ended before its executors ran Python: {(stdout + stderr)[-3000:]}")
    executor_id = _executor_id(victims[0])
    _kill_mid_job(victims[0], job)
    return executor_id


@pytest.fixture(scope="module")
def runs(
    spark: SparkSession,
    settings: Settings,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Runs:
    """Run the pipeline locally (while the cluster starts), then on the cluster with a kill."""
    from spark_jobs.pipeline import load_pipeline, run_pipeline

    root = tmp_path_factory.mktemp("runs")
    users, features = _write_tables(spark, root)
    local = _pipeline(root / "local", users, features)
    run_pipeline(spark, settings, load_pipeline(local), quiet=True)

    cluster.wait_ready()
    conf = _cluster_conf(root, root / "events")
    state = root / "state"
    job = submit(
        cluster.url, "run", str(_pipeline(root / "cluster", users, features)), "--quiet",
        state=state, conf_dir=conf,
    )  # fmt: skip
    killed = _run_killing_an_executor(cluster, job)
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, (stdout + stderr)[-4000:]
    return Runs(root / "cluster", root / "local", features, state, stderr, killed, root / "events")


def _report(folder: Path) -> dict[str, Any]:
    steps: dict[str, Any] = json.loads((folder / "pipeline.json").read_text())["steps"]
    return steps


def _delta(spark: SparkSession, path: Path | str, *columns: str) -> Any:
    frame = spark.read.format("delta").load(str(path))
    return frame.select(*columns) if columns else frame


def test_validate_on_the_cluster_equals_the_local_run(spark: SparkSession, runs: Runs) -> None:
    cluster, local = _report(runs.cluster)["validate"], _report(runs.local)["validate"]
    assert cluster["counts"] == local["counts"]
    assert cluster["counts"]["rows_in"] == USERS
    assert cluster["counts"]["rows_quarantined"] > 0  # the sample data has injected defects
    for name in ("valid", "quarantine"):
        assertDataFrameEqual(
            _delta(spark, runs.cluster / "validated" / name),
            _delta(spark, runs.local / "validated" / name),
        )


def test_train_and_predict_on_the_cluster_equal_the_local_run(
    spark: SparkSession, runs: Runs
) -> None:
    cluster, local = _report(runs.cluster), _report(runs.local)
    assert cluster["train"]["score"] == pytest.approx(local["train"]["score"], abs=1e-12)
    assert cluster["predict"]["rows"] == local["predict"]["rows"] > 0
    assertDataFrameEqual(
        _delta(spark, runs.cluster / "predictions", "user_id", "prediction"),
        _delta(spark, runs.local / "predictions", "user_id", "prediction"),
    )


def _task_ends(events: Path) -> list[dict[str, Any]]:
    (log,) = events.iterdir()  # one application: the pipeline's driver
    lines = (json.loads(line) for line in log.read_text().splitlines())
    return [event for event in lines if event["Event"] == "SparkListenerTaskEnd"]


def test_a_job_survives_an_executor_killed_mid_job(spark: SparkSession, runs: Runs) -> None:
    """The killed executor's running tasks ran again on another executor; nothing was lost.

    The outputs equal the local run's (`test_train_and_predict_on_the_cluster_equal_the_local_run`
    compares the predictions of this same run).
    """
    assert "Lost executor" in runs.stderr, "the driver never saw an executor lost"
    ends = _task_ends(runs.events)
    lost = [
        (e["Stage ID"], e["Task Info"]["Index"])
        for e in ends
        if e["Task End Reason"]["Reason"] == "ExecutorLostFailure"
        and e["Task Info"]["Executor ID"] == runs.killed_executor
    ]
    assert lost, "no task was running on the killed executor"
    redone = {
        (e["Stage ID"], e["Task Info"]["Index"])
        for e in ends
        if e["Task End Reason"]["Reason"] == "Success"
        and e["Task Info"]["Executor ID"] != runs.killed_executor
    }
    assert set(lost) <= redone, f"lost tasks {lost} never succeeded on another executor"
    report = _report(runs.cluster)["predict"]
    assert report["scoring_path"] == "udf"  # the pandas UDF, in the killed Python workers
    rows = spark.read.parquet(str(runs.features)).count()
    assert report["rows"] == _delta(spark, runs.cluster / "predictions").count() == rows


def test_sql_on_the_cluster_scores_like_the_local_pipeline(
    spark: SparkSession, cluster: Cluster, runs: Runs
) -> None:
    """`lakegate sql` with the cluster-trained model (compiled scoring, in the executors' JVM)."""
    output = runs.state.parent / "sql"
    conf = _cluster_conf(runs.state.parent / "sql-conf")
    job = submit(
        cluster.url, "sql", "--model", f"users={MODEL}",
        "--table", f"features={runs.features}",
        "-e", "SELECT user_id, predict_users(struct(*)) AS prediction FROM features",
        "--output", str(output),
        state=runs.state, conf_dir=conf,
    )  # fmt: skip
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, (stdout + stderr)[-4000:]
    assertDataFrameEqual(
        _delta(spark, output), _delta(spark, runs.local / "predictions", "user_id", "prediction")
    )
