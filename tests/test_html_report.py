"""report.html rendered by a real headless Chromium: what a person sees, and the page's text."""

from __future__ import annotations

import html as html_module
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.services.html_report import history_records, render_report_html

CHROMIUM = Path("/usr/bin/chromium")
SUITE_NAME = "items_report"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium (`make system-packages` installs it): missing, a failure in CI."""
    if not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (make system-packages installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def _headless(chromium: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-dev-shm-usage", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def validated(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Three validate runs of the Items suite with a Size anomaly check (5, 4 and 5 rows)."""
    root = tmp_path_factory.mktemp("report")
    suite = root / "items.yaml"
    suite.write_text(
        Path("checks/examples/items.yaml")
        .read_text()
        .replace("suite: items", f"suite: {SUITE_NAME}")
        + "anomalies:\n"
        + "  - Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8, maxRateIncrease: 1.5}\n"
    )
    lines = Path("data/items.csv").read_text().splitlines()
    inputs = [lines, lines[:-1], lines]
    for run, rows in enumerate(inputs):
        data = root / f"items{run}.csv"
        data.write_text("\n".join(rows) + "\n")
        code = main(["validate", str(suite), "--input", str(data), "--output",
                     str(root / "out"), "--quiet"])  # fmt: skip
        assert code == 1
    report = json.loads((root / "out" / "report.json").read_text())
    history = history_records(spark, settings.metrics_repository_path, SUITE_NAME)
    return {"root": root, "report": report, "history": history}


@pytest.mark.slow
def test_history_records_are_the_suites_runs_oldest_first(validated: dict[str, Any]) -> None:
    history = validated["history"]
    assert {row["suite"] for row in history} == {SUITE_NAME}
    assert len({row["run_id"] for row in history}) == 3
    sizes = [row["value"] for row in history if row["name"] == "Size"]
    assert sizes == [5.0, 4.0, 5.0]
    assert [r["dataset_date"] for r in history] == sorted(r["dataset_date"] for r in history)


@pytest.mark.slow
def test_validate_writes_report_html_beside_report_json_with_the_anomaly_judged(
    validated: dict[str, Any],
) -> None:
    report = validated["report"]
    page = validated["root"] / "out" / "report.html"
    assert report["outputs"]["html_report"] == str(page)
    (anomaly,) = report["anomalies"]
    assert (anomaly["status"], anomaly["metric"], anomaly["bounds"]) == (
        "success", 5.0, {"lower": pytest.approx(3.2), "upper": pytest.approx(6.0)},
    )  # fmt: skip
    assert [p["value"] for p in anomaly["history"]] == [5.0, 4.0]


@pytest.mark.slow
def test_report_renders_in_chromium_with_status_constraints_quarantine_and_charts(
    validated: dict[str, Any], chromium: Path
) -> None:
    page = validated["root"] / "out" / "report.html"
    html = page.read_text()

    # self-contained: nothing is fetched when the page is viewed
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?https?:|@import""", html
    )

    dom = _headless(chromium, "--dump-dom", page.as_uri()).stdout
    text = re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", dom)))
    assert f"Suite {SUITE_NAME} FAILURE" in text
    assert "Rows in Valid Quarantined 5 4 1" in text
    assert "FAIL unit testing my data error isComplete(productName) 0.8 all rows" in text
    assert "FAIL unit testing my data error containsURL(description) 0.4 >= 0.5" in text
    assert "PASS unit testing my data error hasSize() 5 == 5" in text
    assert "isComplete(productName) 1" in text  # quarantine count per reason
    assert "Sample rows that broke isComplete(productName)" in text
    assert " 3 null null low 5 " in text  # item 3, as it was read
    assert "PASS Size RelativeRateOfChange error 5 [3.2, 6] 2 run(s)" in text
    assert "3 run(s) of suite items_report" in text
    metrics = {(r["entity"], r["instance"], r["name"]) for r in validated["history"]}
    assert dom.count("<svg") == len(metrics) >= 6

    screenshot = validated["root"] / "report.png"
    _headless(chromium, f"--screenshot={screenshot}", "--window-size=1300,1900", page.as_uri())
    assert screenshot.stat().st_size > 20_000
    shutil.copy(screenshot, Path("/tmp/lakegate_report.png"))  # for a person to look at


@pytest.mark.slow
def test_report_without_history_or_quarantine_says_so(validated: dict[str, Any]) -> None:
    report = dict(validated["report"], quarantine_reasons={}, anomalies=[])
    html = render_report_html(report, [], {})
    assert "No row was quarantined." in html
    assert "No metrics history" in html and "<svg" not in html


@pytest.mark.parametrize("seconds_apart", [1, 50, 80, 2400, 86400])
def test_a_chart_of_runs_minutes_or_hours_apart_is_drawn_without_warnings(
    seconds_apart: int,
) -> None:
    import warnings
    from datetime import UTC, datetime, timedelta

    from spark_jobs.services.html_report import _chart_svg

    start = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    points = [(start + timedelta(seconds=seconds_apart * i), 0.5 + i / 10) for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svg = _chart_svg(points[:-1], points[-1], (0.4, 0.9), "t")
    assert svg.startswith("<svg") and "</svg>" in svg
