"""`lakegate airflow-dag`: the generated DAG's tasks, and (tier `airflow`) a real Airflow run of it.

The fast tests read the generated file's task list (no Airflow needed). The slow ones create
Airflow's own virtualenv (scripts/airflow_venv.sh), run `airflow dags test` on a SQLite metadata
DB in a temporary AIRFLOW_HOME, and compare the tables with a `lakegate run` of the same pipeline.
"""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def airflow_tier(test: Any) -> Any:
    """Marks of the Airflow tier: slow, airflow, and a time limit for several spark-submits.

    Each task is a spark-submit: ~20-30 s on an idle 2-core machine, minutes under load.
    """
    for mark in (pytest.mark.slow, pytest.mark.airflow, pytest.mark.timeout(2400)):
        test = mark(test)
    return test


@dataclass(frozen=True)
class AirflowHome:
    """An AIRFLOW_HOME with a migrated SQLite metadata DB, and how to run `airflow` in it."""

    venv: Path
    home: Path
    dags: Path
    state: Path  # the tasks' LAKEGATE_STATE_DIR (their MLflow store, metrics, code zip)
    env: dict[str, str]

    def airflow(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run the venv's `airflow` with this home; its output goes to a log file beside it."""
        log = self.home / f"airflow-{time.monotonic_ns()}.log"
        with log.open("w") as out:
            done = subprocess.run(
                [str(self.venv / "bin" / "airflow"), *args],
                env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                text=True, timeout=timeout, check=False,
            )  # fmt: skip
        return subprocess.CompletedProcess(done.args, done.returncode, log.read_text(), "")

    def task_states(self, dag_id: str) -> dict[str, tuple[str, int]]:
        """Task id -> (state, try number) of the DAG's run, read from the metadata DB."""
        query = "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?"
        with sqlite3.connect(self.home / "airflow.db") as db:
            return {task: (state, tries) for task, state, tries in db.execute(query, (dag_id,))}


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    made = subprocess.run(
        ["bash", str(AIRFLOW_VENV_SCRIPT)], capture_output=True, text=True, timeout=1800
    )
    if made.returncode == 3:  # the script's code for "no network to the package index"
        pytest.skip(f"scripts/airflow_venv.sh could not download Airflow: {made.stderr[-300:]}")
    assert made.returncode == 0, made.stderr
    home = tmp_path_factory.mktemp("airflow")
    # MLflow URIs an earlier test of this process may have exported stay out: each run below
    # gets the registry of its own state folder.
    leaving = ("AIRFLOW", "LAKEGATE_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaving)}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        f"AIRFLOW_CONN_{CONNECTION.upper()}": json.dumps(
            {"conn_type": "spark", "host": "local[2]"}
        ),
        "LAKEGATE_ENV": "test",
        "LAKEGATE_STATE_DIR": str(home / "lakegate-state"),
    }
    venv = Path(made.stdout.strip().splitlines()[-1])
    found = AirflowHome(venv, home, home / "dags", home / "lakegate-state", env)
    found.dags.mkdir()
    migrated = found.airflow("db", "migrate", timeout=600)
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    return found


def write_dag(airflow: AirflowHome, pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Generate the pipeline's DAG into the DAG folder as the tasks' settings see it."""
    monkeypatch.setenv("LAKEGATE_STATE_DIR", str(airflow.state))
    text = render_dag(pipeline, load_settings("test"), schedule="@daily", conn_id=CONNECTION)
    (airflow.dags / f"{pipeline.stem}.py").write_text(text)
    return f"lakegate_{pipeline.stem}"


@airflow_tier
@pytest.mark.usefixtures("spark")
def test_airflow_dags_test_writes_the_same_tables_as_lakegate_run(
    airflow_home: AirflowHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import SparkSession
    from pyspark.testing import assertDataFrameEqual

    scheduled = write_pipeline(tmp_path, "users_daily", "airflow/{{ ds }}", retries=1)
    dag_id = write_dag(airflow_home, scheduled, monkeypatch)
    started = time.monotonic()
    run = airflow_home.airflow("dags", "test", dag_id, DAY, timeout=2000)
    took = time.monotonic() - started
    states = airflow_home.task_states(dag_id)
    assert run.returncode == 0, run.stdout[-5000:]
    assert states == {k: ("success", 1) for k in ("validate", "features", "train", "predict")}
    print(f"airflow dags test: {took:.0f} s")  # the runtime, for the report

    reference = write_pipeline(tmp_path, "users_ref", f"reference/{DAY}")
    monkeypatch.setenv("LAKEGATE_STATE_DIR", str(tmp_path / "reference-state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # exported by earlier tests
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert main(["run", str(reference), "--quiet"]) == 0

    spark = SparkSession.getActiveSession()
    assert spark is not None
    assert not (tmp_path / "airflow" / "{{ ds }}").exists()  # rendered by Airflow, not lakegate
    for table in ("validated/valid", "validated/quarantine", "features", "predictions"):
        scheduled_rows = spark.read.format("delta").load(f"{tmp_path}/airflow/{DAY}/{table}")
        reference_rows = spark.read.format("delta").load(f"{tmp_path}/reference/{DAY}/{table}")
        assert reference_rows.count() > 0
        assertDataFrameEqual(scheduled_rows, reference_rows)


@airflow_tier
def test_a_table_wide_failure_fails_validate_once_and_train_and_predict_never_run(
    airflow_home: AirflowHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 rows break the suite's hasSize >= 1000: a table-wide error-level failure, exit 1
    broken = write_pipeline(tmp_path, "users_broken", "airflow/{{ ds }}", rows=10, retries=2)
    dag_id = write_dag(airflow_home, broken, monkeypatch)
    run = airflow_home.airflow("dags", "test", dag_id, DAY, timeout=1200)
    states = airflow_home.task_states(dag_id)
    assert states["validate"] == ("failed", 1), run.stdout[-5000:]  # retries: 2, yet one try
    assert {k: states[k][0] for k in ("features", "train", "predict")} == dict.fromkeys(
        ("features", "train", "predict"), "upstream_failed"
    )
    assert "lakegate exited 1 (an error-level check failed): not retried" in run.stdout
    assert "hasSize" in run.stdout
    assert not (tmp_path / "airflow" / DAY / "predictions").exists()
    assert_provider_ran_lakegate_submits_command(run.stdout, broken, airflow_home.state)


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
