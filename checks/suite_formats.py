"""Every suite format read into one `Suite`: lakegate YAML, Great Expectations JSON, ODCS contracts.

It sits above the modules of each format (`checks.suite` for checks and schema,
`checks.anomalies`, `checks.great_expectations`, `checks.contracts`), which all build on
`checks.suite` and never import this module back: the imports run one way.

`parse_suite` validates a YAML suite document whole (its checks with `checks.suite.parse_checks`,
its `anomalies:` with `checks.anomalies.parse_anomalies`); `load_suite` picks the format of a
file and is what every command, notebook and test loads a suite with.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from checks.anomalies import parse_anomalies
from checks.great_expectations import is_gx_suite_file, load_gx_suite
from checks.suite import Suite, SuiteError, parse_checks
from lakegate_config.yaml_document import DocumentError, YamlDocument, load_yaml_document

__all__ = ["load_suite", "parse_suite"]


def parse_suite(document: YamlDocument) -> Suite:
    """Validate a loaded YAML document as a suite: its checks, then its `anomalies:` entries.

    Raises:
        SuiteError: naming the file, line, entry and the problem.
    """
    suite = parse_checks(document)
    return replace(suite, anomalies=parse_anomalies(document))


def load_suite(
    path: str | Path, *, schema_name: str | None = None, allow_unexecutable: bool = False
) -> Suite:
    """Load and validate a suite file.

    A `.json` file is read as a Great Expectations expectation suite (`checks.great_expectations`);
    a YAML ODCS v3 data contract (`kind: DataContract`) through `checks.contracts`, where
    `schema_name` picks its schema object and `allow_unexecutable` skips rules that cannot run.

    Raises:
        SuiteError: the file is missing, not YAML, or not a valid suite or contract.
    """
    if is_gx_suite_file(path):
        return load_gx_suite(Path(path))
    try:
        document = load_yaml_document(path)
    except SuiteError:
        raise
    except DocumentError as exc:
        raise SuiteError(str(exc)) from None
    if isinstance(document.data, dict) and document.data.get("kind") == "DataContract":
        from checks.contracts import contract_suite  # the ODCS model loads only for contracts

        return contract_suite(
            document, schema_name=schema_name, allow_unexecutable=allow_unexecutable
        )
    if schema_name is not None:
        raise SuiteError(f"{path}: --schema-name applies to data contracts; this is a suite")
    return parse_suite(document)
