"""One clock: times with an offset become UTC at every edge, whatever the driver's `TZ`."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from pyspark.sql.types import TimestampType

from online_store.encoding import decode_row, encode_row
from online_store.sqlite_store import SqliteOnlineStore
from spark_jobs.predict import PredictSpec, command, scored_at_column

UTC = dt.UTC
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
INSTANT = dt.datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
MICROS = TimestampType().toInternal(INSTANT)


@pytest.fixture
def new_york() -> Iterator[None]:
    """The driver's local time zone is not UTC (restored afterwards)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _spec(scored_at: object) -> PredictSpec:
    return PredictSpec.model_validate(
        {"model": "models:/m@champion", "input": "in", "output": "out", "scored_at": scored_at}
    )


def test_scored_at_with_an_offset_is_converted_to_utc_not_stripped():
    for given in ("2026-12-06T10:00:00+02:00", dt.datetime(2026, 12, 6, 10, tzinfo=PLUS_TWO)):
        scored_at = _spec(given).scored_at
        assert scored_at is not None
        assert (scored_at.hour, scored_at.tzinfo) == (8, UTC)  # the wall clock moved, too


def test_a_naive_scored_at_is_taken_as_utc_even_under_another_local_zone(new_york):
    assert _spec("2026-12-06T10:00:00").scored_at == dt.datetime(2026, 12, 6, 10, tzinfo=UTC)


def test_cli_scored_at_accepts_an_offset_and_keeps_it():
    option = next(p for p in command.params if p.name == "scored_at")
    assert isinstance(option, click.Option)
    parsed = option.type.convert("2026-12-06T10:00:00+02:00", option, None)
    assert _spec(parsed).scored_at == dt.datetime(2026, 12, 6, 8, tzinfo=UTC)


def test_scored_at_lands_in_spark_as_the_utc_instant(spark, new_york):
    scored_at = _spec("2026-12-06T10:00:00+02:00").scored_at
    assert scored_at is not None
    row = (
        spark.range(1)
        .select(scored_at_column(scored_at).alias("t"))
        .selectExpr("CAST(t AS STRING) AS text", "unix_timestamp(t) AS seconds")
        .first()
    )
    assert row is not None
    assert (row.text, row.seconds) == ("2026-12-06 08:00:00", int(scored_at.timestamp()))


def test_online_encoding_of_a_timestamp_is_the_utc_instant_under_a_non_utc_zone(new_york):
    offline = TimestampType().fromInternal(MICROS)  # what Spark's collect() gives: naive local
    assert offline.tzinfo is None and offline.hour == 3  # 08:00 UTC is 03:00 in New York
    payload = encode_row([offline])
    assert payload == '["2026-12-06T08:00:00.123456+00:00"]'
    online = decode_row(payload, [("t", "timestamp")])["t"]
    assert online == INSTANT
    assert TimestampType().toInternal(online) == MICROS  # Spark reads back the offline value


def test_online_store_round_trip_returns_the_offline_instant_in_any_driver_zone(
    tmp_path: Path, new_york
):
    offline = TimestampType().fromInternal(MICROS)
    store = SqliteOnlineStore(tmp_path / "online.db")
    try:
        store.write_view("v", ["k"], [("k", "bigint"), ("t", "timestamp")], [[(1, offline)]])
        assert store.lookup("v", [1]) == [{"k": 1, "t": INSTANT}]
        os.environ["TZ"] = "Asia/Tokyo"  # a server in another zone reads the same instant
        time.tzset()
        assert store.lookup("v", [1]) == [{"k": 1, "t": INSTANT}]
    finally:
        store.close()
