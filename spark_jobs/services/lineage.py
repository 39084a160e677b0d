"""OpenLineage run events for every job: START, then COMPLETE or FAIL, with its datasets.

Off unless the standard OpenLineage configuration is set: `OPENLINEAGE_URL` (HTTP),
`OPENLINEAGE_CONFIG` (a YAML file naming a console, file, HTTP... transport) or
`OPENLINEAGE__TRANSPORT__*` variables; `OPENLINEAGE_DISABLED=true` turns it off again. The
client is openlineage-python (the `lineage` extra); without it lineage stays off, said once in
the log. The job namespace is `OPENLINEAGE_NAMESPACE` (default `lakegate`).

`spark_jobs.services.command.lakegate_command` opens a `LineageRun` around every command;
jobs add what they read and wrote to the current run (`current_run`), and validate attaches
its data-quality facets (`record_validation`). Emitting never fails a job: a transport error is
logged and the job goes on.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.generated.base import InputDatasetFacet

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/lakegate/lakegate"
DEFAULT_NAMESPACE = "lakegate"
# A catalog table (`db.items`) has no storage location in its name.
CATALOG_NAMESPACE = "spark_catalog"
_CONFIG_VARIABLES = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")
_OBJECT_STORES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs"}

_current: ContextVar[LineageRun | None] = ContextVar("lakegate_lineage_run", default=None)


def lineage_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for OpenLineage events."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name) for name in _CONFIG_VARIABLES) or any(
        name.startswith("OPENLINEAGE__TRANSPORT") for name in environ
    )


@cache
def _client_type() -> type[OpenLineageClient] | None:
    """openlineage-python's client class, or None (said once in the log) when not installed."""
    try:
        from openlineage.client import OpenLineageClient
    except ImportError:
        log.warning(
            "OpenLineage is configured but openlineage-python is not installed: no lineage "
            "events (install lakegate[lineage])"
        )
        return None
    return OpenLineageClient


def _client() -> OpenLineageClient | None:
    """A client built from the environment's configuration now, or None (lineage off)."""
    client_type = _client_type()
    return None if client_type is None else client_type()


def dataset_identity(location: str, *, table_names: bool = True) -> tuple[str, str]:
    """OpenLineage's (namespace, name) for a path, URI or catalog table.

    Local paths are `file` + the absolute path; `s3a://bucket/key` is `s3://bucket` + `key`
    (likewise `gs://`); other URIs (`hdfs://host:port/path`, `abfss://...`) keep scheme and
    authority as the namespace and the path as the name. Credentials in a URI are dropped. With
    `table_names` (inputs), a name without a folder that is no existing file (`db.items`) is a
    catalog table, as `table_io.read_table` reads it; outputs are always paths.
    """
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if len(scheme) > 1 and scheme != "file":
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if scheme in _OBJECT_STORES:
            return f"{_OBJECT_STORES[scheme]}://{host}", parts.path.lstrip("/")
        if parts.username and "@" in parts.netloc and scheme.startswith(("abfs", "wasb")):
            host = f"{parts.username}@{host}"  # container@account: the name, not a credential
        return f"{scheme}://{host}", parts.path or "/"
    path = parts.path if scheme == "file" else location
    bare = scheme != "file" and "/" not in path and os.sep not in path
    if table_names and bare and not Path(path).exists():
        return CATALOG_NAMESPACE, location
    return "file", str(Path(path).absolute())


class LineageRun:
    """One job's run: its datasets so far, and the events that tell them."""

    def __init__(self, client: OpenLineageClient, job_name: str) -> None:
        from openlineage.client.uuid import generate_new_uuid

        self.client = client
        self.job_name = job_name
        self.namespace = os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE
        self.run_id = str(generate_new_uuid())
        self.inputs: dict[tuple[str, str], dict[str, InputDatasetFacet]] = {}
        self.outputs: dict[tuple[str, str], None] = {}

    def add_input(
        self, location: str, facets: Mapping[str, InputDatasetFacet] | None = None
    ) -> None:
        """Note a dataset the job read (with input facets, merged into earlier ones)."""
        self.inputs.setdefault(dataset_identity(location), {}).update(facets or {})

    def add_output(self, location: str) -> None:
        """Note a dataset the job wrote."""
        self.outputs.setdefault(dataset_identity(location, table_names=False))

    def emit(self, state: str, error: BaseException | str | None = None) -> None:
        """Send a START, COMPLETE or FAIL event; a transport error is logged, never raised."""
        try:
            self.client.emit(self._event(state, error))
        except Exception as exc:  # lineage must not fail the job
            log.warning("OpenLineage %s event for %s not sent: %s", state, self.job_name, exc)

    def _event(self, state: str, error: BaseException | str | None) -> Any:
        """The RunEvent for `state`, with the datasets known now."""
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )
        from openlineage.client.generated import error_message_run, job_type_job

        run_facets: dict[str, Any] = {}
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(error) or type(error).__name__,
                programmingLanguage="python",
                stackTrace=_stack_trace(error),
            )
        job_type = job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="LAKEGATE", jobType="JOB"
        )
        return RunEvent(
            eventType=RunState(state),
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=self.job_name, facets={"jobType": job_type}),
            producer=PRODUCER,
            inputs=[
                InputDataset(namespace=ns, name=name, inputFacets=dict(facets))
                for (ns, name), facets in self.inputs.items()
            ],
            outputs=[OutputDataset(namespace=ns, name=name) for ns, name in self.outputs],
        )


def _stack_trace(error: BaseException | str) -> str | None:
    """The formatted traceback of an exception (None for a message)."""
    if isinstance(error, str):
        return None
    return "".join(traceback.format_exception(error))


def current_run() -> LineageRun | None:
    """The lineage run of the command in progress, or None (lineage off, or no command)."""
    return _current.get()


@contextmanager
def job_run(
    job_name: str, inputs: Sequence[str] = (), outputs: Sequence[str] = ()
) -> Iterator[LineageRun | None]:
    """Emit START now; FAIL, with the error, when the block raises.

    Yields the run (None when lineage is off); code in the block adds datasets to it, also
    through `current_run()`, and ends it with `finish(run, exit_code)`.
    """
    client = _client() if lineage_configured() else None
    if client is None:
        yield None
        return
    run = LineageRun(client, job_name)
    for location in inputs:
        run.add_input(location)
    for location in outputs:
        run.add_output(location)
    token = _current.set(run)
    run.emit("START")
    try:
        yield run
    except BaseException as exc:
        run.emit("FAIL", exc)
        raise
    finally:
        _current.reset(token)


def finish(run: LineageRun | None, exit_code: int) -> None:
    """Emit COMPLETE for exit code 0, else FAIL naming the exit code."""
    if run is None:
        return
    if exit_code == 0:
        run.emit("COMPLETE")
    else:
        run.emit("FAIL", f"{run.job_name} exited with code {exit_code}")


# Constraint types whose metric is a column statistic OpenLineage names (on the whole table).
_COLUMN_STATISTICS = {"hasMin": "min", "hasMax": "max", "hasSum": "sum"}
_NULL_RATIO_TYPES = ("isComplete", "hasCompleteness")


def validation_facets(report: Mapping[str, Any]) -> dict[str, InputDatasetFacet]:
    """The input's data-quality facets from a validation's report.json document.

    `dataQualityAssertions`: one assertion per constraint (its type, whether it held, its
    column when it reads one, level, id, expectation and metric). `dataQualityMetrics`: the row
    count, and the column statistics the suite's unfiltered constraints measured (null counts
    from completeness, min, max, sum).
    """
    from openlineage.client.generated import (
        data_quality_assertions_dataset as assertions_facet,
    )
    from openlineage.client.generated import (
        data_quality_metrics_input_dataset as metrics_facet,
    )

    rows = int(report["counts"]["rows_in"])
    statistics: dict[str, dict[str, Any]] = {}
    assertions = []
    for constraint in report["constraints"]:
        columns, metric = constraint["columns"], constraint["metric"]
        assertions.append(
            assertions_facet.Assertion(
                assertion=constraint["type"],
                success=constraint["status"] == "success",
                column=columns[0] if len(columns) == 1 else None,
                severity=constraint["level"],
                name=constraint["constraint"],
                expected=constraint["expectation"],
                actual=None if metric is None else str(metric),
            )
        )
        if len(columns) == 1 and metric is not None and " where " not in constraint["constraint"]:
            statistics.setdefault(columns[0], {}).update(
                _column_statistic(constraint["type"], float(metric), rows)
            )
    return {
        "dataQualityMetrics": metrics_facet.DataQualityMetricsInputDatasetFacet(
            rowCount=rows,
            columnMetrics={
                column: metrics_facet.ColumnMetrics(**values)
                for column, values in statistics.items()
            },
        ),
        "dataQualityAssertions": assertions_facet.DataQualityAssertionsDatasetFacet(
            assertions=assertions
        ),
    }


def _column_statistic(kind: str, metric: float, rows: int) -> dict[str, Any]:
    """The ColumnMetrics field a constraint's metric gives, if any."""
    if kind in _NULL_RATIO_TYPES:
        return {"nullCount": round(rows * (1.0 - metric))}
    if kind in _COLUMN_STATISTICS:
        return {_COLUMN_STATISTICS[kind]: metric}
    return {}


def record_validation(input_location: str, report: Mapping[str, Any]) -> None:
    """Attach a validation's facets to its input, in the current run (if any).

    Its outputs become the valid and quarantine tables, in place of the output folder. Called
    after the outputs are committed: a facet that cannot be built is logged, never raised.
    """
    run = current_run()
    if run is None:
        return
    try:
        facets = validation_facets(report)
    except Exception as exc:  # lineage must not fail a committed validation
        log.warning("OpenLineage data-quality facets not built: %s", exc)
        facets = {}
    run.add_input(input_location, facets)
    valid = str(report["outputs"]["valid"])
    folder = valid.rstrip("/").rpartition("/")[0]
    run.outputs.pop(dataset_identity(folder, table_names=False), None)
    for table in ("valid", "quarantine"):
        run.add_output(str(report["outputs"][table]))
