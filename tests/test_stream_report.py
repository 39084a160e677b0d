"""The typed stream reports: report.json's document and report.html come from the frozen value.

No JVM: the reports are built from constraint results, anomaly results and batch records as
the stream commands build them after a batch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from stream_helpers import ORDERS_SUITE, html_table, table_rows

from checks.anomalies import AnomalyResult, Bounds, HistoryPoint, worsened_status
from checks.deequ_run import ConstraintResult, VerificationOutcome
from checks.suite import Level
from checks.suite_formats import load_suite
from spark_jobs.services.stream_metrics import BatchRecord
from spark_jobs.services.stream_report import (
    BatchesSeen,
    LastBatch,
    PredictCounts,
    StreamCounts,
    StreamPredictReport,
    StreamReport,
    WindowVerdict,
    batch_records,
)
from spark_jobs.services.stream_windows import ClosedWindow, WindowOutcome

SUITE = (
    ORDERS_SUITE + "anomalies:\n  - Size: {strategy: RelativeRateOfChange, maxRateIncrease: 2.0}\n"
)

COMPLETE = ConstraintResult(
    check="rows",
    level=Level.ERROR,
    constraint="isComplete(id)",
    kind="isComplete",
    columns=["id"],
    expectation="no null",
    status="failure",
    metric=0.75,
    message="Value: 0.75 does not meet the constraint requirement!",
    deequ_constraint="CompletenessConstraint(Completeness(id,None,None))",
    blames_rows=True,
)
COMPLETE_JSON = {
    "check": "rows",
    "level": "error",
    "constraint": "isComplete(id)",
    "type": "isComplete",
    "columns": ["id"],
    "expectation": "no null",
    "status": "failure",
    "metric": 0.75,
    "message": "Value: 0.75 does not meet the constraint requirement!",
    "deequ_constraint": "CompletenessConstraint(Completeness(id,None,None))",
    "row_level": True,
}
RECORDS = (
    BatchRecord(0, 3, 3, 0, 1.5, "success", "2026-12-07T04:00:00+00:00", state_rows=3),
    BatchRecord(1, 4, 3, 1, 2.25, "failure", "2026-12-07T04:00:05+00:00", state_rows=6),
)


def stream_report(
    anomalies: tuple[AnomalyResult, ...] = (), windows: dict[str, Any] | None = None
) -> StreamReport:
    last = LastBatch(
        1,
        2.25,
        WindowVerdict("failure", StreamCounts(4, 3, 1), {"isComplete(id)": 1}, (COMPLETE,)),
        anomalies,
    )
    total = WindowVerdict(
        "failure", StreamCounts.of({"rows_in": 7, "rows_valid": 6, "rows_quarantined": 1}),
        {"isComplete(id)": 1}, (COMPLETE,),
    )  # fmt: skip
    return StreamReport(
        suite="orders",
        suite_file="/suites/orders.yaml",
        source="parquet:/landing",
        output="/out",
        checkpoint="/out-checkpoint",
        query_id="q-1",
        updated_at="2026-12-07T04:00:05+00:00",
        total=total,
        batches=BatchesSeen(2, 1),
        key_state={"isUnique(id)": 6},
        last_batch=last,
        batch_history=RECORDS,
        windows=windows,
    )


def size_anomaly(tmp_path: Path, status: str) -> AnomalyResult:
    path = tmp_path / "orders.yaml"
    path.write_text(SUITE)
    (entry,) = load_suite(path).anomalies
    history = (HistoryPoint(1, 3.0), HistoryPoint(2, 3.0))
    message = "Size = 30 is an anomaly" if status == "failure" else "Size = 3 is within"
    return AnomalyResult(entry, status, 30.0, history, Bounds(None, 6.0), message)


def test_stream_validate_report_json_keeps_every_key_and_value_of_the_dict_it_replaced() -> None:
    document = stream_report().as_dict()
    assert document == {
        "suite": "orders",
        "suite_file": "/suites/orders.yaml",
        "source": "parquet:/landing",
        "output": "/out",
        "checkpoint": "/out-checkpoint",
        "query_id": "q-1",
        "updated_at": "2026-12-07T04:00:05+00:00",
        "status": "failure",
        "counts": {"rows_in": 7, "rows_valid": 6, "rows_quarantined": 1},
        "quarantine_reasons": {"isComplete(id)": 1},
        "constraints": [COMPLETE_JSON],
        "batches": {"count": 2, "last_batch_id": 1},
        "key_state": {"isUnique(id)": 6},
        "last_batch": {
            "batch_id": 1,
            "status": "failure",
            "duration_seconds": 2.25,
            "counts": {"rows_in": 4, "rows_valid": 3, "rows_quarantined": 1},
            "quarantine_reasons": {"isComplete(id)": 1},
            "constraints": [COMPLETE_JSON],
        },
        "batch_history": [
            {"batch_id": 0, "rows_in": 3, "rows_valid": 3, "rows_quarantined": 0,
             "duration_seconds": 1.5, "status": "success",
             "finished_at": "2026-12-07T04:00:00+00:00", "model_version": None, "state_rows": 3},
            {"batch_id": 1, "rows_in": 4, "rows_valid": 3, "rows_quarantined": 1,
             "duration_seconds": 2.25, "status": "failure",
             "finished_at": "2026-12-07T04:00:05+00:00", "model_version": None, "state_rows": 6},
        ],
    }  # fmt: skip
    assert list(document) == [
        "suite", "suite_file", "source", "output", "checkpoint", "query_id", "updated_at",
        "status", "counts", "quarantine_reasons", "constraints", "batches", "key_state",
        "last_batch", "batch_history",
    ]  # fmt: skip
    assert json.loads(json.dumps(document)) == document  # JSON-ready as it stands


def test_the_stream_report_is_frozen() -> None:
    report = stream_report()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.suite = "other"  # type: ignore[misc]


def test_anomalies_appear_in_the_last_batch_only_when_the_suite_has_them(tmp_path: Path) -> None:
    anomaly = size_anomaly(tmp_path, "failure")
    document = stream_report((anomaly,)).as_dict()
    assert document["last_batch"]["anomalies"] == [anomaly.as_dict()]
    assert document["last_batch"]["anomalies"][0]["history"] == [
        {"time": 1, "value": 3.0},
        {"time": 2, "value": 3.0},
    ]
    assert "anomalies" not in document  # the total window has none
    assert "anomalies" not in stream_report().as_dict()["last_batch"]


def test_an_error_level_anomaly_fails_the_batch_a_passing_one_does_not(tmp_path: Path) -> None:
    failed, passed = size_anomaly(tmp_path, "failure"), size_anomaly(tmp_path, "success")
    assert worsened_status("success", [failed]) == "failure"
    assert worsened_status("success", [passed]) == "success"
    warning = dataclasses.replace(
        failed, entry=dataclasses.replace(failed.entry, level=Level.WARNING)
    )
    assert worsened_status("success", [warning]) == "warning"
    assert worsened_status("failure", [warning]) == "failure"
    clean = WindowVerdict("success", StreamCounts(3, 3, 0), {}, ())
    assert LastBatch(0, 1.0, clean, (failed,)).failed()
    assert not LastBatch(0, 1.0, clean, (passed, warning)).failed()
    assert not LastBatch(0, 1.0, clean).failed()


def test_report_html_renders_from_the_typed_report_with_the_batches_and_anomalies(
    tmp_path: Path,
) -> None:
    html = stream_report((size_anomaly(tmp_path, "failure"),)).html()
    rows = table_rows(html, "batches")
    assert len(rows) == 2
    assert rows[1][:5] == ["1", "failure", "4", "3", "1"]
    anomalies = html_table(html, "anomalies")
    assert "Size = 30 is an anomaly" in anomalies and "RelativeRateOfChange" in anomalies
    assert "parquet:/landing" in html and "3.8 s" in html  # the batches' time, summed
    assert '<table id="anomalies">' not in stream_report().html()


def test_stream_predict_report_json_and_html_from_the_typed_report() -> None:
    record = BatchRecord(4, 10, 8, 2, 1.0, finished_at="2026-12-07T04:01:00+00:00",
                         model_version="3")  # fmt: skip
    counts = PredictCounts.of({"rows_in": 20, "rows_scored": 17, "rows_gated": 3})
    report = StreamPredictReport(
        model_uri="models:/users@champion",
        model_name="users",
        model_version="3",
        scoring_path="compiled",
        source="parquet:/landing",
        output="/out/predictions",
        quarantine="/out/quarantine",
        checkpoint="/ck",
        query_id="q-2",
        updated_at=record.finished_at,
        counts=counts.plus(record),
        batches=BatchesSeen(5, 4),
        last_batch=record,
        batch_history=(record,),
    )
    document = report.as_dict()
    assert document == {
        "title": "Stream predict",
        "model_uri": "models:/users@champion",
        "model_name": "users",
        "model_version": "3",
        "scoring_path": "compiled",
        "source": "parquet:/landing",
        "output": "/out/predictions",
        "quarantine": "/out/quarantine",
        "checkpoint": "/ck",
        "query_id": "q-2",
        "updated_at": "2026-12-07T04:01:00+00:00",
        "status": "success",
        "counts": {"rows_in": 30, "rows_scored": 25, "rows_gated": 5},
        "batches": {"count": 5, "last_batch_id": 4},
        "last_batch": record.as_dict(),
        "batch_history": [record.as_dict()],
    }
    assert counts.plus(record).plus(record, -1) == counts  # a replayed batch is taken back
    html = report.html()
    assert "Stream predict" in html and "models:/users@champion" in html
    counts_row = html[html.index('<td class="num">') :].split("</tr>")[0]
    assert [c.split(">")[-1] for c in counts_row.split("</td>")[:3]] == ["30", "25", "5"]


def test_an_earlier_reports_batch_history_is_read_back_as_records() -> None:
    written = [r.as_dict() for r in RECORDS]
    older = {"batch_id": 7, "rows_in": 1, "rows_valid": 1, "rows_quarantined": 0,
             "duration_seconds": 0.5, "dropped_field": 1}  # fmt: skip
    assert batch_records(written) == RECORDS
    assert batch_records([*written, older, {"batch_id": 8}, "junk"]) == (
        *RECORDS,
        BatchRecord(7, 1, 1, 0, 0.5),
    )
    assert batch_records(None) == ()


HOUR = 3_600_000_000  # microseconds
PASSED = dataclasses.replace(COMPLETE, status="success", metric=1.0, message=None)
# Two windows closed (00:00 failed its error-level check, 01:00 passed), 02:00 still open.
CLOSED = (
    ClosedWindow(1_767_225_600_000_000, 1_767_225_600_000_000 + HOUR, 4, 2, 2,
                 VerificationOutcome([COMPLETE])),
    ClosedWindow(1_767_225_600_000_000 + HOUR, 1_767_225_600_000_000 + 2 * HOUR, 3, 1, 3,
                 VerificationOutcome([PASSED])),
)  # fmt: skip
WINDOWS = {
    "column": "event_time",
    "size_seconds": 3600.0,
    "watermark_delay_seconds": 600.0,
    "watermark": "2026-01-01T02:00:00+00:00",
    "latest_event": "2026-01-01T02:10:00+00:00",
    "open": [
        {"window_start": "2026-01-01T02:00:00+00:00", "window_end": "2026-01-01T03:00:00+00:00",
         "rows": 5},
    ],
    "closed_count": 2,
    "closed": [w.as_dict() for w in CLOSED],
    "late_rows": 1,
    "null_rows": 2,
    "last_batch": {"late_rows": 0, "null_rows": 1},
}  # fmt: skip


def test_report_html_shows_the_closed_windows_with_their_status_newest_first() -> None:
    html = stream_report(windows=WINDOWS).html()
    closed = table_rows(html, "closed-windows")
    assert [row[:6] for row in closed] == [
        ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00", "SUCCESS", "3", "1", "3"],
        ["2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00", "FAILURE", "4", "2", "2"],
    ]
    assert closed[0][6] == "-"  # nothing failed in the 01:00 window
    assert "isComplete(id)" in closed[1][6] and "does not meet" in closed[1][6]
    assert table_rows(html, "open-windows") == [
        ["2026-01-01T02:00:00+00:00", "2026-01-01T03:00:00+00:00", "5"]
    ]
    meta = html[html.index("<h2>Event-time windows</h2>") : html.index('<table id="closed')]
    assert "windows of 1 h on <code>event_time</code>" in meta and "less 10 min" in meta
    assert "2 closed in all" in meta and "1 late row(s)" in meta and "2 row(s) without" in meta
    assert "Event-time windows" not in stream_report().html()  # a stream without windows


def test_report_html_before_any_window_closed_says_so() -> None:
    waiting = WINDOWS | {"closed": [], "closed_count": 0}
    html = stream_report(windows=waiting).html()
    assert "No window has closed yet." in html and '<table id="closed-windows">' not in html
    assert table_rows(html, "open-windows")[0][2] == "5"


def test_the_progress_line_names_the_windows_a_batch_closed() -> None:
    assert WindowOutcome([], WINDOWS).progress() == ""
    assert WindowOutcome(list(CLOSED[:1]), WINDOWS).progress() == (
        "; window closed: 2026-01-01T00:00:00+00:00 failure"
    )
    many = WindowOutcome([*CLOSED, *CLOSED], WINDOWS).progress()
    assert many == (
        "; windows closed: 2026-01-01T00:00:00+00:00 failure, 2026-01-01T01:00:00+00:00 "
        "success, 2026-01-01T00:00:00+00:00 failure, 1 more"
    )
