"""Online feature store: `lakegate materialize` with real Spark into SQLite and a real Redis."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import OnlineStoreSettings, Settings
from online_store import BadEntityKey, EntityKeysNotFound, FeatureViewNotFound, open_online_store
from spark_jobs.cli import main
from spark_jobs.materialize import MaterializeSpec, open_configured_store, run
from spark_jobs.services.job_metrics import job_metric_values

SCHEMA = (
    "user_id BIGINT, updated_at TIMESTAMP, feature_1 DOUBLE, segment STRING, sessions BIGINT, "
    "is_paid BOOLEAN, signup DATE, balance DECIMAL(10,2)"
)


def _missing(why: str) -> None:
    """Skip on a developer's machine; fail in CI (`CI=true`), whose setup installs the server."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI installs it before the tests)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("no Redis to test against: redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                _missing("redis-server did not start on loopback within 20 s")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def store_settings(request, settings: Settings, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        conf = OnlineStoreSettings(kind="sqlite", path=tmp_path / "online.db", batch_rows=3)
    else:
        conf = OnlineStoreSettings(
            kind="redis", url=request.getfixturevalue("redis_url"), batch_rows=3
        )
    return settings.model_copy(update={"online_store": conf})


def _ts(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour)


ROWS = [
    # user 1 changes twice: the latest (day 3) must win
    (1, _ts(1), 0.5, "free", 3, False, dt.date(2025, 1, 1), Decimal("10.00")),
    (1, _ts(3), 0.1 + 0.2, "paid", 4, True, dt.date(2025, 1, 1), Decimal("12.34")),
    (1, _ts(2), 9.9, "free", 5, False, dt.date(2025, 1, 1), Decimal("11.00")),
    (2, _ts(1), -1e-300, None, None, None, None, None),
    (3, _ts(2), float("nan"), "free", 0, False, dt.date(2024, 2, 29), Decimal("-0.01")),
    (3, None, 7.0, "paid", 1, True, dt.date(2024, 2, 29), Decimal("0.00")),
    (4, _ts(5, 7), 1.0 / 3.0, "trial", 2**40, True, dt.date(2023, 12, 31), Decimal("99999999.99")),
]


@pytest.fixture(scope="module")
def feature_table(spark: SparkSession, tmp_path_factory) -> tuple[str, DataFrame]:
    path = str(tmp_path_factory.mktemp("features") / "user_features")
    spark.createDataFrame(ROWS, SCHEMA).write.parquet(path)
    return path, spark.read.parquet(path)


def _expected_latest(spark: SparkSession, table: DataFrame) -> DataFrame:
    """The latest row per user, computed independently of materialize's window."""
    table.createOrReplaceTempView("offline_features")
    return spark.sql(
        "SELECT f.* FROM offline_features f JOIN (SELECT user_id, max(updated_at) AS latest "
        "FROM offline_features GROUP BY user_id) l ON f.user_id = l.user_id "
        "AND f.updated_at = l.latest"
    )


def test_online_lookups_equal_the_offline_latest_row_per_key(spark, feature_table, store_settings):
    path, table = feature_table
    result = run(
        spark,
        store_settings,
        MaterializeSpec(input=path, key=["user_id"], timestamp="updated_at", name="users_online"),
    )
    assert result.view.rows == 4
    store = open_configured_store(store_settings)
    try:
        online = store.lookup("users_online", [1, 2, 3, 4])
    finally:
        store.close()
    assertDataFrameEqual(
        spark.createDataFrame(online, table.schema), _expected_latest(spark, table)
    )
    assert online[0]["feature_1"] == 0.1 + 0.2  # bit-exact doubles
    assert online[0]["balance"] == Decimal("12.34")


def test_a_missing_key_is_a_not_found_error_naming_it_not_a_null_row(
    spark, feature_table, store_settings
):
    path, _ = feature_table
    run(spark, store_settings, MaterializeSpec(input=path, key=["user_id"], timestamp="updated_at"))
    store = open_configured_store(store_settings)
    try:
        with pytest.raises(EntityKeysNotFound, match="has no row for key 404") as caught:
            store.lookup("user_features", [1, 404])
        assert caught.value.missing == [404]
        assert store.lookup("user_features", ["4"])[0]["sessions"] == 2**40  # "4" -> bigint 4
        with pytest.raises(BadEntityKey, match="key column 'user_id' is bigint"):
            store.lookup("user_features", [1.5])
        with pytest.raises(FeatureViewNotFound, match="no feature view 'other'"):
            store.lookup("other", [1])
    finally:
        store.close()


def test_materializing_again_replaces_the_view_whole(spark, store_settings, tmp_path):
    first = str(tmp_path / "first")
    spark.createDataFrame([(1, 1.0), (2, 2.0)], "user_id BIGINT, f DOUBLE").write.parquet(first)
    second = str(tmp_path / "second")
    spark.createDataFrame([(2, 20.0), (3, 30.0)], "user_id BIGINT, f DOUBLE").write.parquet(second)
    for source in (first, second):
        run(spark, store_settings, MaterializeSpec(input=source, key=["user_id"], name="v"))
    store = open_configured_store(store_settings)
    try:
        assert store.lookup("v", [2, 3]) == [{"user_id": 2, "f": 20.0}, {"user_id": 3, "f": 30.0}]
        with pytest.raises(EntityKeysNotFound):
            store.lookup("v", [1])
        assert store.view("v").rows == 2
        assert store.view("v").source == second
    finally:
        store.close()


def test_redis_keeps_the_current_rows_hash_and_lets_the_replaced_ones_expire(
    spark, redis_url, settings, tmp_path
):
    import redis

    from online_store.redis_store import REPLACED_ROWS_GRACE_SECONDS

    conf = OnlineStoreSettings(kind="redis", url=redis_url)
    redis_settings = settings.model_copy(update={"online_store": conf})
    source = str(tmp_path / "t")
    spark.createDataFrame([(1, 1.0)], "user_id BIGINT, f DOUBLE").write.parquet(source)
    for _ in range(3):
        run(spark, redis_settings, MaterializeSpec(input=source, key=["user_id"], name="gens"))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    ttls = {key: client.ttl(key) for key in client.scan_iter("lakegate:rows:gens:*")}
    kept = [key for key, ttl in ttls.items() if ttl == -1]
    assert kept == [json.loads(client.get("lakegate:view:gens"))["rows"]]
    assert len(ttls) == 3
    replaced = [ttl for key, ttl in ttls.items() if key not in kept]
    assert all(0 < ttl <= REPLACED_ROWS_GRACE_SECONDS for ttl in replaced)


def _write_numbers(store, name: str, value: float, rows: int = 400) -> None:
    columns = [("user_id", "bigint"), ("f", "double")]
    batches = ([(k, value) for k in range(start, start + 50)] for start in range(0, rows, 50))
    store.write_view(name, ["user_id"], columns, batches, source=f"generation {value}")


def test_redis_lookups_during_rematerialisation_find_every_key_of_one_generation(redis_url):
    writer_store = open_online_store("redis", url=redis_url)
    reader_store = open_online_store("redis", url=redis_url)
    keys = list(range(400))
    _write_numbers(writer_store, "swapped", 0.0)
    failures: list[BaseException] = []
    mixed: list[set[float]] = []
    writing = threading.Event()
    writing.set()

    def read() -> int:
        lookups = 0
        while writing.is_set() and lookups < 20_000:
            try:
                values = {row["f"] for row in reader_store.lookup("swapped", keys)}
            except Exception as exc:  # a 404 for keys that exist in both generations
                failures.append(exc)
                return lookups
            if len(values) != 1:
                mixed.append(values)
            lookups += 1
        return lookups

    try:
        with ThreadPoolExecutor(3) as pool:
            readers = [pool.submit(read) for _ in range(3)]
            for generation in range(1, 21):
                _write_numbers(writer_store, "swapped", float(generation))
            writing.clear()
            assert sum(reader.result(timeout=60) for reader in readers) > 0
        assert reader_store.lookup("swapped", [0])[0]["f"] == 20.0
    finally:
        writing.clear()
        writer_store.close()
        reader_store.close()
    assert failures == []
    assert mixed == []


def test_two_concurrent_redis_materialisations_leave_one_whole_generation(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores = [open_online_store("redis", url=redis_url) for _ in range(2)]
    try:
        for round_ in range(5):
            start = threading.Barrier(2)

            def write(which: int, start: threading.Barrier = start) -> None:
                start.wait(timeout=30)
                _write_numbers(stores[which], "pair", float(which), rows=2000)

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(write, [0, 1], timeout=120))
            current = json.loads(client.get("lakegate:view:pair"))["rows"]
            assert client.hlen(current) == 2000, f"round {round_}"
            values = {row["f"] for row in stores[0].lookup("pair", list(range(2000)))}
            assert len(values) == 1, f"round {round_}: {values}"
            assert stores[0].view("pair").rows == 2000
    finally:
        for store in stores:
            store.close()


def test_duplicate_keys_without_a_timestamp_are_refused_with_the_fix(
    spark, feature_table, settings
):
    path, _ = feature_table
    from lakegate_errors import UserError

    with pytest.raises(UserError, match=r"more than one row: .*user_id.: 1.*--timestamp"):
        run(spark, settings, MaterializeSpec(input=path, key=["user_id"]))


def test_null_keys_are_refused(spark, settings, tmp_path):
    source = str(tmp_path / "nulls")
    spark.createDataFrame([(1, 1.0), (None, 2.0)], "user_id BIGINT, f DOUBLE").write.parquet(source)
    from lakegate_errors import UserError

    with pytest.raises(UserError, match="null key"):
        run(spark, settings, MaterializeSpec(input=source, key=["user_id"]))


def test_composite_keys_look_up_by_mapping_or_list(spark, settings, tmp_path):
    source = str(tmp_path / "composite")
    spark.createDataFrame(
        [("eu", 1, 0.5), ("us", 1, 0.7)], "region STRING, user_id BIGINT, f DOUBLE"
    ).write.parquet(source)
    run(spark, settings, MaterializeSpec(input=source, key=["region", "user_id"], name="regional"))
    store = open_configured_store(settings)
    try:
        rows = store.lookup("regional", [{"region": "us", "user_id": 1}, ["eu", 1]])
        assert [row["f"] for row in rows] == [0.7, 0.5]
        with pytest.raises(BadEntityKey, match="key columns are region, user_id"):
            store.lookup("regional", [1])
    finally:
        store.close()


def test_cli_materialize_writes_the_view_and_logs_timings_and_rows_per_second_to_mlflow(
    spark, feature_table, settings, capsys
):
    path, _ = feature_table
    code = main(
        [
            "materialize",
            path,
            "--key",
            "user_id",
            "--timestamp",
            "updated_at",
            "--name",
            "cli_view",
            "--env",
            "test",
        ]
    )
    assert code == 0
    assert "Materialized 4 rows" in capsys.readouterr().out
    store = open_online_store("sqlite", path=settings.online_store_path)
    try:
        assert store.view("cli_view").rows == 4
    finally:
        store.close()
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`lakegate.job` = 'materialize'", max_results=1
    )
    metrics = runs[0].data.metrics
    assert metrics["rows"] == 4
    assert metrics["rows_per_second"] == pytest.approx(4 / metrics["total_seconds"])
    assert runs[0].data.params["feature_view"] == "cli_view"


def test_job_metric_values_derive_the_total_and_rows_per_second():
    assert job_metric_values(100, {"read": 1.0, "score": 3.0}) == {
        "read_seconds": 1.0,
        "score_seconds": 3.0,
        "total_seconds": 4.0,
        "rows": 100.0,
        "rows_per_second": 25.0,
    }
    assert job_metric_values(10, {"score": 1.0, "total": 5.0})["rows_per_second"] == 2.0
