"""`lakegate contract export|check`: ODCS v3 data contracts, without Spark.

`export SUITE.yaml -o CONTRACT.odcs.yaml` writes a suite (or `lakegate suggest`'s output) as a
contract that validates the same way; `check CONTRACT.odcs.yaml` lints a contract against
ODCS's JSON schema (when the `jsonschema` package is installed; ODCS's pydantic model always)
and shows what each rule runs as, or why it cannot run.
"""

from __future__ import annotations

from pathlib import Path

import click

from checks.contracts import contract_suite, json_schema_problems, path_text
from checks.suite import SuiteError
from checks.suite_formats import load_suite
from lakegate_config.yaml_document import load_yaml_document


@click.group("contract")
def command() -> None:
    """ODCS v3 data contracts: export a suite as one, check one (no Spark)."""


@command.command("export")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the contract here (default: print it).",
)  # fmt: skip
def export(suite_file: Path, output: Path | None) -> int:
    """Write a lakegate suite as an ODCS v3 data contract."""
    from checks.contract_export import contract_yaml
    from spark_jobs.convert import write_text_atomically

    text, notes = contract_yaml(load_suite(suite_file))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomically(output, text)
        click.echo(f"wrote {output}", err=True)
    return 0


@command.command("check")
@click.argument("contract_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--schema-name", default=None, help="Check only this schema object.")
@click.option(
    "--allow-unexecutable", is_flag=True, help="Rules that cannot run are notes, not problems."
)
def check(contract_file: Path, schema_name: str | None, allow_unexecutable: bool) -> int:
    """Lint a contract: ODCS's JSON schema, then lakegate's mapping of every rule."""
    document = load_yaml_document(contract_file)
    problems = json_schema_problems(document)
    if problems is None:
        click.echo("ODCS JSON schema: not checked (the jsonschema package is not installed)")
    else:
        click.echo(f"ODCS JSON schema: {len(problems)} problem(s)")
        for problem in problems:
            click.echo(f"  {problem}")
    objects = document.data.get("schema") if isinstance(document.data, dict) else None
    names = [o.get("name") for o in objects or [] if isinstance(o, dict)]
    failed = bool(problems)
    for name in [schema_name] if schema_name else (names or [None]):
        failed |= _check_object(document, name, allow_unexecutable)
    click.echo("contract: " + ("problems found" if failed else "ok"))
    return 2 if failed else 0


def _check_object(document: object, name: str | None, allow_unexecutable: bool) -> bool:
    """Print how one schema object's rules run; True when it cannot run as it is."""
    from lakegate_config.yaml_document import YamlDocument

    assert isinstance(document, YamlDocument)
    try:
        suite = contract_suite(document, schema_name=name, allow_unexecutable=True)
    except SuiteError as exc:
        click.echo(f"schema object {name}: cannot run:\n  " + str(exc).replace("\n", "\n  "))
        return True
    rows = sum(c.blames_rows for c in suite.constraints)
    click.echo(
        f"schema object {suite.name}: {len(suite.constraints)} constraints "
        f"({rows} row rules), {len(suite.skipped)} not executable"
    )
    for check in suite.checks:
        for c in check.constraints:
            kind = "row rule" if c.blames_rows else "table"
            click.echo(f"  {c.meta.get('path', path_text(()))} -> {c.id}  [{kind}, {check.level}]")
    for skipped in suite.skipped:
        click.echo(
            f"  {skipped['path']} (line {skipped['line']}): not executable: {skipped['reason']}"
        )
    return bool(suite.skipped) and not allow_unexecutable


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("contract")
