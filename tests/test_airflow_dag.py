"""`lakegate airflow-dag`: the generated DAG's tasks, and (tier `airflow`) a real Airflow run of it.

The fast tests read the generated file's task list (no Airflow needed). The slow ones create
Airflow's own virtualenv (scripts/airflow_venv.sh), migrate one SQLite metadata DB, start
`airflow dags test` of two generated DAGs together (each in a temporary AIRFLOW_HOME with a copy
of that DB), and compare the tables of the good one with a `lakegate run` of the same pipeline
made in this process meanwhile.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jvm_flags import JVM_SPEED_FLAGS

from lakegate_config.settings import Settings, load_settings
from spark_jobs.airflow_dag import render_dag
from spark_jobs.cli import main
from spark_jobs.pipeline import load_pipeline, step_command, with_step_spec
from spark_jobs.submit import build_command

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-03-04"


def write_pipeline(
    folder: Path, name: str, out: str, *, rows: int = 2000, retries: int = 0
) -> Path:
    """A copy of conf/pipelines/users.yaml writing under `folder/out` (paths may hold templates)."""
    config = yaml.safe_load((ROOT / "conf/pipelines/users.yaml").read_text())
    config["pipeline"] = name
    config["report"] = None
    config["retries"] = retries
    config["retry_delay_seconds"] = 1
    config["sample_data"] = {"path": str(folder / f"{name}-users.parquet"), "rows": rows, "seed": 7}
    validate, features, train, predict = (next(iter(s.values())) for s in config["steps"])
    validate["input"] = config["sample_data"]["path"]
    validate["output"] = f"{folder}/{out}/validated"
    features["input"] = f"{folder}/{out}/validated/valid"
    features["output"] = f"{folder}/{out}/features"
    train["input"] = features["output"]
    predict["input"] = features["output"]
    predict["output"] = f"{folder}/{out}/predictions"
    predict["scored_at"] = "2026-03-05T06:00:00+00:00"
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def dag_steps(text: str) -> list[dict[str, Any]]:
    """The generated file's STEPS literal (SparkSubmitOperator's arguments per task)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STEPS":
            steps: list[dict[str, Any]] = ast.literal_eval(node.value)
            return steps
    raise AssertionError("no STEPS in the generated DAG")


@pytest.fixture()
def unit_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LAKEGATE_STATE_DIR", str(tmp_path / "state"))
    return load_settings("test")


def test_each_step_is_one_spark_submit_task_with_lakegate_submits_command(
    tmp_path: Path, unit_settings: Settings
) -> None:
    pipeline = write_pipeline(tmp_path, "users_daily", "out/{{ ds }}", retries=2)
    text = render_dag(pipeline, unit_settings, schedule="@daily", conn_id="lakegate_spark")
    compile(text, "dag.py", "exec")
    steps = dag_steps(text)
    assert [s["task_id"] for s in steps] == ["validate", "features", "train", "predict"]
    config = load_pipeline(pipeline)
    for task in steps:
        job, args = step_command(pipeline, unit_settings, config, task["task_id"])
        expected = build_command(unit_settings, "M", job, args, Path(task["py_files"]))
        rebuilt = [task["spark_binary"], "--master", "M", "--name", task["name"]]
        rebuilt += ["--jars", task["jars"]] if task["jars"] else []
        if task["packages"]:  # no Ivy cache yet: the cluster resolves the coordinates
            rebuilt += ["--packages", task["packages"], "--exclude-packages"]
            rebuilt += [task["exclude_packages"]]
        rebuilt += ["--py-files", task["py_files"]]
        for key, value in task["conf"].items():
            rebuilt += ["--conf", f"{key}={value}"]
        assert [*rebuilt, task["application"], *task["application_args"]] == expected
        assert task["env_vars"]["LAKEGATE_ENV"] == "test"
    assert "schedule='@daily'" in text
    assert '"retries": 2' in text
    assert "conn_id='lakegate_spark'" in text


def test_templates_reach_the_task_arguments_unrendered(
    tmp_path: Path, unit_settings: Settings
) -> None:
    pipeline = write_pipeline(tmp_path, "users_daily", "out/{{ ds }}")
    steps = {s["task_id"]: s for s in dag_steps(render_dag(pipeline, unit_settings, **_DEFAULTS))}
    validate_args = steps["validate"]["application_args"]
    assert validate_args[:3] == [str(pipeline.resolve()), "--step", "validate"]
    spec = json.loads(validate_args[validate_args.index("--step-spec") + 1])
    assert spec["output"] == f"{tmp_path}/out/{{{{ ds }}}}/validated"
    predict_args = steps["predict"]["application_args"]
    assert (
        predict_args[predict_args.index("--output") + 1]
        == f"{tmp_path}/out/{{{{ ds }}}}/predictions"
    )


_DEFAULTS: dict[str, Any] = {"schedule": None, "conn_id": "spark_default"}


def test_steps_run_as_their_own_job_only_where_it_means_the_same(
    tmp_path: Path, unit_settings: Settings
) -> None:
    pipeline = write_pipeline(tmp_path, "p", "out")
    config = load_pipeline(pipeline)
    kinds = {k: step_command(pipeline, unit_settings, config, k) for k in ("validate", "predict")}
    # validate's exit 1 on quarantined rows is not the pipeline's gate: it runs as its step
    assert kinds["validate"][0] == "run"
    assert kinds["predict"] == (
        "predict",
        [
            *("--model", "models:/users@champion", "--input", f"{tmp_path}/out/features"),
            *("--output", f"{tmp_path}/out/predictions", "--key", "user_id"),
            *("--scored-at", "2026-03-05T06:00:00+0000", "--gate"),
        ],
    )
    # a train step without its own input is `lakegate train CONFIG`; with one, the pipeline's step
    assert step_command(pipeline, unit_settings, config, "train")[0] == "run"
    data = yaml.safe_load(pipeline.read_text())
    del data["steps"][2]["train"]["input"]
    pipeline.write_text(yaml.safe_dump(data))
    config = load_pipeline(pipeline)
    train = step_command(pipeline, unit_settings, config, "train")
    assert train == ("train", [str(ROOT / "conf/jobs/train_users.yaml")])


def test_step_spec_round_trips_to_the_resolved_step(
    tmp_path: Path, unit_settings: Settings
) -> None:
    pipeline = write_pipeline(tmp_path, "p", "out")
    config = load_pipeline(pipeline)
    _, args = step_command(pipeline, unit_settings, config, "features")
    replaced = with_step_spec(config, "features", args[args.index("--step-spec") + 1])
    assert replaced.steps[1] == config.steps[1]
    assert replaced.steps[0] is config.steps[0]


def test_run_with_an_unknown_step_or_a_bad_step_spec_exits_2_before_spark(
    tmp_path: Path, unit_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = write_pipeline(tmp_path, "p", "out")
    assert main(["run", str(pipeline), "--step", "sql"]) == 2
    assert (
        "has no 'sql' step (steps: validate, features, train, predict)" in capsys.readouterr().err
    )
    assert main(["run", str(pipeline), "--step", "train", "--step-spec", '{"confg": "x"}']) == 2
    assert "--step-spec is not valid settings for a train step" in capsys.readouterr().err
    assert main(["run", str(pipeline), "--step-spec", "{}"]) == 2


def test_tasks_ship_the_projects_code_and_submit_its_job_files(
    tmp_path: Path, unit_settings: Settings
) -> None:
    pipeline = write_pipeline(tmp_path, "p", "out")
    for task in dag_steps(render_dag(pipeline, unit_settings, **_DEFAULTS)):
        assert Path(task["application"]).is_file(), task["application"]
        names = set(zipfile.ZipFile(task["py_files"]).namelist())
        assert {"lakegate_config/settings.py", "spark_jobs/pipeline.py"} <= names


# --- tier `airflow`: a real Airflow 3 in its own virtualenv runs the generated DAG -------------

AIRFLOW_VENV_SCRIPT = ROOT / "scripts" / "airflow_venv.sh"
CONNECTION = "lakegate_spark"
MASTER = "local[2]"
STEPS = ("validate", "features", "train", "predict")


def airflow_tier(test: Any) -> Any:
    """Marks of the Airflow tier: slow, airflow, and a time limit for several spark-submits.

    Each task is a spark-submit: ~20-30 s on an idle 2-core machine, minutes under load.
    """
    for mark in (pytest.mark.slow, pytest.mark.airflow, pytest.mark.timeout(2400)):
        test = mark(test)
    return test


@dataclass(frozen=True)
class DagTest:
    """A running `airflow dags test` of one generated DAG, in an AIRFLOW_HOME of its own."""

    dag_id: str
    home: Path
    state: Path  # the tasks' LAKEGATE_STATE_DIR (their MLflow store, metrics, code zip)
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def wait(self, timeout: float) -> tuple[int, str]:
        """The run's exit code and output, once it ended (killed after `timeout` s)."""
        try:
            code = self.process.wait(timeout=max(1.0, self.started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"airflow dags test {self.dag_id} took over {timeout} s") from None
        return code, self.log.read_text()

    def stop(self) -> None:
        """End the run and its spark-submits (their own process group) if it still runs."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def task_states(self) -> dict[str, tuple[str, int]]:
        """Task id -> (state, try number) of the DAG's run, read from the metadata DB."""
        query = "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?"
        with sqlite3.connect(self.home / "airflow.db") as db:
            return {task: (state, n) for task, state, n in db.execute(query, (self.dag_id,))}


@dataclass(frozen=True)
class Airflow:
    """Airflow's virtualenv and a metadata DB migrated once, copied into each run's home."""

    venv: Path
    migrated_db: Path

    def env(self, home: Path) -> dict[str, str]:
        """The environment of an `airflow` command with `home` as AIRFLOW_HOME."""
        # MLflow URIs an earlier test of this process may have exported stay out: each run
        # gets the registry of its own state folder.
        leaving = ("AIRFLOW", "LAKEGATE_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        env = {k: v for k, v in os.environ.items() if not k.startswith(leaving)}
        return env | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            f"AIRFLOW_CONN_{CONNECTION.upper()}": json.dumps(
                {"conn_type": "spark", "host": MASTER}
            ),
            "LAKEGATE_ENV": "test",
            "LAKEGATE_STATE_DIR": str(home / "lakegate-state"),
            # Every JVM of a task (spark-submit's launcher, the driver) gets the suite's flags
            # (tests/jvm_flags.py), C1 only: for jobs of seconds, ~40% less CPU than with C2
            # as well (a 10-row Delta job: 23 s instead of 40 s), the same results; the DAG's
            # commands are untouched.
            "JDK_JAVA_OPTIONS": f"{env.get('JDK_JAVA_OPTIONS', '')} {JVM_SPEED_FLAGS}".strip(),
        }

    def start(self, home: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start the venv's `airflow` in `home` (own process group); output to a log file."""
        log = home / f"airflow-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "airflow"), *args],
                env=self.env(home), cwd=home, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return process, log

    def dags_test(self, home: Path, pipeline: Path) -> DagTest:
        """Generate the pipeline's DAG into a new home as its tasks' settings see it, and
        start `airflow dags test` of it for DAY."""
        state = home / "lakegate-state"
        (home / "dags").mkdir(parents=True)
        shutil.copyfile(self.migrated_db, home / "airflow.db")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LAKEGATE_STATE_DIR", str(state))
            text = render_dag(
                pipeline, load_settings("test"), schedule="@daily", conn_id=CONNECTION
            )
        (home / "dags" / f"{pipeline.stem}.py").write_text(text)
        dag_id = f"lakegate_{pipeline.stem}"
        started = time.monotonic()
        process, log = self.start(home, "dags", "test", dag_id, DAY)
        return DagTest(dag_id, home, state, process, log, started)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Airflow:
    made = subprocess.run(
        ["bash", str(AIRFLOW_VENV_SCRIPT)], capture_output=True, text=True, timeout=1800
    )
    if made.returncode == 3:  # the script's code for "no network to the package index"
        pytest.skip(f"scripts/airflow_venv.sh could not download Airflow: {made.stderr[-300:]}")
    assert made.returncode == 0, made.stderr
    home = tmp_path_factory.mktemp("airflow-migrated")
    found = Airflow(Path(made.stdout.strip().splitlines()[-1]), home / "airflow.db")
    process, log = found.start(home, "db", "migrate")
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    return found


@pytest.fixture(scope="module")
def dag_tests(
    airflow: Airflow, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, DagTest]]:
    """This module's two DAG runs, started together (each in its own home) so they overlap.

    Each is minutes of spark-submits, most of it JVM and Python start-up rather than work on
    2 cores; the runs share nothing but the migrated metadata DB they start from. A run no
    test waited for (one test selected) is stopped at the module's end.
    """
    folder = tmp_path_factory.mktemp("pipelines")
    pipelines = [
        write_pipeline(folder, "users_daily", "airflow/{{ ds }}", retries=1),
        # 10 rows break the suite's hasSize >= 1000: a table-wide error-level failure, exit 1
        write_pipeline(folder, "users_broken", "broken/{{ ds }}", rows=10, retries=2),
    ]
    runs: dict[str, DagTest] = {}
    try:
        for pipeline in pipelines:
            runs[pipeline.stem] = airflow.dags_test(folder / f"home-{pipeline.stem}", pipeline)
        yield runs
    finally:
        for run in runs.values():
            run.stop()


@airflow_tier
def test_airflow_dags_test_writes_the_same_tables_as_lakegate_run(
    dag_tests: dict[str, DagTest],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyspark.sql import SparkSession
    from pyspark.testing import assertDataFrameEqual

    scheduled = dag_tests["users_daily"]
    # The reference run goes on in this process while Airflow's tasks run in their own JVMs.
    request.getfixturevalue("spark")  # the session after Airflow started: their starts overlap
    reference = write_pipeline(tmp_path, "users_ref", f"reference/{DAY}")
    monkeypatch.setenv("LAKEGATE_STATE_DIR", str(tmp_path / "reference-state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # exported by earlier tests
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert main(["run", str(reference), "--quiet"]) == 0

    code, log = scheduled.wait(timeout=2000)
    print(f"airflow dags test: {time.monotonic() - scheduled.started:.0f} s")  # for the report
    assert code == 0, log[-5000:]
    assert scheduled.task_states() == {k: ("success", 1) for k in STEPS}

    spark = SparkSession.getActiveSession()
    assert spark is not None
    outputs = scheduled.home.parent / "airflow"
    assert not (outputs / "{{ ds }}").exists()  # rendered by Airflow, not lakegate
    for table in ("validated/valid", "validated/quarantine", "features", "predictions"):
        scheduled_rows = spark.read.format("delta").load(f"{outputs}/{DAY}/{table}")
        reference_rows = spark.read.format("delta").load(f"{tmp_path}/reference/{DAY}/{table}")
        assert reference_rows.count() > 0
        assertDataFrameEqual(scheduled_rows, reference_rows)


@airflow_tier
def test_a_table_wide_failure_fails_validate_once_and_train_and_predict_never_run(
    dag_tests: dict[str, DagTest],
) -> None:
    broken = dag_tests["users_broken"]
    _, log = broken.wait(timeout=1200)
    states = broken.task_states()
    assert states["validate"] == ("failed", 1), log[-5000:]  # retries: 2, yet one try
    assert {k: states[k][0] for k in STEPS[1:]} == dict.fromkeys(STEPS[1:], "upstream_failed")
    assert "lakegate exited 1 (an error-level check failed): not retried" in log
    assert "hasSize" in log
    folder = broken.home.parent
    assert not (folder / "broken" / DAY / "predictions").exists()
    assert_provider_ran_lakegate_submits_command(log, folder / "users_broken.yaml", broken.state)


def assert_provider_ran_lakegate_submits_command(log: str, pipeline: Path, state: Path) -> None:
    """The provider's spark-submit line (its own option order) holds `lakegate submit`'s."""
    line = next(line for line in log.splitlines() if "Spark-Submit cmd: " in line)
    ran = line.split("Spark-Submit cmd: ", 1)[1]
    settings = load_settings("test")
    job, args = step_command(pipeline, settings, load_pipeline(pipeline), "validate")
    rendered = [arg.replace("{{ ds }}", DAY) for arg in args]
    expected = build_command(settings, MASTER, job, rendered, state / "dist" / "lakegate-code.zip")
    assert ran.startswith(expected[0] + " ")
    i = 1
    while expected[i].startswith("--"):
        assert f" {expected[i]} {expected[i + 1]} " in ran
        i += 2
    assert ran.count(" --conf ") == expected.count("--conf")
    assert " ".join(expected[i:]) in ran  # the job file and its arguments, templates rendered
