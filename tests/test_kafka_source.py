"""Kafka records as a suite's columns: every record arrives, malformed ones with their raw value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_broker import kafka_broker, produce
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual

from spark_jobs.services.kafka_source import kafka_batch_frame, kafka_frame, parse_values
from spark_jobs.services.table_io import MALFORMED_COLUMN

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["kafka_broker"]  # the module-scoped fixture, imported for this module's tests

# `id` is required: a record without it is malformed as far as from_json can tell.
SCHEMA = "id long not null, name string"
OUTPUT_SCHEMA = f"id long, name string, {MALFORMED_COLUMN} string"
# (record value, expected row: the schema's columns and the raw value when malformed)
RECORDS: list[tuple[str | None, tuple[int | None, str | None, str | None]]] = [
    ('{"id": 1, "name": "a"}', (1, "a", None)),
    ('{"id": 2, "name": null, "extra": true}', (2, None, None)),
    ("not json", (None, None, "not json")),
    ('{"id": "abc", "name": "b"}', (None, "b", '{"id": "abc", "name": "b"}')),
    ("[1, 2]", (None, None, "[1, 2]")),
    ('[{"id": 3, "name": "c"}]', (None, None, '[{"id": 3, "name": "c"}]')),
    ("42", (None, None, "42")),
    ('{"name": "no id"}', (None, "no id", '{"name": "no id"}')),
    ("null", (None, None, "null")),
    (None, (None, None, "null")),  # a tombstone: no value at all
    ('{"id": 4, "name": "d"}', (4, "d", None)),
]


def _expected(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([row for _, row in RECORDS], OUTPUT_SCHEMA)


def _schema(spark: SparkSession) -> StructType:
    return spark.createDataFrame([], SCHEMA).schema


def test_parse_values_keeps_every_record_and_the_raw_text_of_those_not_of_the_schema(
    spark: SparkSession,
) -> None:
    records = spark.createDataFrame(
        [(None if value is None else value.encode(),) for value, _ in RECORDS], "value binary"
    )
    assertDataFrameEqual(parse_values(records, _schema(spark)), _expected(spark))


@pytest.mark.kafka  # no broker, but a JVM in a subprocess: not for the unit tier
@pytest.mark.slow
def test_without_the_connector_a_kafka_source_is_an_environment_problem_naming_the_setting(
    tmp_path: Path,
) -> None:
    # A plain session of pyspark's own jars (the test session has the connector).
    probe = (
        "from pyspark.sql import SparkSession\n"
        "from pyspark.sql.types import StructType\n"
        "from lakegate_errors import EnvironmentProblem\n"
        "from spark_jobs.services.kafka_source import kafka_frame\n"
        "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
        "try:\n"
        "    kafka_frame(spark, 'orders', '127.0.0.1:9', StructType([]), {})\n"
        "except EnvironmentProblem as exc:\n"
        "    print(f'{exc.exit_code}: {exc}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("3: Spark's Kafka connector is not on the classpath")
    assert "kafka.coordinate" in done.stdout


@pytest.mark.kafka
def test_every_kafka_record_arrives_through_a_stream_and_malformed_ones_keep_their_value(
    spark: SparkSession, kafka_broker: str, tmp_path: Path
) -> None:
    produce(spark, kafka_broker, "records", [value for value, _ in RECORDS])
    stream = kafka_frame(spark, "records", kafka_broker, _schema(spark), {})
    query = (
        stream.writeStream.format("memory")
        .queryName("kafka_records")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(300)
    assert query.exception() is None
    assertDataFrameEqual(spark.table("kafka_records"), _expected(spark))
    # The batch reader sees the same records; options pass through (the first three only).
    assertDataFrameEqual(
        kafka_batch_frame(spark, "records", kafka_broker, _schema(spark), {}), _expected(spark)
    )
    first_three = {"endingOffsets": '{"records": {"0": 3}}'}
    assertDataFrameEqual(
        kafka_batch_frame(spark, "records", kafka_broker, _schema(spark), first_three),
        _expected(spark).limit(3),
    )
