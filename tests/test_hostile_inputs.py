"""Hostile CSV and JSON inputs through `lakegate validate`: nothing lost, never a traceback.

Broken quoting, bytes that are not UTF-8, a line of several megabytes, records cut short: each
file goes through one in-process `lakegate validate`. The run either refuses the input with
exit 2 and a message, or writes outputs in which every row read is either valid or
quarantined: the two tables together are the input as lakegate reads it, row for row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from checks.gate import ERRORS_COLUMN
from spark_jobs.cli import main
from spark_jobs.services.table_io import MALFORMED_COLUMN, read_table

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

LONG = "x" * 3_000_000  # one field of three million characters on one line

SUITE = (
    "suite: hostile\nchecks:\n  - name: rows\n    constraints:\n"
    "      - isComplete: id\n      - isNonNegative: n\n"
)

# name -> the file's bytes
INPUTS: dict[str, bytes] = {
    "broken_quoting.csv": (
        b'id,name,n\n1,"plain",1\n2,"never closed,2\n3,"a ""quoted"" word",3\n'
        b'4,mid"dle,4\n5,"line\nbreak",5\n6,"",-6\n"7,x,7\n'
    ),
    "latin1_and_nul.csv": (
        "id,name,n\n1,café,1\n2,naïve,2\n".encode("latin-1") + b"3,\x00\xff\xfe,3\n4,ok,-4\n"
    ),
    "very_long_line.csv": (
        b"id,name,n\n1,short,1\n2," + LONG.encode() + b',2\n3,after,3\n4,"' + LONG.encode() + b"\n"
    ),
    "broken_records.json": (
        b'{"id": 1, "name": "a", "n": 1}\n{"id": 2, "name": "b", "n": \n'
        b'{"id": 3, "name": "\xff\xfe", "n": 3}\n{"id": "four", "n": -4}\n'
        b'[1, 2, 3]\n{"id": 5, "name": "' + LONG.encode() + b'", "n": 5}\n'
        b'{"id": 6, "name": "unterminated\n{"id": 7}\n'
    ),
    "utf16_with_bom.csv": "id,name,n\n1,a,1\n2,b,2\n".encode("utf-16"),
}
# What each run ends with: 1 where a row breaks a rule of the suite (a line that does not parse
# alone is quarantined with exit 0); UTF-16 is read as one-byte text, so its header names no
# column of the suite (exit 2 before any write).
EXPECTED_EXIT = {
    "broken_quoting.csv": 1,
    "latin1_and_nul.csv": 1,
    "very_long_line.csv": 0,
    "broken_records.json": 1,
    "utf16_with_bom.csv": 2,
}


def _run(spark: SparkSession, tmp_path: Path, name: str) -> tuple[int, Path, Path]:
    source, suite, output = tmp_path / name, tmp_path / "suite.yaml", tmp_path / "out"
    source.write_bytes(INPUTS[name])
    suite.write_text(SUITE)
    args = ["validate", str(suite), "--input", str(source), "--output", str(output)]
    return main([*args, "--quiet", "--no-history", "--no-html-report"]), source, output


def _without_errors(df: DataFrame) -> DataFrame:
    return df.drop(ERRORS_COLUMN, MALFORMED_COLUMN)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_hostile_input_is_split_without_losing_a_row_or_refused_with_exit_2(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, source, output = _run(spark, tmp_path, name)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err.lower(), err
    assert code == EXPECTED_EXIT[name], err
    if code == 2:
        assert "unknown column 'id'" in err and not (output / "valid").exists(), err
        return
    report = json.loads((output / "report.json").read_text())
    counts = report["counts"]
    assert counts["rows_in"] == counts["rows_valid"] + counts["rows_quarantined"], counts
    read = read_table(spark, str(source)).cache()  # cached: Spark queries the raw line only so
    assert counts["rows_in"] == read.count()
    malformed = read.filter(F.col(MALFORMED_COLUMN).isNotNull()).count()
    assert report["quarantine_reasons"].get("parseable", 0) == malformed
    valid = spark.read.format("delta").load(str(output / "valid"))
    quarantine = spark.read.format("delta").load(str(output / "quarantine"))
    assert (valid.count(), quarantine.count()) == (
        counts["rows_valid"],
        counts["rows_quarantined"],
    )
    columns = _without_errors(read).columns
    assertDataFrameEqual(
        valid.select(columns).unionByName(_without_errors(quarantine).select(columns)),
        _without_errors(read),
    )
    assert valid.filter("id IS NULL OR n < 0").count() == 0  # a valid row broke no rule
