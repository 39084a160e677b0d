"""One history file per run: saves never rewrite another run's file; readers see them all."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from checks.anomalies import AnomalyCheck, load_metric_history, parse_anomalies
from checks.deequ_run import history_files, metrics_repository, result_key, runs_folder, verify
from checks.suite import Suite
from checks.suite_formats import parse_suite
from lakegate_config.settings import Settings
from lakegate_config.yaml_document import YamlDocument, load_yaml_document
from spark_jobs.services.html_report import history_records

SUITE = """\
suite: per_run
checks:
  - name: basics
    constraints:
      - hasSize: {min: 0}
anomalies:
  - Size: {strategy: SimpleThresholds, lowerBound: 0, upperBound: 100}
"""


def frame(spark: SparkSession, rows: int) -> DataFrame:
    return spark.createDataFrame([(i,) for i in range(rows)], "id int")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Suite, AnomalyCheck]:
    path = tmp_path_factory.mktemp("per_run") / "suite.yaml"
    path.write_text(SUITE)
    document = load_yaml_document(path)
    (entry,) = parse_anomalies(document)
    checks_only = {k: v for k, v in document.data.items() if k != "anomalies"}
    return parse_suite(YamlDocument(path, checks_only, document.lines)), entry


def save(spark: SparkSession, suite: Suite, repository: Path, rows: int, run: str) -> None:
    tags = {"suite": "per_run", "run_id": run}
    verify(spark, frame(spark, rows), suite, repository=repository, tags=tags)


def sizes(spark: SparkSession, repository: Path, entry: AnomalyCheck) -> dict[str, float]:
    """Run id -> Size, as the anomaly history and the report history both read them."""
    points = load_metric_history(spark, repository, "per_run", entry)
    records = history_records(spark, repository, "per_run")
    from_report = {r["run_id"]: r["value"] for r in records if r["name"] == "Size"}
    assert from_report == {p.run_id: p.value for p in points}
    return from_report


def test_two_saves_write_two_run_files_and_both_are_read_back(
    spark: SparkSession, suite: tuple[Suite, AnomalyCheck], tmp_path: Path
) -> None:
    repository = tmp_path / "metrics.json"
    save(spark, suite[0], repository, 3, "r1")
    save(spark, suite[0], repository, 4, "r2")
    assert not repository.exists()
    assert len(list(runs_folder(repository).glob("*.json"))) == 2
    assert sizes(spark, repository, suite[1]) == {"r1": 3.0, "r2": 4.0}


def test_a_legacy_single_metrics_file_is_still_read(
    spark: SparkSession, suite: tuple[Suite, AnomalyCheck], tmp_path: Path
) -> None:
    from pydeequ.analyzers import AnalysisRunner, Size
    from pydeequ.repository import FileSystemMetricsRepository

    repository = tmp_path / "metrics.json"  # written by Deequ itself, as before per-run files
    key = result_key(spark, {"suite": "per_run", "run_id": "old"}, when=1_000)
    legacy = FileSystemMetricsRepository(spark, str(repository))
    AnalysisRunner(spark).onData(frame(spark, 2)).addAnalyzer(Size()).useRepository(
        legacy
    ).saveOrAppendResult(key).run()
    save(spark, suite[0], repository, 5, "new")
    assert history_files(repository)[0] == repository
    assert sizes(spark, repository, suite[1]) == {"old": 2.0, "new": 5.0}


def test_concurrent_saves_lose_neither_run(
    spark: SparkSession, suite: tuple[Suite, AnomalyCheck], tmp_path: Path
) -> None:
    repository = tmp_path / "metrics.json"
    errors: list[BaseException] = []

    def run(rows: int) -> None:
        try:
            save(spark, suite[0], repository, rows, f"t{rows}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(rows,)) for rows in (6, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sizes(spark, repository, suite[1]) == {"t6": 6.0, "t7": 7.0}


def test_saves_under_one_key_are_merged_as_deequs_append_would(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pydeequ.analyzers import AnalysisRunner, Completeness, Size

    repository = tmp_path / "metrics.json"
    key = result_key(spark, {"suite": "per_run", "run_id": "one"}, when=2_000)
    for analyzer in (Size(), Completeness("id")):
        AnalysisRunner(spark).onData(frame(spark, 3)).addAnalyzer(analyzer).useRepository(
            metrics_repository(spark, repository)
        ).saveOrAppendResult(key).run()
    records = history_records(spark, repository, "per_run")
    assert len(history_files(repository)) == 2
    assert sorted((r["name"], r["value"]) for r in records) == [
        ("Completeness", 1.0),
        ("Size", 3.0),
    ]


def test_lakegate_history_shows_the_runs_saved_in_run_files(
    spark: SparkSession,
    settings: Settings,
    suite: tuple[Suite, AnomalyCheck],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from spark_jobs.cli import main

    save(spark, suite[0], settings.metrics_repository_path, 8, "cli")
    assert main(["history", "--suite", "per_run"]) == 0
    printed = capsys.readouterr().out
    assert "cli" in printed and "8.0" in printed


def test_a_streams_entries_are_not_a_batch_runs_history(
    spark: SparkSession, suite: tuple[Suite, AnomalyCheck], tmp_path: Path
) -> None:
    repository = tmp_path / "metrics.json"
    save(spark, suite[0], repository, 3, "r1")
    for window, rows in (("batch", 50), ("total", 70)):  # what `stream validate` saves
        tags = {"suite": "per_run", "window": window, "batch_id": "0", "query_id": "q"}
        verify(spark, frame(spark, rows), suite[0], repository=repository, tags=tags)
    save(spark, suite[0], repository, 4, "r2")
    assert sizes(spark, repository, suite[1]) == {"r1": 3.0, "r2": 4.0}
    batches = load_metric_history(
        spark, repository, "per_run", suite[1], tags={"window": "batch", "query_id": "q"}
    )
    assert [p.value for p in batches] == [50.0]
