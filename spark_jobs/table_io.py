"""Reading inputs and writing outputs; the only module of the jobs that touches storage.

Outputs are written to a staging folder beside their final place and moved in only when
every output of the job is complete, so a failed or killed job never leaves a half-written table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from spark_jobs.errors import UserError

FORMATS = ("parquet", "csv", "json", "delta", "orc")
# Text formats keep lines that do not parse here (the raw line), instead of dropping them.
MALFORMED_COLUMN = "_lakegate_malformed"


class InputError(UserError):
    """An input that cannot be read as given."""


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "desc", None) or str(exc)
    if isinstance(exc, Py4JJavaError):
        text = exc.java_exception.toString()
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


class Storage:
    """Hadoop FileSystem operations on any URI Spark can reach (local, HDFS, S3, ...)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str) -> tuple[Any, Any]:
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath, jpath.getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        """Whether anything exists at `path`."""
        jpath, fs = self._path(path)
        return bool(fs.exists(jpath))

    def is_dir(self, path: str) -> bool:
        """Whether `path` is a directory."""
        jpath, fs = self._path(path)
        return bool(fs.exists(jpath) and fs.getFileStatus(jpath).isDirectory())

    def delete(self, path: str) -> None:
        """Delete `path` recursively if it exists."""
        jpath, fs = self._path(path)
        if fs.exists(jpath):
            fs.delete(jpath, True)

    def rename(self, source: str, target: str) -> None:
        """Move `source` to `target`, creating the parent folder."""
        jsource, fs = self._path(source)
        jtarget = self._jvm.org.apache.hadoop.fs.Path(target)
        fs.mkdirs(jtarget.getParent())
        if not fs.rename(jsource, jtarget):
            raise OSError(f"could not move {source} to {target}")

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file atomically (temporary file, then rename)."""
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        jtemp, fs = self._path(temporary)
        fs.setWriteChecksum(False)
        stream = fs.create(jtemp, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        self.delete(path)
        self.rename(temporary, path)

    def children(self, path: str) -> list[str]:
        """The names directly under a folder (none if it does not exist)."""
        jpath, fs = self._path(path)
        if not fs.exists(jpath):
            return []
        return [status.getPath().getName() for status in fs.listStatus(jpath)]

    def read_text(self, path: str) -> str:
        """Read a small text file."""
        jpath, fs = self._path(path)
        stream = fs.open(jpath)
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            lines = []
            while (line := reader.readLine()) is not None:
                lines.append(line)
            return "\n".join(lines)
        finally:
            stream.close()


def detect_format(source: str, storage: Storage, fmt: str | None = None) -> str | None:
    """The format of a path from the flag, its suffix or its content; None for a table name."""
    if fmt == "table":
        return None
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    lowered = source.rstrip("/").lower()
    for candidate in FORMATS:
        if lowered.endswith(f".{candidate}"):
            return candidate
    if "/" not in source and "\\" not in source and not storage.exists(source):
        return None  # a catalog table name
    if storage.exists(f"{source.rstrip('/')}/_delta_log"):
        return "delta"
    if storage.is_dir(source):
        return "parquet"
    raise InputError(
        f"cannot tell the format of {source!r} from its name; pass --format ({', '.join(FORMATS)})"
    )


def read_table(
    spark: SparkSession, source: str, fmt: str | None = None, *, keep_malformed: bool = True
) -> DataFrame:
    """Read a path (parquet, csv, json, delta, orc) or a catalog table, resolving its schema now.

    Lines of a CSV or JSON file that do not parse are kept, with their raw text in
    `_lakegate_malformed`, when `keep_malformed` is true (the quality gate quarantines them);
    otherwise Spark's permissive reading applies and that column is not added.

    Raises:
        InputError: the input is missing, unreadable or corrupt; the message says which.
    """
    storage = Storage(spark)
    resolved = fmt
    try:
        resolved = detect_format(source, storage, fmt)
        if resolved is None:
            if not spark.catalog.tableExists(source):
                raise InputError(
                    f"input {source!r} is neither an existing path nor a table in the catalog; "
                    "check the path (relative paths start from the current folder)"
                )
            df = spark.table(source)
        else:
            if not storage.exists(source):
                raise InputError(f"input {source!r} does not exist")
            df = _read_path(spark, source, resolved, keep_malformed)
        df.schema  # noqa: B018  (forces schema resolution, where corrupt files show)
    except InputError:
        raise
    except (CapturedException, Py4JJavaError) as exc:
        kind = resolved or "table"
        raise InputError(
            f"cannot read {source!r} as {kind}: {_first_line(exc)}; check that the file is "
            "complete and of that format (or pass --format)"
        ) from None
    if not df.columns:
        raise InputError(f"input {source!r} has no columns (is it empty or not {resolved}?)")
    duplicated = sorted({c for c in df.columns if df.columns.count(c) > 1})
    if duplicated:
        raise InputError(f"input {source!r} has duplicate column names: {', '.join(duplicated)}")
    return df


def _read_path(spark: SparkSession, source: str, fmt: str, keep_malformed: bool) -> DataFrame:
    if fmt not in {"csv", "json"}:
        return spark.read.format(fmt).load(source)
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", True).option("inferSchema", True)
    if not keep_malformed:
        return reader.load(source)
    inferred = reader.load(source).schema
    schema = StructType(
        [f for f in inferred.fields if f.name not in {MALFORMED_COLUMN, "_corrupt_record"}]
        + [StructField(MALFORMED_COLUMN, StringType(), True)]
    )
    reader = spark.read.format(fmt).schema(schema).option("mode", "PERMISSIVE")
    reader = reader.option("columnNameOfCorruptRecord", MALFORMED_COLUMN)
    if fmt == "csv":
        reader = reader.option("header", True)
    return reader.load(source)


class StagedOutputs:
    """Outputs of one job, written under a staging folder and moved in together on commit."""

    def __init__(self, spark: SparkSession, root: str, run_id: str) -> None:
        self.storage = Storage(spark)
        self.root = root.rstrip("/")
        self.run_id = run_id
        self.staging = f"{self.root}/_staging-{run_id}"
        self._tables: list[str] = []
        self._files: dict[str, str] = {}
        self.recover()

    def recover(self) -> None:
        """Finish what a killed job left: put back outputs it had moved aside, drop its staging.

        A job killed inside `commit` may have moved an earlier output to `_replaced-<run>` and
        not yet moved the new one in; that earlier output goes back to its place.
        """
        for entry in self.storage.children(self.root):
            folder = f"{self.root}/{entry}"
            if entry.startswith("_replaced-"):
                for name in self.storage.children(folder):
                    if not self.storage.exists(self.final(name)):
                        self.storage.rename(f"{folder}/{name}", self.final(name))
                self.storage.delete(folder)
            elif entry.startswith("_staging-"):
                self.storage.delete(folder)

    def final(self, name: str) -> str:
        """The final location of output `name`."""
        return f"{self.root}/{name}"

    def write_table(self, name: str, df: DataFrame, fmt: str = "parquet") -> None:
        """Write `df` to the staging place of output `name` (overwriting an earlier attempt)."""
        writer = df.write.mode("overwrite").format(fmt)
        if fmt == "csv":
            writer = writer.option("header", True)
        writer.save(f"{self.staging}/{name}")
        self._tables.append(name)

    def add_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Stage a JSON document as output `name`."""
        self._files[name] = json.dumps(data, indent=2, default=str) + "\n"

    def commit(self) -> None:
        """Move every staged output into place, replacing earlier versions."""
        trash = f"{self.root}/_replaced-{self.run_id}"
        for name in self._tables:
            if self.storage.exists(self.final(name)):
                self.storage.rename(self.final(name), f"{trash}/{name}")
            self.storage.rename(f"{self.staging}/{name}", self.final(name))
        for name, text in self._files.items():
            self.storage.write_text(self.final(name), text)
        self.storage.delete(trash)
        self.storage.delete(self.staging)

    def abort(self) -> None:
        """Discard everything staged; earlier outputs stay as they were."""
        self.storage.delete(self.staging)


def write_table_atomically(
    spark: SparkSession, df: DataFrame, output: str, fmt: str = "parquet"
) -> str:
    """Write one table to `output` through a staging folder moved into place; return `output`.

    Raises:
        InputError: the format is unknown.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    output = output.rstrip("/")
    root, name = output.rsplit("/", 1) if "/" in output else (".", output)
    staged = StagedOutputs(spark, root, uuid.uuid4().hex[:12])
    try:
        staged.write_table(name, df, fmt)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return output
