"""OpenLineage events from real jobs: checked against OpenLineage's JSON schemas and report.json."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from spark_jobs.cli import main
from spark_jobs.services.lineage import dataset_identity, finish, job_run, lineage_configured

ITEMS = "checks/examples/items.yaml"
SPEC = Path(__file__).parent / "openlineage_spec"


def _schema_registry() -> Any:
    """OpenLineage's schemas by their $id, for jsonschema's `$ref` resolution."""
    try:
        from referencing import Registry, Resource
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("jsonschema is not installed (it comes with the dev extra)")
    documents = [json.loads(p.read_text()) for p in sorted(SPEC.rglob("*.json"))]
    return Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents)


def schema_problems(event: dict[str, Any]) -> list[str]:
    """Every way `event` breaks the RunEvent schema or the schema of one of its facets."""
    registry = _schema_registry()
    from jsonschema import Draft202012Validator

    def check(instance: Any, url: str) -> list[str]:
        validator = Draft202012Validator({"$ref": url}, registry=registry)
        return [f"{url}: {e.json_path}: {e.message}" for e in validator.iter_errors(instance)]

    problems = check(event, "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    facets = [event["run"]["facets"], event["job"]["facets"]]
    for dataset in event["inputs"] + event["outputs"]:
        facets += [dataset.get("facets", {}), dataset.get("inputFacets", {})]
        facets.append(dataset.get("outputFacets", {}))
    for group in facets:
        for facet in group.values():
            problems += check(facet, facet["_schemaURL"])
    return problems


@pytest.fixture
def events_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OpenLineage configured with the file transport, one JSON event per line."""
    log_file = tmp_path / "lineage" / "events.jsonl"
    log_file.parent.mkdir()
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {log_file}\n  append: true\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    return log_file


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def items_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("items") / "items.csv"
    path.write_text(Path("data/items.csv").read_text())
    return path


@pytest.mark.slow
def test_validate_with_failing_checks_emits_start_and_fail_with_quality_facets(
    spark: SparkSession, items_csv: Path, tmp_path: Path, events_file: Path
) -> None:
    output = tmp_path / "out"
    code = main(["validate", ITEMS, "--input", str(items_csv), "--output", str(output), "--quiet"])
    assert code == 1

    events = read_events(events_file)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    start, fail = events
    assert start["run"]["runId"] == fail["run"]["runId"]
    assert fail["job"] == start["job"] | {"name": "lakegate.validate"}
    assert "exited with code 1" in fail["run"]["facets"]["errorMessage"]["message"]
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [("file", str(items_csv))]

    (source,) = fail["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(items_csv))
    assert {(d["namespace"], d["name"]) for d in fail["outputs"]} == {
        ("file", str(output / "valid")),
        ("file", str(output / "quarantine")),
    }
    report = json.loads((output / "report.json").read_text())
    assertions = source["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [
        (a["name"], a["assertion"], a["success"], a.get("column"), a["severity"])
        for a in assertions
    ] == [
        (
            c["constraint"],
            c["type"],
            c["status"] == "success",
            c["columns"][0] if len(c["columns"]) == 1 else None,
            c["level"],
        )
        for c in report["constraints"]
    ]
    failed = {a["name"] for a in assertions if not a["success"]}
    assert failed == {"isComplete(productName)", "containsURL(description)"}
    metrics = source["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == report["counts"]["rows_in"] == 5
    assert metrics["columnMetrics"]["productName"]["nullCount"] == 1
    assert metrics["columnMetrics"]["id"]["nullCount"] == 0
    for event in events:  # last: without jsonschema (outside CI) this skips
        assert schema_problems(event) == []


@pytest.mark.slow
def test_passing_validate_completes_with_column_statistics(
    spark: SparkSession, items_csv: Path, tmp_path: Path, events_file: Path
) -> None:
    suite = tmp_path / "passing.yaml"
    suite.write_text(
        "suite: passing\nchecks:\n  - name: holds\n    level: error\n    constraints:\n"
        "      - isComplete: id\n"
        "      - hasMin: {column: numViews, min: 0}\n"
        "      - hasMax: {column: numViews, max: 100}\n"
        "      - hasCompleteness: {column: numViews, min: 0.5, where: 'id > 1'}\n"
    )
    output = tmp_path / "out"
    args = ["validate", str(suite), "--input", str(items_csv), "--output", str(output)]
    assert main([*args, "--quiet", "--no-history"]) == 0

    events = read_events(events_file)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    facets = events[1]["inputs"][0]["inputFacets"]
    assert all(a["success"] for a in facets["dataQualityAssertions"]["assertions"])
    # The filtered completeness measured a subset: it gives no null count for the column.
    assert facets["dataQualityMetrics"]["columnMetrics"] == {
        "id": {"nullCount": 0, "quantiles": {}},
        "numViews": {"min": 0.0, "max": 12.0, "quantiles": {}},
    }
    assert schema_problems(events[1]) == []


def test_a_job_that_raises_emits_fail_with_the_error(
    spark: SparkSession, tmp_path: Path, events_file: Path
) -> None:
    missing = tmp_path / "missing.csv"
    args = ["validate", ITEMS, "--input", str(missing), "--output", str(tmp_path / "o")]
    assert main([*args, "--quiet"]) == 2

    events = read_events(events_file)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert "does not exist" in error["message"]
    assert error["programmingLanguage"] == "python"
    assert "InputError" in error["stackTrace"]
    assert schema_problems(events[1]) == []


def test_lineage_is_off_without_openlineage_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    assert not lineage_configured()
    with job_run("lakegate.validate", ["data/items.csv"]) as run:
        assert run is None
    assert lineage_configured({"OPENLINEAGE_URL": "http://127.0.0.1:5000"})
    assert lineage_configured({"OPENLINEAGE__TRANSPORT__TYPE": "console"})
    assert not lineage_configured({"OPENLINEAGE_CONFIG": "x.yml", "OPENLINEAGE_DISABLED": "true"})


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3a://bucket/lake/items", ("s3://bucket", "lake/items")),
        ("s3://bucket/items.parquet", ("s3://bucket", "items.parquet")),
        ("gs://bucket/a/b", ("gs://bucket", "a/b")),
        ("hdfs://namenode:8020/data/items", ("hdfs://namenode:8020", "/data/items")),
        ("s3a://key:secret@bucket/x", ("s3://bucket", "x")),
        (
            "abfss://raw@account.dfs.core.windows.net/items",
            ("abfss://raw@account.dfs.core.windows.net", "/items"),
        ),
        ("file:///data/items.csv", ("file", "/data/items.csv")),
        ("/data/items.csv", ("file", "/data/items.csv")),
        ("sales.items", ("spark_catalog", "sales.items")),
    ],
)
def test_dataset_identity_follows_openlineage_naming(
    location: str, expected: tuple[str, str]
) -> None:
    assert dataset_identity(location) == expected


def test_relative_paths_are_named_absolute_and_outputs_are_never_tables() -> None:
    assert dataset_identity("data/items.csv") == ("file", str(Path("data/items.csv").absolute()))
    assert dataset_identity("out", table_names=False) == ("file", str(Path("out").absolute()))


def test_the_schema_check_catches_a_broken_event_and_a_broken_facet() -> None:
    facet_url = (
        "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json"
        "#/$defs/DataQualityAssertionsDatasetFacet"
    )
    event = {
        "eventType": "START",
        "eventTime": "2026-12-06T00:00:00+00:00",
        "producer": "https://example.invalid/p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "01939b2c-0000-7000-8000-000000000000", "facets": {}},
        "job": {"namespace": "lakegate", "name": "lakegate.validate", "facets": {}},
        "inputs": [
            {
                "namespace": "file",
                "name": "/x",
                "inputFacets": {
                    "dataQualityAssertions": {
                        "_producer": "https://example.invalid/p",
                        "_schemaURL": facet_url,
                        "assertions": [{"assertion": "isComplete", "success": True}],
                    }
                },
            }
        ],
        "outputs": [],
    }
    assert schema_problems(event) == []
    event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["success"] = "no"
    del event["job"]["name"]
    problems = schema_problems(event)
    assert any("'name' is a required property" in p for p in problems)
    assert any("'no' is not of type 'boolean'" in p for p in problems)


@pytest.fixture
def lineage_http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A loopback HTTP endpoint collecting what OpenLineage's HTTP transport posts."""
    received: list[dict[str, Any]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "event": json.loads(body)})
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in [n for n in os.environ if n.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
    yield received
    server.shutdown()
    server.server_close()


def test_openlineage_url_sends_the_run_over_http(lineage_http_server: list[dict[str, Any]]) -> None:
    with job_run("lakegate.predict", ["s3a://lake/features"], ["out/predictions"]) as run:
        assert run is not None
        finish(run, 0)
    assert [r["path"] for r in lineage_http_server] == ["/api/v1/lineage"] * 2
    start, complete = (r["event"] for r in lineage_http_server)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert complete["job"]["name"] == "lakegate.predict"
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [("s3://lake", "features")]
    assert complete["outputs"][0]["name"] == str(Path("out/predictions").absolute())


def test_an_unreachable_lineage_server_never_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    config = tmp_path / "openlineage.yml"
    config.write_text(
        f"transport:\n  type: http\n  url: http://127.0.0.1:{closed_port}\n"
        "  timeout: 1\n  retry: {total: 0}\n"
    )
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    with pytest.raises(ValueError, match="the job's own error"), job_run("lakegate.x") as run:
        assert run is not None
        raise ValueError("the job's own error")  # FAIL is attempted, the job's error stays
