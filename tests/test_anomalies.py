"""Anomaly checks: parsed before Spark with file:line, judged by Deequ on a real metrics history."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession

from checks.anomalies import (
    AnomalyCheck,
    compute_current_metrics,
    evaluate_anomalies,
    parse_anomalies,
)
from checks.deequ_run import verify
from checks.suite import Suite, SuiteError
from checks.suite_formats import parse_suite
from lakegate_config.yaml_document import YamlDocument, load_yaml_document

SUITE = """\
suite: shop
checks:
  - name: basics
    constraints:
      - hasSize: {min: 0}
      - isComplete: name
anomalies:
  - Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8, maxRateIncrease: 1.2}
  - Completeness: {column: name, strategy: OnlineNormal, upperDeviationFactor: 3}
  - Size: {strategy: AbsoluteChange, maxRateDecrease: -5, maxRateIncrease: 5, order: 2}
  - Size: {strategy: BatchNormal, lowerDeviationFactor: 2, upperDeviationFactor: 2}
  - Size: {strategy: SimpleThresholds, lowerBound: 9, upperBound: 20, level: warning}
  - Size: {strategy: HoltWinters, metricsInterval: Daily, seasonality: Weekly}
"""
SIZES = (10, 11, 10, 12)  # the earlier runs


def frame(spark: SparkSession, rows: int, null_every: int = 5) -> DataFrame:
    data = [(i, None if (i + 1) % null_every == 0 else "x") for i in range(rows)]
    return spark.createDataFrame(data, "id int, name string")


def load(tmp_path: Path, text: str) -> tuple[Suite, tuple[AnomalyCheck, ...]]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    document = load_yaml_document(path)
    entries = parse_anomalies(document)
    checks_only = {k: v for k, v in document.data.items() if k != "anomalies"}
    return parse_suite(YamlDocument(path, checks_only, document.lines)), entries


@pytest.fixture(scope="module")
def history(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Four validated runs of suite `shop` (and one of another suite) in a real repository."""
    root = tmp_path_factory.mktemp("anomalies")
    suite, entries = load(root, SUITE)
    repository = root / "metrics.json"
    for run, rows in enumerate(SIZES):
        verify(spark, frame(spark, rows), suite, repository=repository,
               tags={"suite": "shop", "run_id": f"run{run}"})  # fmt: skip
    other = parse_suite(YamlDocument(root / "o.yaml", {**suite_data(), "suite": "other"}, {}))
    verify(spark, frame(spark, 1000), other, repository=repository, tags={"suite": "other"})
    return {"suite": suite, "entries": entries, "repository": repository}


def suite_data() -> dict[str, object]:
    data = yaml.safe_load(SUITE)
    data.pop("anomalies")
    return data


@pytest.mark.slow
def test_a_shrunken_table_is_an_anomaly_for_the_change_and_normal_strategies(
    spark: SparkSession, history: dict[str, object]
) -> None:
    entries = history["entries"]
    assert isinstance(entries, tuple)
    current = compute_current_metrics(spark, frame(spark, 5, null_every=10**6), entries)
    results = evaluate_anomalies(spark, entries, current, history["repository"], "shop")  # type: ignore[arg-type]
    by_strategy = {r.entry.strategy_name: r for r in results}

    relative = by_strategy["RelativeRateOfChange"]
    assert relative.status == "failure" and relative.metric == 5.0
    assert [p.value for p in relative.history] == [10.0, 11.0, 10.0, 12.0]  # not suite `other`
    assert relative.bounds is not None
    assert (relative.bounds.lower, relative.bounds.upper) == pytest.approx((9.6, 14.4))
    absolute = by_strategy["AbsoluteChange"]  # 2nd difference: 5 - 2*12 + 10 = -9
    assert absolute.status == "failure" and "Change of -9.0" in absolute.message
    assert (absolute.bounds.lower, absolute.bounds.upper) == (9.0, 19.0)  # type: ignore[union-attr]
    batch = by_strategy["BatchNormal"]
    assert batch.status == "failure"
    assert f"{batch.bounds.lower}" in batch.message  # type: ignore[union-attr]  (Deequ's own bounds)
    thresholds = by_strategy["SimpleThresholds"]
    assert thresholds.status == "failure" and thresholds.entry.level.value == "warning"
    # completeness 0.8 -> 1.0: Deequ's running deviation includes the new point itself, so on
    # four earlier runs 1.0 is still within 3 deviations
    online = by_strategy["OnlineNormal"]
    assert online.status == "success" and online.metric == 1.0
    assert online.bounds is not None and online.bounds.lower < 0.8 < 1.0 < online.bounds.upper
    # Holt-Winters needs two weekly seasons of daily runs: not judged yet, and it says so
    holt = by_strategy["HoltWinters"]
    assert holt.status == "success" and "needs 14 earlier runs" in holt.message
    report = relative.as_dict()
    assert report["history"][0]["value"] == 10.0 and report["bounds"]["lower"] == pytest.approx(9.6)


@pytest.mark.slow
def test_a_usual_table_passes_and_python_bounds_agree_with_deequs_verdicts(
    spark: SparkSession, history: dict[str, object]
) -> None:
    entries = history["entries"]
    assert isinstance(entries, tuple)
    for rows, null_every in ((11, 5), (13, 5), (30, 5), (10, 2)):
        current = compute_current_metrics(spark, frame(spark, rows, null_every), entries)
        for result in evaluate_anomalies(spark, entries, current, history["repository"], "shop"):  # type: ignore[arg-type]
            if result.bounds is None:
                continue
            inside = result.bounds.lower <= result.metric <= result.bounds.upper  # type: ignore[operator]
            assert inside == (result.status == "success"), result.message
    current = compute_current_metrics(spark, frame(spark, 11), entries)
    results = evaluate_anomalies(spark, entries, current, history["repository"], "shop")  # type: ignore[arg-type]
    assert {r.entry.strategy_name: r.status for r in results}["RelativeRateOfChange"] == "success"


def test_no_history_passes_and_says_so(spark: SparkSession, history: dict[str, object]) -> None:
    entries = history["entries"]
    assert isinstance(entries, tuple)
    current = compute_current_metrics(spark, frame(spark, 1), entries)
    results = evaluate_anomalies(spark, entries, current, history["repository"], "brand-new")  # type: ignore[arg-type]
    assert {r.status for r in results} == {"success"}
    assert all("nothing to compare with yet" in r.message and not r.history for r in results)


def test_this_runs_saved_metrics_are_not_its_own_history(
    spark: SparkSession, history: dict[str, object], tmp_path: Path
) -> None:
    entries = history["entries"]
    assert isinstance(entries, tuple)
    repository = tmp_path / "metrics.json"
    suite = history["suite"]
    assert isinstance(suite, Suite)
    verify(
        spark, frame(spark, 10), suite, repository=repository, tags={"suite": "shop", "run_id": "a"}
    )
    tags = {"suite": "shop", "run_id": "b"}
    current = compute_current_metrics(
        spark, frame(spark, 3), entries[:1], repository=repository, tags=tags
    )
    [result] = evaluate_anomalies(spark, entries[:1], current, repository, "shop", run_id="b")
    assert [p.run_id for p in result.history] == ["a"]
    assert result.status == "failure"


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        ("- Sise: {strategy: OnlineNormal}", 9, "unknown analyzer 'Sise'; did you mean 'Size'?"),
        ("- Size: {strategy: OnlineNormel}", 9, "unknown strategy 'OnlineNormel'; did you mean"),
        ("- Size: {strategy: SimpleThresholds, lowerBound: 1}", 9, "upperBound: Field required"),
        ("- Size: {strategy: RelativeRateOfChange}", 9, "missing parameter: give maxRateDecrease"),
        ("- Mean: {strategy: BatchNormal}", 9, "missing parameter: column"),
        ("- ApproxQuantile: {column: x, strategy: BatchNormal}", 9, "missing parameter: quantile"),
        ("- Size: {strategy: BatchNormal, upperDeviationFactr: 2}", 9, "upperDeviationFactr"),
        ("- Size: {strategy: HoltWinters, metricsInterval: Daily}", 9, "seasonality"),
        ("- Size: {column: x, strategy: BatchNormal}", 9, "Size does not take column"),
    ],
)
def test_bad_entries_are_refused_with_file_and_line_before_spark(
    tmp_path: Path, entry: str, line: int, message: str
) -> None:
    text = suite_text_with("  " + entry)
    with pytest.raises(SuiteError) as error:
        load(tmp_path, text)
    assert f"suite.yaml:{line}" in str(error.value)
    assert message in str(error.value)


def suite_text_with(entry: str) -> str:
    head = SUITE.split("anomalies:")[0]
    return head + "anomalies:\n  - Size: {strategy: BatchNormal}\n" + entry + "\n"


def test_suite_without_anomalies_has_none(tmp_path: Path) -> None:
    assert load(tmp_path, SUITE.split("anomalies:")[0])[1] == ()


VALIDATED_SUITE = """\
suite: shop_validated
checks:
  - name: basics
    constraints:
      - isComplete: id
anomalies:
  - Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8, maxRateIncrease: 1.5}
  - Completeness: {column: name, strategy: SimpleThresholds, lowerBound: 0.5, upperBound: 1,
                   level: warning}
"""


def _validate(spark: SparkSession, root: Path, suite: Path, rows: int, run: int) -> int:
    from spark_jobs.cli import main

    data = root / f"in{run}.parquet"
    frame(spark, rows).write.mode("overwrite").parquet(str(data))
    return main(["validate", str(suite), "--input", str(data), "--output", str(root / "out"),
                 "--quiet", "--no-html-report"])  # fmt: skip


@pytest.mark.slow
def test_validate_fails_a_run_whose_metric_is_an_anomaly_and_lists_it(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    suite = tmp_path / "suite.yaml"
    suite.write_text(VALIDATED_SUITE)
    assert _validate(spark, tmp_path, suite, 10, 0) == 0
    first = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "no earlier run" in first["anomalies"][0]["message"]
    assert _validate(spark, tmp_path, suite, 11, 1) == 0
    capsys.readouterr()

    assert _validate(spark, tmp_path, suite, 3, 2) == 1  # 3 rows after 11: a rate of 0.27
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    size, completeness = report["anomalies"]
    assert (report["status"], report["exit_code"]) == ("failure", 1)
    assert all(c["status"] == "success" for c in report["constraints"])
    assert (size["status"], size["metric"], size["level"]) == ("failure", 3.0, "error")
    assert [p["value"] for p in size["history"]] == [10.0, 11.0]
    assert size["bounds"] == {"lower": pytest.approx(8.8), "upper": pytest.approx(16.5)}
    assert (completeness["status"], completeness["level"]) == ("success", "warning")
    summary = capsys.readouterr().out
    assert "FAIL  anomaly: Size = 3 is an anomaly (RelativeRateOfChange [8.8, 16.5]" in summary
    assert (tmp_path / "out" / "valid").is_dir()  # a failed anomaly still writes the split


def test_validate_refuses_an_anomaly_on_an_unknown_column_before_writing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(VALIDATED_SUITE.replace("column: name", "column: nmae"))
    assert _validate(spark, tmp_path, suite, 10, 0) == 2
    error = capsys.readouterr().err
    assert "suite.yaml:8: anomaly check 2 (Completeness(nmae)): unknown column 'nmae'" in error
    assert "did you mean 'name'?" in error
    assert not (tmp_path / "out").exists()
