"""`lakegate contract export|check`: ODCS v3 data contracts, without Spark.

`export SUITE.yaml -o CONTRACT.odcs.yaml` writes a suite (or `lakegate suggest`'s output) as a
contract that validates the same way; `check CONTRACT.odcs.yaml` lints a contract against
ODCS's JSON schema (when the `jsonschema` package is installed; ODCS's pydantic model always)
and shows what each rule runs as, or why it cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict

from checks.contracts import contract_suite, json_schema_problems, path_text
from checks.suite import Suite, SuiteError
from checks.suite_formats import load_suite
from lakegate_config.yaml_document import YamlDocument, load_yaml_document
from spark_jobs.services.command import JobContext, lakegate_command


@click.group("contract")
def command() -> None:
    """ODCS v3 data contracts: export a suite as one, check one (no Spark)."""


class ContractExportSpec(BaseModel):
    """The suite to export, and where to write the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite_file: Path
    output: Path | None = None


@dataclass(frozen=True)
class ContractExport:
    """The contract's text, what did not carry over, and the file written (None: printed)."""

    text: str
    notes: tuple[str, ...]
    output: Path | None


def run_export(spec: ContractExportSpec) -> ContractExport:
    """Translate the suite into an ODCS v3 contract; write it when `spec.output` is given."""
    from checks.contract_export import contract_yaml
    from spark_jobs.convert import write_text_atomically

    text, notes = contract_yaml(load_suite(spec.suite_file))
    if spec.output is not None:
        write_text_atomically(spec.output, text)
    return ContractExport(text, tuple(notes), spec.output)


def render_export(result: ContractExport, spec: ContractExportSpec) -> int:
    """Print the notes (standard error), then the contract or where it was written."""
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.output is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"wrote {result.output}", err=True)
    return 0


@lakegate_command("export", spec=ContractExportSpec, render=render_export)
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the contract here (default: print it).",
)  # fmt: skip
def export(job: JobContext, spec: ContractExportSpec) -> ContractExport:
    """Write a lakegate suite as an ODCS v3 data contract."""
    return run_export(spec)


class ContractCheckSpec(BaseModel):
    """The contract to lint, which schema object, and whether unexecutable rules fail it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_file: Path
    schema_name: str | None = None
    allow_unexecutable: bool = False


@dataclass(frozen=True)
class SchemaObjectCheck:
    """How one schema object's rules run: its suite, or why it cannot run."""

    name: str | None
    suite: Suite | None = None
    error: str | None = None

    def failed(self, allow_unexecutable: bool) -> bool:
        """Whether it cannot run as it is."""
        if self.suite is None:
            return True
        return bool(self.suite.skipped) and not allow_unexecutable


@dataclass(frozen=True)
class ContractCheck:
    """The JSON schema's problems (None: not checked) and each schema object's check."""

    problems: tuple[str, ...] | None
    objects: tuple[SchemaObjectCheck, ...]
    failed: bool


def run_check(spec: ContractCheckSpec) -> ContractCheck:
    """Lint the contract against ODCS's JSON schema, then map every schema object's rules."""
    document = load_yaml_document(spec.contract_file)
    problems = json_schema_problems(document)
    objects = document.data.get("schema") if isinstance(document.data, dict) else None
    names = [o.get("name") for o in objects or [] if isinstance(o, dict)]
    checked = tuple(
        _check_object(document, name)
        for name in ([spec.schema_name] if spec.schema_name else (names or [None]))
    )
    failed = bool(problems) or any(c.failed(spec.allow_unexecutable) for c in checked)
    return ContractCheck(None if problems is None else tuple(problems), checked, failed)


def _check_object(document: YamlDocument, name: str | None) -> SchemaObjectCheck:
    """One schema object's suite, or the reason it cannot run."""
    try:
        suite = contract_suite(document, schema_name=name, allow_unexecutable=True)
    except SuiteError as exc:
        return SchemaObjectCheck(name, error=str(exc))
    return SchemaObjectCheck(name, suite=suite)


def render_check(result: ContractCheck, spec: ContractCheckSpec) -> int:
    """Print the JSON schema's problems and how each rule runs; exit 2 when problems were found."""
    if result.problems is None:
        click.echo("ODCS JSON schema: not checked (the jsonschema package is not installed)")
    else:
        click.echo(f"ODCS JSON schema: {len(result.problems)} problem(s)")
        for problem in result.problems:
            click.echo(f"  {problem}")
    for checked in result.objects:
        _render_object(checked)
    click.echo("contract: " + ("problems found" if result.failed else "ok"))
    return 2 if result.failed else 0


def _render_object(checked: SchemaObjectCheck) -> None:
    """Print how one schema object's rules run, or why it cannot run."""
    suite = checked.suite
    if suite is None:
        error = (checked.error or "").replace("\n", "\n  ")
        click.echo(f"schema object {checked.name}: cannot run:\n  " + error)
        return
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


@lakegate_command("check", spec=ContractCheckSpec, render=render_check)
@click.argument("contract_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--schema-name", default=None, help="Check only this schema object.")
@click.option(
    "--allow-unexecutable", is_flag=True, help="Rules that cannot run are notes, not problems."
)
def check(job: JobContext, spec: ContractCheckSpec) -> ContractCheck:
    """Lint a contract: ODCS's JSON schema, then lakegate's mapping of every rule."""
    return run_check(spec)


command.add_command(export)
command.add_command(check)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("contract")
