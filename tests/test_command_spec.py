"""`@lakegate_command(name, spec=Spec, render=render)`: options into a frozen spec, a frozen result.

The decorator's own tests need no Spark; the `features` command's end to end does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.services.command import JobContext, lakegate_command


class CountSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(default=1, ge=1)
    label: str = "x"


@dataclass(frozen=True)
class Counted:
    rows: int
    label: str


def render(result: Counted, spec: CountSpec) -> int:
    click.echo(f"{result.rows} {result.label}")
    return 3 if result.rows > 10 else 0


def _count_command(calls: list[CountSpec]) -> click.Command:
    @lakegate_command("count", spec=CountSpec, render=render)
    @click.option("--rows", type=int, default=1)
    @click.option("--label", default="x")
    def command(job: JobContext, spec: CountSpec) -> Counted:
        calls.append(spec)
        return Counted(spec.rows, spec.label)

    return command


def _run(command: click.Command, args: list[str]) -> object:
    """The command's return value, as `spark_jobs.cli.main` gets it."""
    return command.main(args, standalone_mode=False)


def test_options_become_the_spec_and_the_rendered_result_gives_the_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[CountSpec] = []
    assert _run(_count_command(calls), ["--rows", "12", "--label", "users"]) == 3
    assert _run(_count_command(calls), []) == 0
    assert capsys.readouterr().out == "12 users\n1 x\n"
    assert calls == [CountSpec(rows=12, label="users"), CountSpec()]


def test_an_option_the_spec_refuses_is_a_usage_error_naming_it_before_the_body_runs() -> None:
    calls: list[CountSpec] = []
    with pytest.raises(click.BadParameter) as refused:
        _run(_count_command(calls), ["--rows", "0"])
    assert refused.value.exit_code == 2  # spark_jobs.cli.main: ExitCode.USAGE
    message = refused.value.format_message()
    assert "Invalid value for '--rows'" in message and "greater than or equal to 1" in message
    assert calls == []


def test_a_result_that_is_not_frozen_is_refused() -> None:
    @dataclass
    class Loose:
        rows: int

    @lakegate_command("loose", spec=CountSpec, render=lambda result, spec: 0)
    @click.option("--rows", type=int, default=1)
    def command(job: JobContext, spec: CountSpec) -> Loose:
        return Loose(spec.rows)

    with pytest.raises(TypeError, match="returned Loose, not a frozen result"):
        _run(command, [])


def test_an_option_that_is_no_field_of_the_spec_fails_at_import() -> None:
    with pytest.raises(TypeError, match=r"options without a field: \['limit'\]"):

        @lakegate_command("bad", spec=CountSpec, render=render)
        @click.option("--limit", type=int)
        def command(job: JobContext, spec: CountSpec) -> Counted:
            raise AssertionError("never runs")


def test_a_spec_that_is_not_frozen_fails_at_import() -> None:
    class Open(BaseModel):
        rows: int = 1

    with pytest.raises(TypeError, match="must be frozen"):

        @lakegate_command("open", spec=Open, render=render)
        @click.option("--rows", type=int)
        def command(job: JobContext, spec: Open) -> Counted:
            raise AssertionError("never runs")


def test_submit_dry_run_prints_the_command_and_runs_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["submit", "--master", "local[1]", "--dry-run", "features", "conf/x.yaml"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    line = out.strip()
    assert line.split()[0].endswith("spark-submit")
    assert "--master 'local[1]'" in line and line.endswith("spark_jobs/features.py conf/x.yaml")


def test_submit_of_an_unknown_job_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "--master", "local[1]", "--dry-run", "nosuch"]) == 2
    assert "unknown job 'nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_features_cli_writes_the_table_and_prints_its_rows_and_columns(
    spark: SparkSession, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "users.parquet", tmp_path / "features"
    users = spark.createDataFrame([(1, 2.0, 0), (2, 3.0, 1)], "user_id INT, f DOUBLE, target INT")
    users.write.parquet(str(source))
    config = tmp_path / "features.yaml"
    config.write_text(
        f"input: {source}\nkey: [user_id]\ndefinitions: {{f2: f * f}}\n"
        f"passthrough: [target]\noutput: {output}\ntable: null\n"
    )
    assert main(["features", str(config), "--env", "test"]) == 0
    assert capsys.readouterr().out == f"Wrote 2 rows with user_id, f2, target to {output}\n"
    written = spark.read.format(settings.outputs.format).load(str(output))
    assertDataFrameEqual(written, spark.createDataFrame([(1, 4.0, 0), (2, 9.0, 1)], written.schema))


def test_features_cli_with_a_bad_config_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "features.yaml"
    config.write_text("input: x\nkey: []\ndefinitions: {}\noutput: y\n")
    assert main(["features", str(config), "--env", "test"]) == 2
    assert str(config) in capsys.readouterr().err
