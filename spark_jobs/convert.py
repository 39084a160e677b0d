"""`lakegate convert SUITE.json [-o suite.yaml]`: a Great Expectations suite as lakegate YAML.

No Spark: the translation is read, checked as a lakegate suite and printed (or written whole,
through a temporary file and a rename, so an earlier file is replaced or left as it was).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict

from spark_jobs.services.command import JobContext, lakegate_command


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ConvertSpec(BaseModel):
    """The Great Expectations suite to translate, and where to write the lakegate suite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite_file: Path
    output: Path | None = None


@dataclass(frozen=True)
class ConvertResult:
    """The lakegate suite's text, and the file it was written to (None: to be printed)."""

    text: str
    output: Path | None


def run(spec: ConvertSpec) -> ConvertResult:
    """Translate the suite; write it to `spec.output` when given (whole or not at all)."""
    from checks.great_expectations import suite_yaml

    text = suite_yaml(spec.suite_file)
    if spec.output is not None:
        write_text_atomically(spec.output, text)
    return ConvertResult(text, spec.output)


def render(result: ConvertResult, spec: ConvertSpec) -> int:
    """Print the suite, or where it was written (on standard error)."""
    if result.output is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"wrote {result.output}", err=True)
    return 0


@lakegate_command("convert", spec=ConvertSpec, render=render)
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the lakegate suite here (default: print it).",
)  # fmt: skip
def command(job: JobContext, spec: ConvertSpec) -> ConvertResult:
    """Translate a Great Expectations expectation-suite JSON into a lakegate YAML suite."""
    return run(spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("convert")
