"""Outputs change whole or not at all: Delta transactions, the journal, and parquet staging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from lakegate_config.settings import load_settings
from spark_jobs.services.table_io import StagedOutputs, delta_version, write_table_atomically


def frame(spark: SparkSession, start: int, rows: int = 50) -> DataFrame:
    return spark.range(start, start + rows).selectExpr("id", "concat('row ', id) AS name")


def delta(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("_"))


def committed(spark: SparkSession, root: Path, run_id: str, start: int) -> None:
    outputs = StagedOutputs(spark, str(root), run_id)
    outputs.write_table("valid", frame(spark, start))
    outputs.write_table("quarantine", frame(spark, start + 1000, 5))
    outputs.add_json("report.json", {"run": run_id})
    outputs.commit()


@pytest.mark.slow
def test_a_rerun_overwrites_in_one_new_version_and_never_adds_a_second_copy(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "predictions"
    write_table_atomically(spark, frame(spark, 0), str(output))
    write_table_atomically(spark, frame(spark, 0), str(output))
    assertDataFrameEqual(delta(spark, output), frame(spark, 0))
    assert delta_version(spark, str(output)) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_failed_job_puts_every_delta_output_back_to_its_earlier_version(
    spark: SparkSession, tmp_path: Path
) -> None:
    committed(spark, tmp_path, "first", 0)
    outputs = StagedOutputs(spark, str(tmp_path), "second")
    outputs.write_table("valid", frame(spark, 500))
    outputs.write_table("quarantine", frame(spark, 600, 7))
    assert outputs.table_versions() == {"valid": 1, "quarantine": 1}
    outputs.abort()
    assertDataFrameEqual(delta(spark, tmp_path / "valid"), frame(spark, 0))
    assertDataFrameEqual(delta(spark, tmp_path / "quarantine"), frame(spark, 1000, 5))
    assert (tmp_path / "report.json").read_text().strip().endswith('"first"\n}')
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_job_killed_between_its_tables_is_undone_by_the_next_job_writing_there(
    spark: SparkSession, tmp_path: Path
) -> None:
    committed(spark, tmp_path, "first", 0)
    killed = StagedOutputs(spark, str(tmp_path), "killed")
    killed.write_table("valid", frame(spark, 500))
    # The process dies here: all that is left of it is on storage.
    del killed
    assert leftovers(tmp_path) == ["_journal-killed.json"]
    assertDataFrameEqual(delta(spark, tmp_path / "valid"), frame(spark, 500))

    StagedOutputs(spark, str(tmp_path), "next").recover(["quarantine"])  # not the killed one's
    assert leftovers(tmp_path) == ["_journal-killed.json"]
    StagedOutputs(spark, str(tmp_path), "next").recover(["valid"])
    assertDataFrameEqual(delta(spark, tmp_path / "valid"), frame(spark, 0))
    last = DeltaTable.forPath(spark, str(tmp_path / "valid")).history(1).collect()[0]
    assert last["operation"] == "RESTORE"
    assert leftovers(tmp_path) == []


def test_a_job_killed_after_its_commit_point_is_finished_by_the_next_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    write_table_atomically(spark, frame(spark, 0), str(tmp_path / "scores"), "parquet")
    killed = StagedOutputs(spark, str(tmp_path), "killed", "parquet")
    killed.write_table("scores", frame(spark, 500))
    killed.add_json("report.json", {"run": "killed"})
    killed._save_journal("committed")  # the commit point; the process dies right after it
    del killed
    assertDataFrameEqual(spark.read.parquet(str(tmp_path / "scores")), frame(spark, 0))

    StagedOutputs(spark, str(tmp_path), "next", "parquet").recover()
    assertDataFrameEqual(spark.read.parquet(str(tmp_path / "scores")), frame(spark, 500))
    assert '"killed"' in (tmp_path / "report.json").read_text()
    assert leftovers(tmp_path) == []


def test_a_job_writing_other_tables_in_the_same_folder_is_left_alone(
    spark: SparkSession, tmp_path: Path
) -> None:
    running = StagedOutputs(spark, str(tmp_path), "running")
    running.write_table("features", frame(spark, 0))
    beside = StagedOutputs(spark, str(tmp_path), "beside")
    beside.write_table("predictions", frame(spark, 7))
    beside.commit()
    assert leftovers(tmp_path) == ["_journal-running.json"]
    running.commit()
    assertDataFrameEqual(delta(spark, tmp_path / "features"), frame(spark, 0))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
@pytest.mark.slow
def test_tables_of_one_job_written_from_two_threads_commit_and_abort_together(
    spark: SparkSession, tmp_path: Path, fmt: str
) -> None:
    def read(name: str) -> DataFrame:
        return spark.read.format(fmt).load(str(tmp_path / name))

    def both(outputs: StagedOutputs, start: int) -> None:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(outputs.write_table, "valid", frame(spark, start)),
                pool.submit(outputs.write_table, "quarantine", frame(spark, start + 1000, 5)),
            ]
            for future in futures:
                future.result()

    first = StagedOutputs(spark, str(tmp_path), "first", fmt)
    both(first, 0)
    first.add_json("report.json", {"run": "first"})
    first.commit()
    second = StagedOutputs(spark, str(tmp_path), "second", fmt)
    both(second, 500)
    if fmt == "delta":
        assert second.table_versions() == {"valid": 1, "quarantine": 1}
    second.abort()
    assertDataFrameEqual(read("valid"), frame(spark, 0))
    assertDataFrameEqual(read("quarantine"), frame(spark, 1000, 5))
    assert leftovers(tmp_path) == []


def test_a_parquet_output_replaced_by_delta_comes_back_if_the_job_fails(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "features"
    write_table_atomically(spark, frame(spark, 0), str(output), "parquet")
    outputs = StagedOutputs(spark, str(tmp_path), "to-delta")
    outputs.write_table("features", frame(spark, 500).withColumnRenamed("name", "label"))
    assertDataFrameEqual(delta(spark, output), frame(spark, 500).withColumnRenamed("name", "label"))
    outputs.abort()
    assert not (output / "_delta_log").exists()
    assertDataFrameEqual(spark.read.parquet(str(output)), frame(spark, 0))


@pytest.mark.slow
def test_a_changed_schema_replaces_the_delta_table_schema(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "t"
    write_table_atomically(spark, frame(spark, 0), str(output))
    changed = frame(spark, 0).selectExpr("cast(id AS string) AS id", "1.5 AS score")
    write_table_atomically(spark, changed, str(output))
    assertDataFrameEqual(delta(spark, output), changed)


def test_an_unknown_output_format_is_refused_before_writing(
    spark: SparkSession, tmp_path: Path
) -> None:
    from spark_jobs.services.table_io import InputError

    with pytest.raises(InputError, match="unknown output format 'xlsx'"):
        write_table_atomically(spark, frame(spark, 0), str(tmp_path / "t"), "xlsx")
    assert not (tmp_path / "t").exists()


def table_properties(spark: SparkSession, path: Path) -> dict[str, str]:
    return dict(DeltaTable.forPath(spark, str(path)).detail().first()["properties"])


def file_statistics(spark: SparkSession, path: Path) -> list[dict[str, object]]:
    """The column statistics Delta kept for each data file of the table's latest version."""
    import json

    return [
        json.loads(row.stats)
        for row in spark.read.json(str(path / "_delta_log" / "*.json"))
        .where("add IS NOT NULL")
        .select("add.stats")
        .collect()
    ][-1:]


def test_configured_delta_properties_reach_a_new_table_and_bound_its_statistics(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "scores"
    properties = {"delta.dataSkippingStatsColumns": "id", "delta.appendOnly": "false"}
    write_table_atomically(spark, frame(spark, 0), str(output), "delta", properties)
    assert table_properties(spark, output) == properties
    assert [sorted(s["minValues"]) for s in file_statistics(spark, output)] == [["id"]]
    assertDataFrameEqual(delta(spark, output), frame(spark, 0))


@pytest.mark.slow
def test_an_overwrite_sets_changed_delta_properties_and_a_failed_job_restores_the_old_ones(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "scores"
    write_table_atomically(spark, frame(spark, 0), str(output))
    assert table_properties(spark, output) == {}
    outputs = StagedOutputs(
        spark, str(tmp_path), "lean", "delta", {"delta.dataSkippingNumIndexedCols": "0"}
    )
    outputs.write_table("scores", frame(spark, 100))
    assert table_properties(spark, output) == {"delta.dataSkippingNumIndexedCols": "0"}
    assert [sorted(s) for s in file_statistics(spark, output)] == [["numRecords"]]
    outputs.abort()
    assert table_properties(spark, output) == {}
    assertDataFrameEqual(delta(spark, output), frame(spark, 0))
    version = delta_version(spark, str(output))
    write_table_atomically(
        spark, frame(spark, 0), str(output), "delta", {"delta.dataSkippingNumIndexedCols": "32"}
    )
    write_table_atomically(
        spark, frame(spark, 0), str(output), "delta", {"delta.dataSkippingNumIndexedCols": "32"}
    )
    assert delta_version(spark, str(output)) == (version or 0) + 3  # one property commit only


@pytest.mark.slow
def test_an_overwrite_that_needs_column_mapping_sets_it_and_the_properties_in_one_commit(
    spark: SparkSession, tmp_path: Path
) -> None:
    output = tmp_path / "scores"
    write_table_atomically(spark, frame(spark, 0), str(output))
    version = delta_version(spark, str(output)) or 0
    spaced = frame(spark, 100).withColumnRenamed("name", "customer name")
    write_table_atomically(
        spark, spaced, str(output), "delta", {"delta.dataSkippingNumIndexedCols": "8"}
    )
    properties = table_properties(spark, output)
    properties.pop("delta.columnMapping.maxColumnId")  # Delta's own counter
    assert properties == {
        "delta.columnMapping.mode": "name",
        "delta.dataSkippingNumIndexedCols": "8",
    }
    assert delta_version(spark, str(output)) == version + 2  # properties, then the overwrite
    assertDataFrameEqual(delta(spark, output), spaced)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"delta.dataSkipingNumIndexedCols": "8"}, "Unknown configuration was specified"),
        ({"delta.dataSkippingNumIndexedCols": "-5"}, "larger than or equal to -1"),
    ],
)
def test_delta_properties_delta_refuses_fail_before_anything_is_written(
    spark: SparkSession, tmp_path: Path, properties: dict[str, str], message: str
) -> None:
    from spark_jobs.services.table_io import InputError

    with pytest.raises(InputError, match=f"outputs.delta_properties: .*{message}"):
        write_table_atomically(spark, frame(spark, 0), str(tmp_path / "t"), "delta", properties)
    assert list(tmp_path.iterdir()) == []


def test_statistics_columns_an_output_lacks_are_named_before_it_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    from spark_jobs.services.table_io import InputError

    properties = {"delta.dataSkippingStatsColumns": "id, `amount`, name.first"}
    with pytest.raises(InputError, match="names 'amount', which output 't' does not have"):
        write_table_atomically(spark, frame(spark, 0), str(tmp_path / "t"), "delta", properties)
    assert list(tmp_path.iterdir()) == []


def test_delta_properties_in_conf_are_typed_and_spelled_as_delta_takes_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "lean.yaml").write_text(
        "outputs:\n  delta_properties:\n    delta.dataSkippingNumIndexedCols: 8\n"
        "    delta.appendOnly: false\n"
    )
    outputs = load_settings("lean", tmp_path).outputs
    assert outputs.table_properties() == {
        "delta.dataSkippingNumIndexedCols": "8",
        "delta.appendOnly": "false",
    }


@pytest.mark.parametrize("env", ["local", "test", "cluster"])
def test_the_configured_delta_jar_matches_the_installed_delta_spark(env: str) -> None:
    coordinate = load_settings(env).delta.coordinate
    assert coordinate.rsplit(":", 1)[1] == version("delta-spark"), coordinate
