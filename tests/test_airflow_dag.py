"""`lakegate airflow-dag`: the generated DAG's tasks, and (tier `airflow`) a real Airflow run of it.

The fast tests read the generated file's task list (no Airflow needed). The slow ones create
Airflow's own virtualenv (scripts/airflow_venv.sh), run `airflow dags test` on a SQLite metadata
DB in a temporary AIRFLOW_HOME, and compare the tables with a `lakegate run` of the same pipeline.
"""

from __future__ import annotations

import ast
import json
import zipfile
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
