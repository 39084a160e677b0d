"""Reading model-job inputs and writing their outputs, apart from the logic.

An input is a path (parquet, csv or json by suffix, or by an explicit format) or a catalog
table name. An output is written to a staging folder beside it and then renamed into place, so a
reader never sees partial output and a re-run replaces the previous result instead of adding to it.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from spark_jobs.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FileFormat = Literal["parquet", "csv", "json"]
InputFormat = Literal["parquet", "csv", "json", "table"]
FILE_FORMATS: tuple[FileFormat, ...] = ("parquet", "csv", "json")
_TABLE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*){0,2}$")


def input_format(source: str, explicit: str | None = None) -> InputFormat:
    """Tell how to read `source`: the explicit format, else its suffix, else a folder or table.

    Raises:
        UserError: the format cannot be told from the source.

    """
    if explicit:
        if explicit not in (*FILE_FORMATS, "table"):
            raise UserError(f"unknown input format {explicit!r}; use parquet, csv, json or table")
        return explicit  # type: ignore[return-value]
    suffix = Path(source).suffix.lower().lstrip(".")
    if suffix in FILE_FORMATS:
        return suffix  # type: ignore[return-value]
    if Path(source).is_dir():
        return "parquet"
    if _TABLE_NAME.match(source):
        return "table"
    raise UserError(
        f"cannot tell the format of input {source!r}: name a .parquet, .csv or .json path, "
        "a table, or give the format explicitly"
    )


def read_input(spark: SparkSession, source: str, explicit_format: str | None = None) -> DataFrame:
    """Read a path or a catalog table as a DataFrame.

    Raises:
        UserError: the path or table does not exist.

    """
    kind = input_format(source, explicit_format)
    if kind == "table":
        if not spark.catalog.tableExists(source):
            raise UserError(f"input {source!r}: no such table (and no such file)")
        return spark.table(source)
    if "://" not in source and not Path(source).exists():
        raise UserError(f"input {source!r}: no such file or folder")
    reader = spark.read.format(kind)
    if kind == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(source)


def write_atomically(df: DataFrame, output: str | Path, file_format: FileFormat) -> Path:
    """Write `df` to `output` (a local folder) through a staging folder renamed into place.

    An existing output is replaced only once the new one is complete.

    Raises:
        UserError: the format is unknown.

    """
    if file_format not in FILE_FORMATS:
        raise UserError(f"unknown output format {file_format!r}; use parquet, csv or json")
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name}.staging-{token}"
    writer = df.write.mode("overwrite").format(file_format)
    if file_format == "csv":
        writer = writer.option("header", "true")
    try:
        writer.save(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = target.parent / f".{target.name}.previous-{token}"
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    return target
