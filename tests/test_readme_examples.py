"""The README's examples run as written, so the docs cannot rot (chispa's habit).

Commands are taken from the README's fenced `bash` blocks (and its inline `lakegate ...`
commands) and run through `lakegate`'s own entry point, in-process where they can; printed
output is compared with the README's output block where it shows one. The servers (`serve-sql`,
`serve`) run as the README starts them, each once for the module, on a free loopback port of a
sandboxed project with its own MLflow registry; beeline and the `curl` lines (sent as curl
sends them) talk to them. What needs a real cluster or Airflow is checked as far as it runs
here (`submit --dry-run`, the generated DAG).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pyspark
import pytest
import requests
import yaml
from mlflow import MlflowClient
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from model_fixtures import train, users_frame
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession
from serve_harness import Process, free_port
from test_airflow_dag import dag_steps

from lakegate_config.settings import Settings, load_settings
from spark_jobs.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PATH_LINES = ("Valid rows:", "Quarantined rows:", "Report:", "HTML report:", "Metrics history:")


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str, language: str | None = None) -> list[str]:
    """Fenced blocks in order, optionally only those of one language (`""`: no language)."""
    found = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    return [body for lang, body in found if language is None or lang == language]


def lakegate_commands(block: str) -> list[list[str]]:
    """Each `.venv/bin/lakegate ...` command of a bash block, continuations joined."""
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(".venv/bin/lakegate "):
            commands.append(shlex.split(line)[1:])
    return commands


def sandboxed(args: list[str], root: Path) -> list[str]:
    """Relative output paths (`out/...`) made absolute under `root`.

    In-process, Spark's JVM keeps the test run's working folder, so a path the README gives
    relative to the project is handed to it absolute; configuration paths resolve by themselves.
    """

    def absolute(value: str) -> str:
        name, eq, path = value.rpartition("=")
        scheme, colon, rest = path.partition(":")  # a stream source: csv:out/landing
        if colon and rest.startswith("out/"):
            return f"{name}{eq}{scheme}:{root / rest}"
        return f"{name}{eq}{root / path}" if path.startswith("out/") else value

    return [absolute(a) for a in args]


def sandbox_project(root: Path, env: str) -> Path:
    """A project folder at `root`: a copy of `conf/` naming the README's model `users`, with a
    registry and an online store of its own under `root/.lakegate`; returns its conf folder.

    `checks/` and `data/` are linked, so configuration paths resolve as in the project.
    """
    shutil.copytree("conf", root / "conf")
    for folder in ("checks", "data"):
        (root / folder).symlink_to(Path(folder).resolve())
    state = root / ".lakegate"
    state.mkdir()
    path = root / f"conf/{env}.yaml"
    conf = yaml.safe_load(path.read_text())
    conf["models"] = {"users": "models:/users@champion"}
    conf["mlflow"] = {
        **conf.get("mlflow", {}),
        "tracking_uri": f"sqlite:///{state / 'mlflow.db'}",
        "artifact_root": str(state / "mlartifacts"),
    }
    conf["online_store"] = {"path": str(state / "online_store.db")}
    path.write_text(yaml.safe_dump(conf))
    return root / "conf"


@contextmanager
def mlflow_store(uri: str) -> Iterator[None]:
    """MLflow's process-wide store is `uri` inside, and what it was after.

    Training sets MLflow's tracking and registry URIs for the whole process (its globals and
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which lakegate's settings read first): a
    sandbox's registry must not outlive its test.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            patch.setenv(name, uri)
        patch.setattr(tracking_utils, "_tracking_uri", uri)
        patch.setattr(registry_utils, "_registry_uri", uri)
        yield


def assert_lines_match(printed: list[str], documented: list[str]) -> None:
    """`printed` is `documented` line for line, where the README's numbers may differ and a
    line ending in `...` stands for itself and every line after it that is indented."""
    shown = list(printed)
    for line in documented:
        elided = line.endswith("...")
        pattern = re.escape(line.removesuffix("...").rstrip() if elided else line)
        pattern = re.sub(r"\\\.\\\.\\\.", ".*", pattern)  # `...` inside a path
        pattern = re.sub(r"(?<![A-Za-z_])\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", pattern)
        assert shown, f"the README shows {line!r}; nothing more was printed"
        got = shown.pop(0)
        assert re.fullmatch(pattern + (".*" if elided else ""), got), (
            f"printed {got!r} where the README shows {line!r}; printed:\n" + "\n".join(printed)
        )
        while elided and shown and shown[0].startswith(" "):
            shown.pop(0)
    assert not shown, f"printed but not in the README: {shown}"


def test_readme_suite_is_the_bundled_items_suite() -> None:
    (documented,) = blocks(section("Validate a table"), "yaml")
    bundled = yaml.safe_load(Path("checks/examples/items.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(documented) == bundled


@pytest.mark.slow
def test_readme_validate_example_prints_the_documented_summary(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = section("Validate a table")
    (command_block,), (output_block,) = blocks(text, "bash"), blocks(text, "")
    ((*args,),) = lakegate_commands(command_block)
    args[args.index("--output") + 1] = str(tmp_path / "items")
    assert main([*args, "--no-history"]) == 1  # the documented run fails two constraints
    printed = capsys.readouterr().out.splitlines()
    documented = output_block.splitlines()
    assert [line for line in printed if not line.startswith(PATH_LINES)] == [
        line for line in documented if not line.startswith(PATH_LINES)
    ]


@pytest.mark.slow
def test_readme_train_sql_and_predict_examples_run_in_order(
    spark: SparkSession,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A copy of the project's configuration in a sandbox, so relative paths land in tmp_path,
    # with a registry of its own naming the README's model; the sample data is smaller.
    conf_dir = sandbox_project(tmp_path, settings.env)
    pipeline = yaml.safe_load((conf_dir / "pipelines/users.yaml").read_text())
    pipeline["sample_data"]["rows"] = 4000
    (conf_dir / "pipelines/users.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(conf_dir))
    monkeypatch.chdir(tmp_path)

    commands = lakegate_commands(blocks(section("Train, register, predict in SQL"), "bash")[0])
    assert [c[0] for c in commands] == ["run", "train", "sql", "predict"]
    printed = []
    with mlflow_store(str(load_settings(settings.env, conf_dir).mlflow.tracking_uri)):
        for args in commands:
            assert main(sandboxed(args, tmp_path)) == 0, (args, capsys.readouterr().err[-2000:])
            printed.append(capsys.readouterr().out)
    assert "user_id" in printed[2] and "|p" in printed[2].replace(" ", "")  # the sql table
    predictions = spark.read.format("delta").load(str(tmp_path / "out/users/predictions"))
    features = spark.read.format("delta").load(str(tmp_path / "out/users/features"))
    assert 0 < predictions.count() <= features.count()
    # "The main job" shows the summary `lakegate run` ends with: the same lines, numbers aside.
    (summary,) = blocks(section("The main job"), "")
    shown = (
        printed[0].replace(f"sqlite:///{tmp_path}/", "sqlite:///.../").replace(f"{tmp_path}/", "")
    )
    assert_lines_match(shown.splitlines(), summary.splitlines())


@pytest.mark.slow
def test_readme_contract_examples_run_as_written(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = lakegate_commands(blocks(section("Data contracts"), "bash")[0])
    assert [c[:2] for c in commands] == [
        ["validate", "checks/examples/items.odcs.yaml"],
        ["contract", "check"],
        ["contract", "export"],
    ]
    validate, check, export = (sandboxed(c, tmp_path) for c in commands)
    # The Items table breaks the contract's `required` productName: one row quarantined, exit 1.
    assert main([*validate, "--no-history", "--no-html-report"]) == 1
    report = json.loads((tmp_path / "out/items-contract/report.json").read_text())
    assert report["counts"] == {"rows_in": 5, "rows_valid": 4, "rows_quarantined": 1}
    assert main(check) == 0
    assert "contract: ok" in capsys.readouterr().out
    assert main(export) == 0
    exported = yaml.safe_load((tmp_path / "out/items.odcs.yaml").read_text())
    assert exported["kind"] == "DataContract" and exported["name"] == "items"


@pytest.mark.slow
def test_readme_stream_example_gates_the_landed_file_like_batch_mode(
    spark: SparkSession, tmp_path: Path
) -> None:
    block = blocks(section("Streaming"), "bash")[0]
    assert "cp data/items.csv out/landing/" in block  # what the README has the reader do first
    (landing := tmp_path / "out/landing").mkdir(parents=True)
    shutil.copy("data/items.csv", landing)
    ((*args,),) = lakegate_commands(block)
    assert args[:2] == ["stream", "validate"]
    assert main([*sandboxed(args, tmp_path), "--no-history"]) == 1  # as the batch example
    report = json.loads((tmp_path / "out/items-stream/report.json").read_text())
    assert report["counts"] == {"rows_in": 5, "rows_valid": 4, "rows_quarantined": 1}
    assert report["quarantine_reasons"] == {"isComplete(productName)": 1}


# "The main job", "Notebooks" and "On a cluster, in production": what the prose promises.


def test_readme_make_demo_runs_the_main_job_as_the_makefile_does() -> None:
    text = section("Two commands")
    (block,) = blocks(text, "bash")
    assert block.startswith("make demo ")
    (documented,) = re.findall(r"runs `lakegate (run [^`]+)`", text)
    makefile = Path("Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert recipe is not None, "the Makefile has no demo target"
    assert recipe.group(1).splitlines() == [f"\t$(VENV)/bin/lakegate {documented}"]
    assert f"`lakegate {documented}` runs the steps" in section("The main job")


def test_readme_main_job_names_the_pipelines_steps_suite_view_and_data_size() -> None:
    text = section("The main job")
    (path,) = re.findall(r"`lakegate run ([^`]+)`", text)
    pipeline = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    steps = [next(iter(step.items())) for step in pipeline["steps"]]
    assert re.findall(r"\*\*(\w+)\*\*", text) == [kind for kind, _ in steps]
    body = dict(steps)
    assert f"validate** the raw users (`{body['validate']['suite']}`)" in text
    assert f"registered as the view `{body['features']['table']}`" in text
    assert f"users, {pipeline['sample_data']['rows'] // 1000}k rows" in text


def test_readme_notebooks_are_the_ones_in_the_folder() -> None:
    listed = re.findall(r"`(\d\d_\w+\.py)`", section("Notebooks"))
    # tests/test_notebooks.py runs every notebook in the folder, so each listed one runs.
    assert listed == sorted(p.name for p in Path("notebooks").glob("*.py"))


def test_readme_submit_dry_run_prints_spark_submit_with_jars_code_and_interpreter(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No cluster here: `--dry-run` prints the spark-submit line the README's command would run
    # (tests/test_cluster.py runs such lines on a real standalone cluster).
    (template,) = re.findall(r"`lakegate (submit [^`]+)`", section("On a cluster, in production"))
    assert template == "submit --master spark://HOST:PORT JOB ARGS..."
    ((*job,),) = lakegate_commands(blocks(section("Validate a table"), "bash")[0])
    words = template.replace("HOST:PORT", "127.0.0.1:7077").split()
    args = [*words[:3], "--dry-run", *sandboxed(job, tmp_path)]
    assert words[3:] == ["JOB", "ARGS..."]
    assert main(args) == 0
    line = shlex.split(capsys.readouterr().out)
    assert Path(line[0]).name == "spark-submit"
    assert line[line.index("--master") + 1] == "spark://127.0.0.1:7077"
    shipped = line[line.index("--jars") + 1] if "--jars" in line else ""
    shipped += line[line.index("--packages") + 1] if "--packages" in line else ""
    assert "deequ" in shipped and "delta" in shipped
    with zipfile.ZipFile(line[line.index("--py-files") + 1]) as code:
        assert "spark_jobs/validate.py" in code.namelist()
    assert f"spark.pyspark.python={sys.executable}" in line
    application = line.index(str(ROOT / "spark_jobs" / "validate.py"))
    assert line[application + 1 :] == sandboxed(job, tmp_path)[1:]


# "SQL for analysts" and "Real-time predictions": the README's servers over one small project.

FEATURES = ["feature_1", "feature_2", "feature_3"]
LAKEGATE = str(Path(sys.executable).with_name("lakegate"))
BEELINE = str(Path(pyspark.__file__).parent / "bin" / "beeline")


@dataclass(frozen=True)
class Project:
    """A sandboxed project: `out/users/features` and a `users` model as its champion."""

    root: Path
    conf_dir: Path
    settings: Settings
    tracking_uri: str
    features: pd.DataFrame
    model: PyFuncModel
    version: str

    def env(self) -> dict[str, str]:
        """The environment a `lakegate` process of this project runs with."""
        uri = self.tracking_uri
        return {
            **os.environ,
            "LAKEGATE_CONF_DIR": str(self.conf_dir),
            "LAKEGATE_ENV": "test",
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_REGISTRY_URI": uri,
        }

    def predicted(self, rows: pd.DataFrame) -> list[int]:
        """The champion's own predictions for `rows`."""
        return [int(p) for p in pd.Series(self.model.predict(rows[FEATURES])).tolist()]


@pytest.fixture(scope="module")
def project(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """200 users as the main job's features table and a model trained on them, registered."""
    root = tmp_path_factory.mktemp("readme-project")
    conf_dir = sandbox_project(root, settings.env)
    own = load_settings(settings.env, conf_dir)
    uri = str(own.mlflow.tracking_uri)  # the sandbox's, whatever a former test left in the env
    features = users_frame(rows=200, seed=5)
    spark.createDataFrame(features).write.format("delta").save(str(root / "out/users/features"))
    with mlflow_store(uri):
        version = str(train(own, "users").version)
        MlflowClient(uri).set_registered_model_alias("users", "champion", version)
        model = mlflow.pyfunc.load_model(f"models:/users/{version}")
    return Project(root, conf_dir, own, uri, features, model, version)


@pytest.mark.slow
def test_readme_sql_example_prints_the_champions_predictions(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = lakegate_commands(blocks(section("Train, register, predict in SQL"), "bash")[0])
    (args,) = [c for c in commands if c[0] == "sql"]
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(project.conf_dir))
    with mlflow_store(project.tracking_uri):
        assert main(sandboxed(args, project.root)) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|$", out, flags=re.M)
    assert len(rows) == 5, out  # LIMIT 5
    users = project.features.set_index("user_id").loc[[int(u) for u, _ in rows]]
    assert [int(p) for _, p in rows] == project.predicted(users)


def started(project: Project, args: list[str], ready: str | None, log: Path) -> Process:
    """`lakegate ARGS` of `project` on loopback, ready once its log shows `ready` (serve-sql)
    or its `/health` answers (serve, on the port after `--port`)."""
    port = int(args[args.index("--port") + 1])

    def up() -> bool:
        if ready is not None:
            return ready in log.read_text(encoding="utf-8", errors="replace")
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    server = Process([LAKEGATE, *args], port, up, log)
    with pytest.MonkeyPatch.context() as patch:  # what the process starts with
        for name, value in project.env().items():
            patch.setenv(name, value)
        patch.chdir(project.root)
        server.start(seconds=300)
    return server


@pytest.fixture(scope="module")
def sql_server(project: Project) -> Iterator[tuple[Process, str]]:
    """The README's `lakegate serve-sql` line on a free port; its comment's URL there."""
    block = blocks(section("SQL for analysts: a shell and a JDBC endpoint"), "bash")[0]
    ((*args,),) = lakegate_commands(block)
    (url,) = re.findall(r"lakegate serve-sql .*# (jdbc:\S+)", block)
    port = free_port()
    args = [*sandboxed(args, project.root), "--port", str(port)]
    server = started(project, args, "serving jdbc:hive2://", project.root / "serve-sql.log")
    yield server, url.replace(":10000/", f":{port}/")
    server.stop()


@pytest.mark.slow
def test_readme_beeline_query_answers_the_champions_mean_prediction(
    project: Project, sql_server: tuple[Process, str]
) -> None:
    server, url = sql_server
    assert f"serving {url} " in server.log.read_text()  # the README's comment, on this port
    assert project.settings.sql_server.port == 10000  # the port the README's lines name
    block = blocks(section("SQL for analysts: a shell and a JDBC endpoint"), "bash")[0]
    (line,) = [line for line in block.splitlines() if line.startswith("beeline ")]
    words = [w.replace("127.0.0.1:10000", f"127.0.0.1:{server.port}") for w in shlex.split(line)]
    result = subprocess.run(
        [BEELINE, *words[1:]],
        stdin=subprocess.DEVNULL,  # beeline echoes its prompt when stdin is not a terminal
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cells = re.findall(r"^\|\s*([^|]*?)\s*\|$", result.stdout, flags=re.M)
    assert len(cells) == 2 and cells[0].startswith("avg("), result.stdout  # a header, a value
    expected = sum(project.predicted(project.features)) / len(project.features)
    assert float(cells[1]) == pytest.approx(expected)


@pytest.mark.slow
def test_readme_serve_sql_stops_on_sigterm(sql_server: tuple[Process, str]) -> None:
    server, _ = sql_server
    process = server.process
    assert process is not None and process.poll() is None
    process.send_signal(signal.SIGTERM)  # to lakegate alone, as `kill PID` does
    assert process.wait(timeout=120) == 0
    server.stop()  # the port closes
    assert "stopping: closing the JDBC port, then Spark" in server.log.read_text()


@dataclass(frozen=True)
class Curl:
    """A README `curl` line as the request curl sends, and the answer the README shows."""

    url: str
    data: str | None
    answer: dict[str, object]

    def send(self, host_port: str) -> requests.Response:
        """The request against `host_port` instead of the README's 127.0.0.1:8080."""
        url = self.url.replace("127.0.0.1:8080", host_port, 1)
        url = url if "://" in url else f"http://{url}"
        if self.data is None:
            return requests.get(url, timeout=60)
        # `curl -d` posts the bytes as they are, as a form: what a server gets from the README
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return requests.post(url, data=self.data.encode(), headers=headers, timeout=60)


def curl_examples(block: str) -> list[Curl]:
    """Each `curl` line of a bash block (continuations joined) with the `# {...}` line after it.

    Raises:
        AssertionError: an option this reader does not know (teach it, or change the README).
    """
    lines = block.replace("\\\n", " ").splitlines()
    examples = []
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if not line.startswith("curl "):
            continue
        words, url, data = shlex.split(line)[1:], None, None
        while words:
            word = words.pop(0)
            if word == "-s":
                continue
            if word in ("-d", "--data"):
                data = words.pop(0)
            else:
                assert not word.startswith("-"), f"curl option {word} in the README"
                url = word
        assert url is not None and after.startswith("# {"), line
        examples.append(Curl(url, data, json.loads(after.removeprefix("# "))))
    return examples


@pytest.fixture(scope="module")
def rest_server(project: Project) -> Iterator[Process]:
    """The README's `lakegate serve` line on a free port."""
    block = blocks(section("Real-time predictions"), "bash")[0]
    (args,) = [c for c in lakegate_commands(block) if c[0] == "serve"]
    args = [*args, "--port", str(free_port())]
    server = started(project, args, None, project.root / "serve.log")
    yield server
    server.stop()


@pytest.mark.slow
def test_readme_serving_examples_answer_in_the_documented_shape(
    project: Project,
    rest_server: Process,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = blocks(section("Real-time predictions"), "bash")[0]
    (materialize, serve) = lakegate_commands(block)
    assert materialize[0] == "materialize" and serve == ["serve"]
    assert re.search(r"lakegate serve +# 127\.0\.0\.1:8080$", block, flags=re.M)
    assert (project.settings.serving.host, project.settings.serving.port) == ("127.0.0.1", 8080)
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(project.conf_dir))
    with mlflow_store(project.tracking_uri):  # materialize logs its metrics to MLflow
        assert main(sandboxed(materialize, project.root)) == 0, capsys.readouterr().err[-2000:]
    assert "as feature view 'features' (key user_id)" in capsys.readouterr().out

    predict, by_key = curl_examples(block)
    users = project.features.set_index("user_id")
    for example, rows in (
        (predict, pd.DataFrame(json.loads(predict.data or "{}")["dataframe_records"])),
        (by_key, users.loc[json.loads(by_key.data or "{}")["keys"]]),
    ):
        answer = example.send(f"127.0.0.1:{rest_server.port}")
        assert answer.status_code == 200, (example.url, answer.text)
        got = answer.json()
        assert list(got) == list(example.answer)  # the same fields, in the same order
        assert [type(v) for v in got.values()] == [type(v) for v in example.answer.values()]
        assert got["predictions"] == project.predicted(rows)
        assert len(got["predictions"]) == len(example.answer["predictions"])  # type: ignore[arg-type]
        assert (got["model_name"], got["model_version"]) == ("users", project.version)
        assert got.get("feature_view") == example.answer.get("feature_view")


@pytest.mark.slow
def test_readme_serving_prose_a_400_names_the_feature_and_metrics_are_prometheus(
    rest_server: Process,
) -> None:
    text = section("Real-time predictions")
    prose = " ".join(text.split())
    assert "a 400 names the feature" in prose and "`/metrics` is Prometheus" in prose
    predict, _ = curl_examples(blocks(text, "bash")[0])
    body = json.loads(predict.data or "{}")
    del body["dataframe_records"][0]["feature_2"]
    lacking = Curl(predict.url, json.dumps(body), {})
    answer = lacking.send(f"127.0.0.1:{rest_server.port}")
    assert answer.status_code == 400 and "'feature_2'" in answer.json()["message"], answer.text
    metrics = requests.get(f"http://127.0.0.1:{rest_server.port}/metrics", timeout=30)
    families = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert metrics.status_code == 200 and families, metrics.text[:500]


def test_readme_airflow_dag_command_prints_a_dag_of_the_pipelines_steps(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Airflow itself is not installed here (tests/test_airflow_dag.py runs it, tier `airflow`):
    # the README's command must print a DAG whose tasks are the pipeline's steps.
    text = section("On a cluster, in production")
    (line,) = re.findall(r"`lakegate (airflow-dag [^`]+)`", text.replace("\n", " "))
    *args, redirect, target = shlex.split(line)
    assert (redirect, target) == (">", "dags/users.py")
    assert main(args) == 0
    dag = capsys.readouterr().out
    compile(dag, target, "exec")
    pipeline = yaml.safe_load(Path(args[1]).read_text(encoding="utf-8"))
    kinds = [next(iter(step)) for step in pipeline["steps"]]
    assert [task["task_id"] for task in dag_steps(dag)] == kinds
    assert f"schedule={args[args.index('--schedule') + 1]!r}" in dag
