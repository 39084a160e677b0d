"""`lakegate stream predict`: batch predict's checked scoring per micro-batch, exactly once.

One module fixture runs two streams over a folder of parquet files in-process (through
`spark_jobs.cli.main`, on the session fixture), with a real MLflow registry holding two versions:
first `available-now` over two files, then an interval trigger that scores a third file,
sees the champion alias move, scores a fourth, and is scraped for its metrics before it stops.
"""

from __future__ import annotations

import shutil
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from model_fixtures import train, train_config, users_frame
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from stream_helpers import (
    WAIT_SECONDS,
    delta,
    free_port,
    html_table,
    land_frame,
    report,
    sample,
    scrape,
    wait_for,
)

from checks.input_gate import derive_input_suite
from lakegate_config.settings import Settings
from spark_jobs.cli import main
from spark_jobs.services.training import train_model
from spark_jobs.stream_predict import StreamPredictSpec, run

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

NAME = "stream_users"
MODEL = f"models:/{NAME}@champion"
QUERY = f"lakegate_predict_{NAME}"
FEATURES = ["feature_1", "feature_2", "feature_3"]
COLUMNS = ["user_id", *FEATURES]


def land(folder: Path, index: int, rows: pd.DataFrame) -> Path:
    """One parquet file of the model's columns in the source folder (see `land_frame`)."""
    return land_frame(folder, index, rows[COLUMNS])


def stream_predict(
    source: Path, output: Path, checkpoint: Path, *extra: str, model: str = MODEL
) -> int:
    return main(
        [
            "stream", "predict", "--model", model, "--source", f"parquet:{source}",
            "--output", str(output), "--checkpoint", str(checkpoint), "--key", "user_id",
            "--option", "maxFilesPerTrigger=1", "--quiet", *extra,
        ]
    )  # fmt: skip


def batch_predict(source: Path, output: Path, model: str = MODEL) -> int:
    return main(
        ["predict", "--model", model, "--input", str(source), "--output", str(output),
         "--key", "user_id"]
    )  # fmt: skip


def last_batch(output: Path) -> int:
    try:
        return int(report(output)["batches"]["last_batch_id"])
    except (FileNotFoundError, ValueError, KeyError):
        return -1


@pytest.fixture(scope="module")
def versions(settings: Settings) -> MlflowClient:
    """Two versions of the model (different regularisation); champion on version 1."""
    train(settings, NAME)
    train(
        settings,
        NAME,
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.02}},
    )
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.set_registered_model_alias(NAME, "champion", "1")
    return client


@dataclass
class Runs:
    """Two stream runs over four files; the alias moved between the last two batches."""

    files: list[pd.DataFrame]
    source: Path
    output: Path
    codes: tuple[int, int]
    scraped: str
    port: int


@pytest.fixture(scope="module")
def runs(
    spark: SparkSession, versions: MlflowClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("stream-predict")
    source, output, checkpoint = root / "landing", root / "out", root / "checkpoint"
    users = users_frame(rows=48, seed=11)
    files = [users.iloc[i * 12 : (i + 1) * 12] for i in range(4)]
    land(source, 0, files[0])
    land(source, 1, files[1])
    first = stream_predict(source, output, checkpoint)
    port = free_port()
    scraped: list[str] = []
    ended = threading.Event()

    def between_batches() -> None:
        land(source, 2, files[2])
        wait_for(lambda: last_batch(output) == 2, "batch 2", ended)
        versions.set_registered_model_alias(NAME, "champion", "2")
        land(source, 3, files[3])
        wait_for(lambda: last_batch(output) == 3, "batch 3", ended)
        (query,) = [q for q in spark.streams.active if q.name == QUERY]
        committed = lambda: int((query.lastProgress or {}).get("batchId", -1)) >= 3  # noqa: E731
        wait_for(committed, "commit 3", ended)
        scraped.append(scrape(port))  # while the query runs
        query.stop()

    mover = threading.Thread(target=between_batches, daemon=True)
    mover.start()
    try:
        second = stream_predict(
            source, output, checkpoint, "--trigger", "1s", "--metrics-port", str(port)
        )
    finally:
        ended.set()
    mover.join(timeout=WAIT_SECONDS)
    versions.set_registered_model_alias(NAME, "champion", "1")
    yield Runs(files, source, output, (first, second), scraped[0] if scraped else "", port)


def test_each_batch_is_scored_as_batch_predict_scores_the_same_rows(
    spark: SparkSession, runs: Runs, tmp_path: Path
) -> None:
    assert runs.codes == (0, 0)
    streamed = delta(spark, runs.output / "predictions")
    assert streamed.columns == ["user_id", "prediction", "model_name", "model_version", "scored_at"]
    for version, indexes in (("1", [0, 1, 2]), ("2", [3])):
        table = tmp_path / f"table-{version}"
        for i in indexes:
            land(table, i, runs.files[i])
        out = tmp_path / f"batch-{version}"
        assert batch_predict(table, out, f"models:/{NAME}/{version}") == 0
        assertDataFrameEqual(
            streamed.where(f"model_version = '{version}'").drop("scored_at"),
            delta(spark, out).drop("scored_at"),
        )


def test_a_moved_alias_scores_the_next_batch_without_a_restart(
    spark: SparkSession, runs: Runs
) -> None:
    streamed = delta(spark, runs.output / "predictions")
    by_version = {
        r.model_version: r.n
        for r in streamed.groupBy("model_version").count().withColumnRenamed("count", "n").collect()
    }
    assert by_version == {"1": 36, "2": 12}
    last_ids = {int(i) for i in runs.files[3]["user_id"]}
    version_2 = {r.user_id for r in streamed.where("model_version = '2'").collect()}
    assert version_2 == last_ids
    history = report(runs.output)["batch_history"]
    assert [(b["batch_id"], b["model_version"]) for b in history] == [
        (0, "1"), (1, "1"), (2, "1"), (3, "2")
    ]  # fmt: skip


def test_report_shows_running_totals_and_each_batch(runs: Runs) -> None:
    final = report(runs.output)
    assert final["counts"] == {"rows_in": 48, "rows_scored": 48, "rows_gated": 0}
    assert final["batches"] == {"count": 4, "last_batch_id": 3}
    assert final["model_version"] == "2"
    html = (runs.output / "report.html").read_text()
    table = html_table(html, "batches")
    assert table.count("<tr>") == 5  # the header and four batches
    assert "<th>Model version</th>" in table


def test_metrics_endpoint_serves_the_runs_batches_and_stops_with_the_query(runs: Runs) -> None:
    text = runs.scraped
    assert (
        sample(text, "lakegate_stream_batches_total", QUERY) == 2.0
    )  # batches 2 and 3 of this run
    assert sample(text, "lakegate_stream_rows_total", QUERY) == 24.0
    assert sample(text, "lakegate_stream_rows_quarantined_total", QUERY) == 0.0
    assert sample(text, "lakegate_stream_batch_duration_seconds_count", QUERY) == 2.0
    assert sample(text, "lakegate_stream_last_batch_id", QUERY) == 3.0
    assert sample(text, "lakegate_stream_rows_per_second", QUERY) > 0
    with pytest.raises(urllib.error.URLError):
        scrape(runs.port)


def test_a_batch_replayed_after_a_crash_adds_no_row_twice(
    spark: SparkSession, versions: MlflowClient, tmp_path: Path
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    users = users_frame(rows=10, seed=3)
    land(source, 0, users.iloc[:6])
    assert stream_predict(source, output, checkpoint) == 0
    # The crash: the Delta append committed, Spark's checkpoint did not record the batch.
    for name in ("0", ".0.crc"):
        (checkpoint / "commits" / name).unlink()
    land(source, 1, users.iloc[6:])
    assert stream_predict(source, output, checkpoint) == 0
    written = delta(spark, output / "predictions").select("user_id")
    assertDataFrameEqual(written, spark.createDataFrame(users[["user_id"]]))
    assert report(output)["counts"]["rows_in"] == 10
    assert report(output)["batches"] == {"count": 2, "last_batch_id": 1}


def test_an_unknown_model_exits_2_before_the_query_starts(
    spark: SparkSession, versions: MlflowClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, users_frame(rows=4))
    code = main(
        ["stream", "predict", "--model", f"models:/{NAME}@nope", "--source", f"parquet:{source}",
         "--output", str(output), "--checkpoint", str(checkpoint)]
    )  # fmt: skip
    assert code == 2
    assert "no alias 'nope'" in capsys.readouterr().err
    assert not output.exists() and not checkpoint.exists()


def test_a_source_not_matching_the_signature_exits_2_before_the_query_starts(
    spark: SparkSession, versions: MlflowClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    source.mkdir()
    frame = users_frame(rows=4)[COLUMNS].astype({"feature_2": str})
    frame.to_parquet(source / "part-000.parquet", index=False)
    assert stream_predict(source, output, checkpoint) == 2
    assert "feature_2" in capsys.readouterr().err
    assert not output.exists() and not checkpoint.exists()
    shutil.rmtree(source)


def test_an_alias_moved_to_a_model_of_another_output_type_stops_with_exit_2_committing_nothing(
    spark: SparkSession,
    settings: Settings,
    versions: MlflowClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    users = users_frame(rows=8, seed=5)
    land(source, 0, users.iloc[:4])
    assert stream_predict(source, output, checkpoint) == 0
    regressor = train(settings, NAME, task="regression")  # predicts doubles, not classes
    versions.set_registered_model_alias(NAME, "champion", regressor.version)
    try:
        land(source, 1, users.iloc[4:])
        capsys.readouterr()
        assert stream_predict(source, output, checkpoint) == 2
    finally:
        versions.set_registered_model_alias(NAME, "champion", "1")
    err = capsys.readouterr().err
    assert "returns double predictions" in err and "holds bigint" in err
    assert delta(spark, output / "predictions").count() == 4
    assert [p.name for p in (checkpoint / "commits").iterdir() if p.name[0] != "."] == ["0"]


def test_the_input_gate_splits_each_batch_as_batch_predict_splits_the_table(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    training = users_frame()
    gate = derive_input_suite(spark.createDataFrame(training), FEATURES, name="gated_users")
    train_model(training, train_config("gated_users"), settings, source="memory", input_gate=gate)
    model = "models:/gated_users@champion"
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    users = users_frame(rows=10, seed=9)
    users.loc[2, "feature_1"] = 1e6  # far outside the training range
    users["feature_2"] = users["feature_2"].astype("Float64")
    users.loc[7, "feature_2"] = pd.NA  # a null, not a NaN
    land(source, 0, users.iloc[:5])
    land(source, 1, users.iloc[5:])
    assert stream_predict(source, output, checkpoint, "--gate", model=model) == 0
    batch_out = tmp_path / "batch"
    code = main(
        ["predict", "--model", model, "--input", str(source), "--output", str(batch_out),
         "--key", "user_id", "--gate"]
    )  # fmt: skip
    assert code == 0
    assertDataFrameEqual(
        delta(spark, output / "predictions").drop("scored_at"),
        delta(spark, batch_out).drop("scored_at"),
    )
    gated = delta(spark, output / "quarantine")
    assertDataFrameEqual(gated, delta(spark, Path(f"{batch_out}_quarantine")))
    assert sorted(r.user_id for r in gated.collect()) == [3, 8]
    assert report(output)["counts"] == {"rows_in": 10, "rows_scored": 8, "rows_gated": 2}


def test_gate_for_a_model_without_an_input_gate_exits_2_before_the_query_starts(
    spark: SparkSession, versions: MlflowClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    land(source, 0, users_frame(rows=4))
    assert stream_predict(source, output, checkpoint, "--gate") == 2
    assert "has no input gate" in capsys.readouterr().err
    assert not output.exists() and not checkpoint.exists()


def test_a_delta_source_is_scored_and_an_unreported_backlog_stays_absent_from_the_metrics(
    spark: SparkSession, settings: Settings, versions: MlflowClient, tmp_path: Path
) -> None:
    table, output = tmp_path / "source", tmp_path / "out"
    users = users_frame(rows=9, seed=4)[COLUMNS]
    for i in range(3):  # one file per commit: with maxFilesPerTrigger=1, one batch per commit
        part = spark.createDataFrame(users.iloc[i * 3 : (i + 1) * 3]).coalesce(1)
        part.write.format("delta").mode("append").save(str(table))
    spec = StreamPredictSpec(
        model=MODEL, source=f"delta:{table}", output=str(output),
        checkpoint=str(tmp_path / "checkpoint"), key=["user_id"],
        options={"maxFilesPerTrigger": "1"}, metrics_port=0, quiet=True,
    )  # fmt: skip
    result = run(spark, settings, spec)
    assert result.batches == 3
    ids = delta(spark, output / "predictions").select("user_id")
    assertDataFrameEqual(ids, spark.createDataFrame(users[["user_id"]]))
    text = result.metrics.exposition().decode()
    assert sample(text, "lakegate_stream_batches_total", QUERY) == 3.0
    # Delta 3.3's source reports no backlog under available-now: absent, not a made-up 0.
    assert "lakegate_stream_input_files_behind{" not in text
    assert "lakegate_stream_input_rows_behind{" not in text
