"""`lakegate sql` as a shell: statements from a pipe (or a terminal) in one warm session."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from model_fixtures import train, users_frame

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.services.sql_shell import piped_statements, split_complete, statement_text

FEATURES = ["feature_1", "feature_2", "feature_3"]
MODEL = "shellusers"
URI = f"models:/{MODEL}@champion"
LAKEGATE = str(Path(sys.executable).with_name("lakegate"))


class ScriptedInput:
    """A pipe whose lines arrive one by one, running an action before a marked line."""

    def __init__(self, lines: list[str], actions: dict[int, Callable[[], None]]) -> None:
        self.lines, self.actions = lines, actions

    def isatty(self) -> bool:
        return False

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self.lines):
            if number in self.actions:
                self.actions[number]()
            yield line


@pytest.fixture(scope="module")
def versions(settings: Settings) -> tuple[str, str]:
    """Two versions whose predictions differ (strong and weak regularisation)."""
    first = train(settings, MODEL)
    second = train(
        settings,
        MODEL,
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.001}},
    )
    return str(first.version), str(second.version)


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame(rows=40, seed=11)


@pytest.fixture(scope="module")
def features_path(users: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shell-input") / "features.parquet"
    users.to_parquet(path)
    return path


def _point_champion(settings: Settings, version: str) -> None:
    MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(
        MODEL, "champion", version
    )


def _expected(settings: Settings, users: pd.DataFrame, version: str) -> list[float]:
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    return [float(v) for v in model.predict(users[FEATURES])]


def _shell(monkeypatch, stream, *args: str) -> int:
    monkeypatch.setattr(sys, "stdin", stream)
    return main(["sql", "--model", f"{MODEL}={URI}", *args])


PREDICT = f"SELECT user_id, predict_{MODEL}(struct(*)) AS p FROM features ORDER BY user_id;\n"


def test_split_keeps_semicolons_inside_strings_and_comments():
    text = "SELECT 'a;b' AS s; -- note; here\nSELECT 2 /* x; */;\nSELECT 'open;\n"
    complete, rest = split_complete(text)
    assert [statement_text(s) for s in complete] == ["SELECT 'a;b' AS s", "SELECT 2"]
    assert rest.strip() == "SELECT 'open;"


def test_piped_statements_arrive_one_by_one_and_the_last_needs_no_semicolon():
    stream = io.StringIO("SELECT 1;\nSELECT\n  'x;\ny';\n-- only a comment\nSELECT 3")
    assert [statement_text(s) for s in piped_statements(stream)] == [
        "SELECT 1",
        "SELECT\n  'x;\ny'",
        "SELECT 3",
    ]


def test_piped_csv_predictions_equal_the_models_own(
    spark, settings, versions, users, features_path, monkeypatch, capsys
):
    _point_champion(settings, versions[0])
    stream = io.StringIO(PREDICT)
    assert (
        _shell(
            monkeypatch, stream, "--table", f"features={features_path}", "--output-format", "csv"
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["user_id"]) for r in rows] == users["user_id"].tolist()
    assert [float(r["p"]) for r in rows] == _expected(settings, users, versions[0])


def test_piped_json_lines_hold_one_object_per_row(
    spark, settings, versions, users, features_path, monkeypatch, capsys
):
    _point_champion(settings, versions[0])
    stream = io.StringIO(PREDICT)
    assert (
        _shell(
            monkeypatch, stream, "--table", f"features={features_path}", "--output-format", "json"
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["p"] for row in rows] == _expected(settings, users, versions[0])


def test_table_output_is_boxed_with_nulls_shown(spark, versions, monkeypatch, capsys):
    stream = io.StringIO("SELECT 1 AS n, CAST(NULL AS STRING) AS s;")
    assert _shell(monkeypatch, stream) == 0
    assert capsys.readouterr().out.splitlines() == [
        "+---+------+",
        "| n | s    |",
        "+---+------+",
        "| 1 | NULL |",
        "+---+------+",
    ]


def test_failing_statement_prints_its_error_the_shell_goes_on_and_exits_2(
    spark, settings, versions, features_path, monkeypatch, capsys
):
    stream = io.StringIO(
        "SELECT nope FROM features;\n"
        f"SELECT predict_{MODEL}(feature_2, feature_1, feature_3) FROM features;\n"
        "SELECT count(*) AS n FROM features;\n"
    )
    code = _shell(
        monkeypatch, stream, "--table", f"features={features_path}", "--output-format", "csv"
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "error: [UNRESOLVED_COLUMN" in captured.err
    assert "argument 1 is column 'feature_2'" in captured.err
    assert "2 of 3 statements failed" in captured.err and "Traceback" not in captured.err
    assert captured.out == "n\n40\n"  # the statement after the failures ran


def test_views_of_the_tables_section_in_conf_are_there_from_the_start(
    spark, settings, versions, features_path, tmp_path, monkeypatch, capsys
):
    conf = tmp_path / "conf"
    conf.mkdir()
    test_yaml = (settings.project_root / "conf" / "test.yaml").read_text()
    (conf / "test.yaml").write_text(test_yaml + f"tables:\n  conf_features: {features_path}\n")
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(conf))
    stream = io.StringIO("SELECT count(*) AS n FROM conf_features;")
    assert _shell(monkeypatch, stream, "--output-format", "csv") == 0
    assert capsys.readouterr().out == "n\n40\n"


def test_refresh_models_picks_up_a_moved_alias_without_restart(
    spark, settings, versions, users, features_path, monkeypatch, capsys
):
    _point_champion(settings, versions[0])
    lines = [PREDICT, "REFRESH MODELS;\n", PREDICT, "SELECT refresh_models() AS r;\n"]
    stream = ScriptedInput(lines, {1: lambda: _point_champion(settings, versions[1])})
    args = ("--table", f"features={features_path}", "--output-format", "csv")
    assert _shell(monkeypatch, stream, *args) == 0
    out = capsys.readouterr().out
    first, rest = out.split(f"predict_{MODEL}: now", 1)
    assert f"{MODEL} version {versions[1]} (was version {versions[0]})" in rest.splitlines()[0]
    second = "\n".join(rest.splitlines()[1:])
    before = [float(r["p"]) for r in csv.DictReader(io.StringIO(first))]
    after_rows = list(csv.DictReader(io.StringIO(second.split("\nr\n")[0] + "\n")))
    after = [float(r["p"]) for r in after_rows]
    assert before == _expected(settings, users, versions[0])
    assert after == _expected(settings, users, versions[1])
    assert before != after
    assert f"predict_{MODEL}: unchanged" in second.split("\nr\n")[1]


@pytest.mark.slow
def test_a_real_pipe_into_lakegate_sql_exits_2_after_running_every_statement(
    settings, versions, features_path
):
    _point_champion(settings, versions[0])
    statements = "SELECT nope;\nSELECT count(*) AS n FROM features;\n"
    result = subprocess.run(
        [LAKEGATE, "sql", "--table", f"features={features_path}", "--output-format", "csv"],
        input=statements,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LAKEGATE_ENV": "test"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "n\n40\n"
    assert "1 of 2 statements failed" in result.stderr


def _read_until(fd: int, marker: str, timeout: float) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break
    return seen


@pytest.mark.slow
def test_a_terminal_gets_a_prompt_and_the_statements_go_to_the_history(settings, versions):
    pid, fd = pty.fork()
    if pid == 0:  # the child: lakegate sql on the terminal
        os.environ["LAKEGATE_ENV"] = "test"
        os.execv(LAKEGATE, [LAKEGATE, "sql", "--model", f"{MODEL}={URI}"])
    try:
        assert "lakegate> " in _read_until(fd, "lakegate> ", 240)
        os.write(fd, b"SELECT 6 *\n")
        assert "       > " in _read_until(fd, "       > ", 30)
        os.write(fd, b"7 AS answer;\n")
        answer = _read_until(fd, "| 42     |", 60)
        assert "| 42     |" in answer
        if answer.count("lakegate> ") < 2:  # Ctrl-D once the prompt is back, not before
            _read_until(fd, "lakegate> ", 30)
        os.write(fd, b"\x04")  # Ctrl-D
        _read_until(fd, "never", 5)
    finally:
        for _ in range(60):
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                break
            time.sleep(1)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    history = (settings.state_path / "sql_history").read_text()
    assert "7 AS answer;" in history
