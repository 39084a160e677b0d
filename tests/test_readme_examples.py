"""The README's examples run as written, so the docs cannot rot (chispa's habit).

Commands are taken from the README's fenced `bash` blocks and run through `lakegate`'s own
entry point; printed output is compared with the README's output block where it shows one.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings
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


def test_readme_suite_is_the_bundled_items_suite() -> None:
    (documented,) = blocks(section("Validate a table"), "yaml")
    bundled = yaml.safe_load(Path("checks/examples/items.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(documented) == bundled


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
    # A copy of the project's configuration in a sandbox, so relative paths land in tmp_path;
    # the sample data is smaller and the test environment names the README's model.
    shutil.copytree("conf", tmp_path / "conf")
    for folder in ("checks", "data"):
        (tmp_path / folder).symlink_to(Path(folder).resolve())
    pipeline = yaml.safe_load((tmp_path / "conf/pipelines/users.yaml").read_text())
    pipeline["sample_data"]["rows"] = 4000
    (tmp_path / "conf/pipelines/users.yaml").write_text(yaml.safe_dump(pipeline))
    conf = yaml.safe_load((tmp_path / f"conf/{settings.env}.yaml").read_text())
    conf["models"] = {"users": "models:/users@champion"}
    (tmp_path / f"conf/{settings.env}.yaml").write_text(yaml.safe_dump(conf))
    monkeypatch.setenv("LAKEGATE_CONF_DIR", str(tmp_path / "conf"))
    monkeypatch.chdir(tmp_path)

    commands = lakegate_commands(blocks(section("Train, register, predict in SQL"), "bash")[0])
    assert [c[0] for c in commands] == ["run", "train", "sql", "predict"]
    for args in commands:
        assert main(sandboxed(args, tmp_path)) == 0, (args, capsys.readouterr().err[-2000:])
    out = capsys.readouterr().out
    assert "user_id" in out and "|p" in out.replace(" ", "")  # the sql example's table
    predictions = spark.read.format("delta").load(str(tmp_path / "out/users/predictions"))
    features = spark.read.format("delta").load(str(tmp_path / "out/users/features"))
    assert 0 < predictions.count() <= features.count()


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
