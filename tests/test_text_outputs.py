"""Small text outputs (a suggested suite, reports) on any Hadoop URI, replaced atomically."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from spark_jobs.cli import main
from spark_jobs.services.table_io import Storage


def test_rewriting_a_text_file_never_leaves_a_moment_without_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    storage = Storage(spark)
    path = str(tmp_path / "suite.yaml")
    storage.write_text(path, "version 0\n")
    seen: list[str] = []
    missing = 0
    writing = threading.Event()
    writing.set()

    def read() -> None:
        nonlocal missing
        target = tmp_path / "suite.yaml"
        while writing.is_set() and len(seen) + missing < 200_000:
            try:
                seen.append(target.read_text())
            except FileNotFoundError:
                missing += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 41):
            storage.write_text(path, f"version {version}\n")
    finally:
        writing.clear()
        reader.join(timeout=60)
    assert missing == 0, f"the file was missing {missing} times while it was rewritten"
    assert set(seen) <= {f"version {v}\n" for v in range(41)}
    assert (tmp_path / "suite.yaml").read_text() == "version 40\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "suite.yaml"
    ]


def test_suggest_writes_to_a_uri_output_not_a_local_path_named_after_it(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "orders.parquet"
    spark.createDataFrame(
        [(i, float(i)) for i in range(1, 21)], "id long, amount double"
    ).write.parquet(str(source))
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "suites" / "orders.yaml"
    code = main(["suggest", "--input", str(source), "--output", target.as_uri()])
    assert code == 0
    assert "suite: orders" in target.read_text()
    assert not (tmp_path / "file:").exists()
