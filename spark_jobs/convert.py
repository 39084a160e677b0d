"""`lakegate convert SUITE.json [-o suite.yaml]`: a Great Expectations suite as lakegate YAML.

No Spark: the translation is read, checked as a lakegate suite and printed (or written whole,
through a temporary file and a rename, so an earlier file is replaced or left as it was).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

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


@lakegate_command("convert")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the lakegate suite here (default: print it).",
)  # fmt: skip
def command(job: JobContext, suite_file: Path, output: Path | None) -> int:
    """Translate a Great Expectations expectation-suite JSON into a lakegate YAML suite."""
    from checks.great_expectations import suite_yaml

    text = suite_yaml(suite_file)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomically(output, text)
        click.echo(f"wrote {output}", err=True)
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("convert")
