"""`stream validate` runs a suite's `anomalies:` on every batch against the earlier batches.

Two streams of the same suite over tiny parquet files (one file per batch), with the metrics
history kept: one whose fourth batch has ten times the rows of the first three, run with
`--on-failure stop` and a fifth file waiting; then a steady one, restarted before its fourth
batch. The history a batch is judged against is the suite's `window: batch` entries of its own
query, read from the repository at a run's first batch and extended in memory after that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from stream_helpers import delta, html_table, land, report

from lakegate_config.settings import Settings
from spark_jobs.stream import StreamResult, StreamValidateSpec, render, run

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

SUITE = """\
suite: stream-anomalies
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
anomalies:
  - Size: {strategy: RelativeRateOfChange, maxRateIncrease: 3.0}
  - Size: {strategy: OnlineNormal, upperDeviationFactor: 1, ignoreStartPercentage: 0,
           level: warning}
"""


def rows(start: int, n: int) -> list[tuple[int | None, float | None]]:
    return [(i, float(i)) for i in range(start, start + n)]


JUMP = [rows(0, 3), rows(3, 3), rows(6, 3), rows(9, 30), rows(39, 3)]
STEADY = [rows(100, 3), rows(103, 3), rows(106, 3), rows(109, 3)]


@dataclass
class Streams:
    jump: StreamResult
    jump_output: Path
    steady: StreamResult
    steady_output: Path
    jump_spec: StreamValidateSpec


def run_stream(
    spark: SparkSession,
    settings: Settings,
    root: Path,
    batches: list[list[tuple[int | None, float | None]]],
    on_failure: str = "continue",
    first: int = 0,
) -> tuple[StreamResult, Path, StreamValidateSpec]:
    """The stream over `root/landing` once `batches` landed there (files numbered from `first`)."""
    suite, source = root / "suite.yaml", root / "landing"
    suite.write_text(SUITE)
    for i, batch in enumerate(batches, start=first):
        land(source, i, batch)
    output = root / "out"
    spec = StreamValidateSpec.model_validate(
        {
            "suite": str(suite),
            "source": f"parquet:{source}",
            "output": str(output),
            "checkpoint": str(root / "checkpoint"),
            "options": ["maxFilesPerTrigger=1"],
            "quiet": True,
            "on_failure": on_failure,
        }
    )
    return run(spark, settings, spec), output, spec


@pytest.fixture(scope="module")
def streams(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Streams]:
    jump, jump_out, spec = run_stream(
        spark, settings, tmp_path_factory.mktemp("jump"), JUMP, "stop"
    )
    root = tmp_path_factory.mktemp("steady")
    first, steady_out, _ = run_stream(spark, settings, root, STEADY[:3])
    assert int(first.exit_code) == 0
    # A restart: its first batch reads the query's history from the metrics repository.
    steady, _, _ = run_stream(spark, settings, root, STEADY[3:], first=3)
    yield Streams(jump, jump_out, steady, steady_out, spec)


def test_a_batch_far_larger_than_the_earlier_ones_is_an_anomaly_that_fails_and_stops(
    spark: SparkSession, streams: Streams
) -> None:
    assert int(streams.jump.exit_code) == 1
    final = report(streams.jump_output)
    assert final["batches"] == {"count": 4, "last_batch_id": 3}  # stopped: batch 4 waits
    last = final["last_batch"]
    assert last["batch_id"] == 3 and last["status"] == "failure"
    rate, normal = last["anomalies"]
    assert (rate["strategy"], rate["status"], rate["level"], rate["metric"]) == (
        "RelativeRateOfChange", "failure", "error", 30.0,
    )  # fmt: skip
    assert rate["bounds"] == {"lower": None, "upper": 9.0}  # 3 x the batch before
    assert (normal["strategy"], normal["status"], normal["level"]) == (
        "OnlineNormal", "failure", "warning",
    )  # fmt: skip
    # The history: the three earlier batches' own sizes (no running total's, no other query's).
    assert [p["value"] for p in rate["history"]] == [3.0, 3.0, 3.0]
    statuses = [b["status"] for b in final["batch_history"]]
    assert statuses == ["success", "success", "success", "failure"]
    assert final["status"] == "success"  # the total window's constraints all pass
    # The anomaly blames no row: the batch's rows are written valid.
    expected = [(i, float(i)) for i in range(0, 39)]
    assertDataFrameEqual(delta(spark, streams.jump_output / "valid").select("id", "amount"),
                         spark.createDataFrame(expected, "id long, amount double"))  # fmt: skip


def test_a_steady_stream_passes_every_anomaly_check_against_its_own_batches(
    streams: Streams,
) -> None:
    assert int(streams.steady.exit_code) == 0 and streams.steady.batches == 1
    final = report(streams.steady_output)
    assert final["batches"] == {"count": 4, "last_batch_id": 3}
    rate, normal = final["last_batch"]["anomalies"]
    assert (rate["status"], normal["status"]) == ("success", "success")
    # Read back from the repository after the restart: only this query's `window: batch`
    # entries; the jump stream's sizes (3, 3, 3, 30, same suite) and the running totals (6, 9)
    # are not in it.
    assert [p["value"] for p in rate["history"]] == [3.0, 3.0, 3.0]
    assert [b["status"] for b in final["batch_history"]] == ["success"] * 4


def test_report_json_and_the_summary_come_from_the_typed_report(
    streams: Streams, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = streams.jump.report
    assert typed is not None
    written = report(streams.jump_output)
    assert json.loads(json.dumps(typed.as_dict(), default=str)) == written
    html, rendered = (streams.jump_output / "report.html").read_text(), typed.html()
    for table in ("batches", "anomalies", "constraints"):
        assert html_table(html, table) == html_table(rendered, table)
    spec = streams.jump_spec.model_copy(update={"quiet": False})
    assert render(streams.jump, spec) == 1
    printed = capsys.readouterr().out
    assert "FAIL  anomaly: Size = 30 is an anomaly (RelativeRateOfChange" in printed
    assert "Batches: 4 this run, 4 in all (last batch id 3)" in printed
    assert "Stopped: an error-level check failed in batch 3" in printed
