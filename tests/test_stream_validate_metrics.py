"""`lakegate stream validate --metrics-port`: the metrics, the batch history, report.html.

A stream over three small parquet files (one per batch) runs in-process on an interval trigger
with `--metrics-port`; the endpoint is scraped once the third batch is committed, then the query
is stopped. A restart after a simulated crash replays the last batch.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from model_fixtures import train, users_frame
from pyspark.sql import SparkSession
from stream_helpers import (
    ORDERS_SUITE,
    WAIT_SECONDS,
    free_port,
    html_table,
    land,
    report,
    sample,
    scrape,
    stream,
    wait_for,
)

from lakegate_config.settings import Settings
from spark_jobs.cli import main

SUITE = ORDERS_SUITE
QUERY = "lakegate_orders"
# Batch 0: one negative amount; batch 1: a null id; batch 2: id 1 again (a repeat of batch 0).
BATCHES = [
    [(1, 10.0), (2, -5.0), (3, 20.0)],
    [(4, 30.0), (None, 5.0)],
    [(5, 1.0), (1, 2.0), (6, 3.0), (7, 4.0)],
]


def stream_validate(suite: Path, source: Path, output: Path, checkpoint: Path, *extra: str) -> int:
    """The stream over the parquet folder `source`, without metrics history."""
    return stream(suite, f"parquet:{source}", output, checkpoint, "--no-history", *extra)


@dataclass
class Runs:
    output: Path
    codes: tuple[int, int]
    first_report: dict
    scraped: str
    port: int


@pytest.fixture(scope="module")
def runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("stream-metrics")
    suite = root / "orders.yaml"
    suite.write_text(SUITE)
    source, output, checkpoint = root / "landing", root / "out", root / "checkpoint"
    for i, rows in enumerate(BATCHES):
        land(source, i, rows)
    port = free_port()
    scraped: list[str] = []
    ended = threading.Event()

    def scrape_then_stop() -> None:
        def committed() -> bool:
            queries = [q for q in spark.streams.active if q.name == QUERY]
            return bool(queries) and int((queries[0].lastProgress or {}).get("batchId", -1)) >= 2

        wait_for(committed, "batch 2 committed", ended)
        scraped.append(scrape(port))  # while the query runs
        for query in spark.streams.active:
            if query.name == QUERY:
                query.stop()

    stopper = threading.Thread(target=scrape_then_stop, daemon=True)
    stopper.start()
    try:
        first = stream_validate(suite, source, output, checkpoint, "--trigger", "1s",
                       "--metrics-port", str(port))  # fmt: skip
    finally:
        ended.set()
    stopper.join(timeout=WAIT_SECONDS)
    first_report = report(output)
    # The crash: batch 2's outputs committed, Spark's checkpoint did not record the batch.
    (checkpoint / "commits" / "2").unlink()
    (checkpoint / "commits" / ".2.crc").unlink(missing_ok=True)
    shutil.rmtree(checkpoint / "_lakegate" / "state" / "2")
    second = stream_validate(suite, source, output, checkpoint)
    yield Runs(output, (first, second), first_report, scraped[0] if scraped else "", port)


@pytest.mark.slow
def test_metrics_endpoint_serves_each_batchs_counts_and_stops_with_the_query(runs: Runs) -> None:
    text = runs.scraped
    assert sample(text, "lakegate_stream_batches_total", QUERY) == 3.0
    assert sample(text, "lakegate_stream_rows_total", QUERY) == 9.0
    assert sample(text, "lakegate_stream_rows_valid_total", QUERY) == 6.0
    assert sample(text, "lakegate_stream_rows_quarantined_total", QUERY) == 3.0
    assert sample(text, "lakegate_stream_batch_duration_seconds_count", QUERY) == 3.0
    assert sample(text, "lakegate_stream_last_batch_id", QUERY) == 2.0
    assert sample(text, "lakegate_stream_state_rows", QUERY) == 7.0  # ids 1 to 7, each held once
    assert sample(text, "lakegate_stream_rows_per_second", QUERY) > 0
    with pytest.raises(urllib.error.URLError):
        scrape(runs.port)


@pytest.mark.slow
def test_report_keeps_one_history_entry_per_batch(runs: Runs) -> None:
    history = runs.first_report["batch_history"]
    assert [
        (b["batch_id"], b["rows_in"], b["rows_valid"], b["rows_quarantined"], b["status"])
        for b in history
    ] == [(0, 3, 2, 1, "failure"), (1, 2, 1, 1, "failure"), (2, 4, 3, 1, "success")]
    assert all(b["duration_seconds"] > 0 and b["finished_at"] for b in history)
    assert [b["state_rows"] for b in history] == [3, 4, 7]  # the keys held after each batch
    assert sum(runs.first_report["key_state"].values()) == 7


@pytest.mark.slow
def test_a_replayed_batch_replaces_its_history_entry(runs: Runs) -> None:
    assert runs.codes == (1, 1)  # error-level rules quarantined rows
    final = report(runs.output)
    assert [b["batch_id"] for b in final["batch_history"]] == [0, 1, 2]
    assert final["batch_history"][:2] == runs.first_report["batch_history"][:2]
    replayed, first = final["batch_history"][2], runs.first_report["batch_history"][2]
    assert replayed["rows_in"] == 4
    assert replayed["finished_at"] > first["finished_at"]  # the replay's entry, not the first's


@pytest.mark.slow
def test_report_html_lists_every_batch(runs: Runs) -> None:
    html = (runs.output / "report.html").read_text()
    table = html_table(html, "batches")
    assert table.count("<tr>") == 4  # the header and three batches


@pytest.mark.parametrize("command", ["validate", "predict"])
def test_an_option_without_a_value_exits_2_naming_it_in_both_stream_commands(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = [str(tmp_path / "suite.yaml")] if command == "validate" else ["--model", "models:/m/1"]
    if command == "validate":
        (tmp_path / "suite.yaml").write_text(SUITE)
    code = main(
        [
            "stream", command, *first, "--source", f"parquet:{tmp_path}",
            "--output", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "cp"),
            "--option", "maxFilesPerTrigger",
        ]
    )  # fmt: skip
    assert code == 2
    assert "--option 'maxFilesPerTrigger': give KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sigterm_stops_stream_predict_after_the_batch_in_flight(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    train(settings, "stream_sigterm")
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    source.mkdir()
    users_frame(rows=12, seed=5)[["user_id", "feature_1", "feature_2", "feature_3"]].to_parquet(
        source / "part-000.parquet", index=False
    )

    def terminate_after_first_report() -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (output / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_report, daemon=True)
    killer.start()
    code = main(
        [
            "stream", "predict", "--model", "models:/stream_sigterm/1",
            "--source", f"parquet:{source}", "--output", str(output),
            "--checkpoint", str(checkpoint), "--trigger", "1s", "--quiet",
        ]
    )  # fmt: skip
    killer.join()
    assert code == 0
    assert report(output)["batches"] == {"count": 1, "last_batch_id": 0}
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]
