"""A stream's Prometheus metrics (`stream_metrics`) and report.html's batch history, without Spark.

The endpoint is started and scraped over HTTP on 127.0.0.1; the scrape during a real stream is
in tests/test_stream_predict.py.
"""

from __future__ import annotations

import socket
import urllib.error

import pytest
from stream_helpers import html_table, scrape, table_rows

from lakegate_errors import EnvironmentProblem
from spark_jobs.services.html_report import render_stream_report_html
from spark_jobs.services.stream_metrics import BatchRecord, StreamMetrics, with_batch

QUERY = "lakegate_orders"

# Trimmed StreamingQueryProgress JSON as Spark 3.5 reports it for a Kafka and a Delta source.
KAFKA_PROGRESS = {
    "name": QUERY,
    "batchId": 4,
    "sources": [
        {
            "description": "KafkaV2[Subscribe[orders]]",
            "numInputRows": 10000,
            "metrics": {
                "avgOffsetsBehindLatest": "1200.0",
                "maxOffsetsBehindLatest": "2500",
                "minOffsetsBehindLatest": "0",
            },
        }
    ],
    "stateOperators": [],
}
DELTA_PROGRESS = {
    "name": QUERY,
    "sources": [
        {
            "description": "DeltaSource[file:/data/orders]",
            "metrics": {"numBytesOutstanding": "1024", "numFilesOutstanding": "3"},
        }
    ],
    "stateOperators": [{"numRowsTotal": 7}, {"numRowsTotal": 5}],
}


def value(text: str, name: str) -> float | None:
    prefix = f'{name}{{query="{QUERY}"}} '
    found = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return found[0] if found else None


def record(batch_id: int, rows_in: int = 100, quarantined: int = 3) -> BatchRecord:
    return BatchRecord(batch_id, rows_in, rows_in - quarantined, quarantined, 2.0)


def test_scraped_metrics_sum_the_batches_and_the_endpoint_stops_with_the_block() -> None:
    metrics = StreamMetrics(QUERY)
    with metrics.serve(0) as port:
        assert port is not None
        metrics.observe_batch(record(0))
        metrics.observe_batch(BatchRecord(1, 50, 50, 0, 0.5, state_rows=42))
        text = scrape(port)
    assert value(text, "lakegate_stream_batches_total") == 2
    assert value(text, "lakegate_stream_rows_total") == 150
    assert value(text, "lakegate_stream_rows_valid_total") == 147
    assert value(text, "lakegate_stream_rows_quarantined_total") == 3
    assert value(text, "lakegate_stream_batch_duration_seconds_count") == 2
    assert value(text, "lakegate_stream_batch_duration_seconds_sum") == 2.5
    assert value(text, "lakegate_stream_rows_per_second") == 100  # the last batch: 50 in 0.5 s
    assert value(text, "lakegate_stream_last_batch_id") == 1
    assert value(text, "lakegate_stream_state_rows") == 42
    assert value(text, "lakegate_stream_input_rows_behind") is None  # nothing reported it
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_the_endpoint_listens_on_loopback_only() -> None:
    with StreamMetrics(QUERY).serve(0) as port, socket.socket() as probe:
        assert port is not None
        probe.bind(("127.0.0.1", 0))
        addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        outside = [a for a in addresses if not a.startswith(("127.", "::1"))]
        for address in outside:
            with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as client:
                client.settimeout(2)
                assert client.connect_ex((address, port)) != 0


def test_a_taken_port_is_an_environment_problem_naming_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = pytest.raises(EnvironmentProblem, match=f"--metrics-port {port}")
        with refused, StreamMetrics(QUERY).serve(port):
            pass


def test_kafka_offsets_behind_and_delta_files_outstanding_become_backlog_gauges() -> None:
    metrics = StreamMetrics(QUERY)
    metrics.observe_progress(KAFKA_PROGRESS)
    text = metrics.exposition().decode()
    assert value(text, "lakegate_stream_input_rows_behind") == 2500
    assert value(text, "lakegate_stream_input_files_behind") is None
    metrics.observe_progress(DELTA_PROGRESS)
    text = metrics.exposition().decode()
    assert value(text, "lakegate_stream_input_files_behind") == 3
    assert value(text, "lakegate_stream_spark_state_rows") == 12


def test_a_replayed_batch_replaces_its_history_entry_and_the_history_is_bounded() -> None:
    history: tuple[BatchRecord, ...] = ()
    for batch_id in range(5):
        history = with_batch(history, record(batch_id), limit=3)
    assert [b.batch_id for b in history] == [2, 3, 4]
    history = with_batch(history, record(4, rows_in=7, quarantined=0), limit=3)
    assert [(b.batch_id, b.rows_in) for b in history] == [(2, 100), (3, 100), (4, 7)]


def test_report_html_of_a_stream_lists_each_batch() -> None:
    batches = [record(0).as_dict(), record(1, rows_in=40, quarantined=0).as_dict()]
    report = {
        "suite": "orders",
        "source": "parquet:/landing",
        "query_id": "q-1",
        "updated_at": "2026-12-06T20:00:00+00:00",
        "status": "success",
        "counts": {"rows_in": 140, "rows_valid": 137, "rows_quarantined": 3},
        "quarantine_reasons": {"isComplete(id)": 3},
        "constraints": [],
        "batches": {"count": 2, "last_batch_id": 1},
        "batch_history": batches,
    }
    html = render_stream_report_html(report)
    rows = table_rows(html, "batches")
    assert len(rows) == 2
    assert rows[0][:5] == ["0", "success", "100", "97", "3"]
    # stream validate's batches name no model version
    assert "Model version" not in html_table(html, "batches")
    assert "parquet:/landing" in html and "4.0 s" in html  # the batches' time, summed
