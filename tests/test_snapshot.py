"""A Delta input is read at one version: appends during a validation never mix snapshots."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import Settings
from spark_jobs.services.table_io import delta_version, read_pinned
from spark_jobs.validate import ValidateSpec, run

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

ITEMS = "checks/examples/items.yaml"


def items(spark: SparkSession) -> DataFrame:
    return spark.read.option("header", True).option("inferSchema", True).csv("data/items.csv")


def at_version(spark: SparkSession, path: Path, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", version).load(str(path))


def test_a_pinned_delta_read_keeps_its_version_after_an_append(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = tmp_path / "items"
    items(spark).write.format("delta").save(str(table))
    df, version = read_pinned(spark, str(table))
    assert version == 0
    items(spark).write.format("delta").mode("append").save(str(table))
    assert delta_version(spark, str(table)) == 1
    assertDataFrameEqual(df, items(spark))


def test_validate_sees_one_version_while_another_job_appends(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    table, output = tmp_path / "items", tmp_path / "out"
    items(spark).write.format("delta").save(str(table))
    stop = threading.Event()

    def append() -> None:  # another job: at most 8 appends, 60 s
        deadline = time.monotonic() + 60
        for _ in range(8):
            if stop.is_set() or time.monotonic() > deadline:
                return
            items(spark).write.format("delta").mode("append").save(str(table))

    appender = threading.Thread(target=append)
    appender.start()
    try:
        spec = ValidateSpec(suite=ITEMS, input=str(table), output=str(output))
        result = run(spark, settings, spec)
    finally:
        stop.set()
        appender.join()
    report = json.loads((output / "report.json").read_text())
    version = report["input_version"]
    assert delta_version(spark, str(table)) > version  # the other job did append meanwhile
    pinned = at_version(spark, table, version)
    counts = result.counts
    assert counts.rows_in == pinned.count()
    assert counts.rows_in == counts.rows_valid + counts.rows_quarantined
    valid = spark.read.format("delta").load(str(output / "valid"))
    quarantined = spark.read.format("delta").load(str(output / "quarantine"))
    assertDataFrameEqual(valid.unionByName(quarantined.select(*valid.columns)), pinned)
