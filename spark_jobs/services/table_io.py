"""Reading inputs and writing outputs; the only module of the jobs that touches storage.

Outputs are Delta tables by default: each overwrite is one transaction, and a journal lets a
failed or killed job's tables go back to their earlier versions. Parquet and the other formats
are written to a staging folder and moved in only when every output of the job is complete.
Either way a job never leaves a half-written table, and all of its outputs change together.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from lakegate_errors import EnvironmentProblem, UserError, WriteConflict
from spark_jobs.services.session import jvm_of

FORMATS = ("parquet", "csv", "json", "delta", "orc")
OUTPUT_FORMATS = ("delta", "parquet", "csv", "json", "orc")
# Text formats keep lines that do not parse here (the raw line), instead of dropping them.
MALFORMED_COLUMN = "_lakegate_malformed"
_COMMIT_FILE = re.compile(r"\d{20}\.json")


class InputError(UserError):
    """An input that cannot be read as given."""


class OutputConflict(WriteConflict):
    """Another run writes one of this job's outputs; this job stopped (exit 5)."""


class OutputSpaceExhausted(EnvironmentProblem):
    """The file system holding the outputs is full (or over quota); nothing was committed."""


_NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|EDQUOT")


# A run holds each output it writes with a claim file (`.lakegate-writers/<name>.json`),
# renewed every _RENEW_SECONDS; one not renewed for LEASE_SECONDS belongs to a dead run.
LEASE_SECONDS = 60.0
_RENEW_SECONDS = 10.0
_CLAIMS_FOLDER = ".lakegate-writers"
_HOST = socket.gethostname()
# Delta's optimistic concurrency refusing a commit (io.delta.exceptions.*).
_DELTA_CONFLICT = re.compile(
    r"io\.delta\.exceptions\.\w+|Concurrent\w*Exception|ProtocolChangedException|"
    r"MetadataChangedException|DeltaConcurrentModificationException"
)


def _error_chain(exc: BaseException) -> str:
    """What an error says and, for a Java one, every cause beneath it (class and message)."""
    texts = [f"{type(exc).__name__}: {exc} {getattr(exc, 'desc', '')}"]
    cause = exc.java_exception if isinstance(exc, Py4JJavaError) else getattr(exc, "_origin", None)
    while cause is not None and len(texts) < 20:
        texts.append(str(cause.toString()))
        cause = cause.getCause()
    return "\n".join(texts)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "desc", None) or str(exc)
    if isinstance(exc, Py4JJavaError):
        text = exc.java_exception.toString()
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


class Storage:
    """Hadoop FileSystem operations on any URI Spark can reach (local, HDFS, S3, ...)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = jvm_of(spark)
        self._gateway: Any = spark.sparkContext._gateway
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
        """Write a small text file whole: a temporary file, then renamed over `path`.

        A reader sees the old file or the new one, never none: a local file is replaced in one
        step (`os.replace`, rename(2); Hadoop's local file systems delete the target first),
        others by `FileContext.rename` with `OVERWRITE` (atomic on HDFS; object stores copy,
        as every rename there).
        """
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        jtemp, fs = self._path(temporary)
        fs.setWriteChecksum(False)
        try:
            stream = fs.create(jtemp, True)
            try:
                stream.write(bytearray(text.encode("utf-8")))
            finally:
                stream.close()
        except Exception:  # a full disk, say: leave no partial temporary file behind
            with contextlib.suppress(Exception):
                self.delete(temporary)
            raise
        try:
            self._rename_over(jtemp, self._jvm.org.apache.hadoop.fs.Path(path))
        except Exception:
            self.delete(temporary)
            raise

    def _rename_over(self, jsource: Any, jtarget: Any) -> None:
        fs = jtarget.getFileSystem(self._conf)
        fs.mkdirs(jtarget.getParent())
        if fs.getUri().getScheme() == "file":
            source, target = (fs.makeQualified(p).toUri().getPath() for p in (jsource, jtarget))
            os.replace(source, target)
            return
        hadoop = self._jvm.org.apache.hadoop.fs
        context = hadoop.FileContext.getFileContext(jtarget.toUri(), self._conf)
        overwrite = self._gateway.new_array(hadoop.Options.Rename, 1)
        overwrite[0] = hadoop.Options.Rename.OVERWRITE
        context.rename(jsource, jtarget, overwrite)

    def _local(self, path: str) -> str | None:
        """The operating system's path of `path` when it is on the local file system."""
        jpath, fs = self._path(path)
        if fs.getUri().getScheme() != "file":
            return None
        return str(fs.makeQualified(jpath).toUri().getPath())

    def create_new(self, path: str, text: str) -> bool:
        """Create `path` holding `text` only if nothing is there; whether this call created it.

        Exclusive locally (`O_CREAT | O_EXCL`) and on HDFS (`create` without overwrite); object
        stores check and create in two steps, so two writers there can both succeed.
        """
        local = self._local(path)
        if local is None:
            jpath, fs = self._path(path)
            try:
                stream = fs.create(jpath, False)
            except Py4JJavaError as exc:
                if "FileAlreadyExistsException" in exc.java_exception.toString():
                    return False
                raise
            try:
                stream.write(bytearray(text.encode("utf-8")))
            finally:
                stream.close()
            return True
        for _ in range(3):  # the folder may vanish between makedirs and open (a release)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                descriptor = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            except FileNotFoundError:
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            return True
        raise OSError(f"could not create {path}: its folder keeps disappearing")

    def age_seconds(self, path: str) -> float | None:
        """Seconds since `path` was last modified, or None when it does not exist."""
        jpath, fs = self._path(path)
        try:
            modified = float(fs.getFileStatus(jpath).getModificationTime()) / 1000
        except Py4JJavaError:
            return None
        return max(0.0, time.time() - modified)

    def touch(self, path: str) -> None:
        """Set the modification time of an existing file to now."""
        local = self._local(path)
        if local is not None:
            with contextlib.suppress(FileNotFoundError):
                os.utime(local)
            return
        jpath, fs = self._path(path)
        fs.setTimes(jpath, int(time.time() * 1000), -1)

    def remove_empty_folder(self, path: str) -> None:
        """Delete the folder `path` if it exists and is empty."""
        jpath, fs = self._path(path)
        with contextlib.suppress(Py4JJavaError):
            if fs.exists(jpath) and not fs.listStatus(jpath):
                fs.delete(jpath, False)

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
    return _read(spark, source, fmt, keep_malformed, pin=False)[0]


def read_pinned(
    spark: SparkSession, source: str, fmt: str | None = None, *, keep_malformed: bool = True
) -> tuple[DataFrame, int | None]:
    """`read_table`, with a Delta path read at its current version, and that version.

    Every scan of the frame then sees that one snapshot, however often another job appends
    meanwhile (a Delta frame read without a version sees the latest at each action). The
    version is None for other formats and for catalog tables.

    Raises:
        InputError: as `read_table`.
    """
    return _read(spark, source, fmt, keep_malformed, pin=True)


def _read(
    spark: SparkSession, source: str, fmt: str | None, keep_malformed: bool, *, pin: bool
) -> tuple[DataFrame, int | None]:
    storage = Storage(spark)
    version: int | None = None
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
            if pin and resolved == "delta":
                version = delta_version(spark, source)
            df = _read_path(spark, source, resolved, keep_malformed, version)
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
    return df, version


def _read_path(
    spark: SparkSession, source: str, fmt: str, keep_malformed: bool, version: int | None = None
) -> DataFrame:
    if version is not None:
        return spark.read.format(fmt).option("versionAsOf", version).load(source)
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


def require_delta(spark: SparkSession) -> None:
    """Fail clearly when Delta Lake is not on the session's classpath.

    Raises:
        EnvironmentProblem: the Delta jar is missing (a hand-written spark-submit, usually).
    """
    jvm = jvm_of(spark)
    if not jvm.org.apache.spark.util.Utils.classIsLoadable("io.delta.tables.DeltaTable"):
        raise EnvironmentProblem(
            "Delta Lake is not on Spark's classpath, and outputs are written as Delta tables. "
            "Run the job through `lakegate submit`, which adds it, or give spark-submit "
            "--packages io.delta:delta-spark_2.12:<version> with the Delta session settings, "
            "or set outputs.format: parquet in conf/<env>.yaml"
        )


# Characters Delta (and parquet) refuse in column names unless the table maps its columns.
_DELTA_INVALID_NAME_CHARS = frozenset(" ,;{}()\n\t=")
# Delta's column mapping by name: the physical parquet names are generated, any name is allowed.
DELTA_COLUMN_MAPPING = {
    "delta.columnMapping.mode": "name",
    "delta.minReaderVersion": "2",
    "delta.minWriterVersion": "5",
}


def needs_column_mapping(columns: Collection[str]) -> bool:
    """Whether a column name has a character Delta accepts only with column mapping."""
    return any(_DELTA_INVALID_NAME_CHARS & set(c) for c in columns)


def _table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The table properties of the Delta table at `path`."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).detail().select("properties").first()
    return dict(row[0]) if row and row[0] else {}


def _set_table_properties(spark: SparkSession, path: str, properties: Mapping[str, str]) -> None:
    """One `ALTER TABLE SET TBLPROPERTIES` commit on the Delta table at `path`."""
    settings = ", ".join(f"{_sql_string(k)} = {_sql_string(v)}" for k, v in properties.items())
    quoted = path.replace("`", "``")
    spark.sql(f"ALTER TABLE delta.`{quoted}` SET TBLPROPERTIES ({settings})")


def check_delta_properties(spark: SparkSession, properties: Mapping[str, str]) -> None:
    """Ask Delta whether it accepts `properties` as table properties, before any work is done.

    Raises:
        InputError: Delta's reason (an unknown `delta.` key, a value out of range) and the fix.
    """
    if not properties:
        return
    jvm = jvm_of(spark)
    table = jvm.java.util.HashMap()
    for key, value in properties.items():
        table.put(key, value)
    scala_map = (
        jvm.scala.collection.JavaConverters.mapAsScalaMapConverter(table)
        .asScala()
        .toMap(jvm.scala.Predef.conforms())
    )
    try:
        jvm.org.apache.spark.sql.delta.DeltaConfigs.validateConfigurations(scala_map)
    except (Py4JJavaError, CapturedException) as exc:
        reason = _first_line(exc)
        if isinstance(exc, Py4JJavaError):
            reason = str(exc.java_exception.getMessage() or reason).strip().splitlines()[0]
        raise InputError(
            f"outputs.delta_properties: Delta refuses them: {reason}. Fix the key or value in "
            "conf/<env>.yaml (Delta's table properties: "
            "https://docs.delta.io/latest/table-properties.html)"
        ) from None


def _stats_columns(value: str) -> list[str]:
    """The top-level column of each `delta.dataSkippingStatsColumns` entry (`a`, `a.b`)."""
    names = []
    for match in re.finditer(r"\s*(`(?:[^`]|``)*`|[^,.`]+)(?:\.[^,]*)?\s*(?:,|$)", value):
        name = match.group(1).strip()
        names.append(name[1:-1].replace("``", "`") if name.startswith("`") else name)
    return [n for n in names if n]


def _sql_string(text: str) -> str:
    """`text` as a Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _update_table_properties(
    spark: SparkSession,
    path: str,
    properties: Mapping[str, str],
    *,
    column_mapping: bool = False,
) -> None:
    """Bring an existing Delta table's properties in line: one read, at most one commit.

    Sets the `properties` whose values differ and, with `column_mapping`, turns on column
    mapping by name unless the table has it.
    """
    if not properties and not column_mapping:
        return
    current = _table_properties(spark, path)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if column_mapping and current.get("delta.columnMapping.mode") != "name":
        changed.update(DELTA_COLUMN_MAPPING)
    if changed:
        _set_table_properties(spark, path, changed)


def delta_version(spark: SparkSession, path: str) -> int | None:
    """The latest committed version of the Delta table at `path`, or None if it is not one.

    Read from the commit files' names in `_delta_log/`, as Delta itself finds the latest
    version: a listing, where asking Delta for its history would run a Spark job.
    """
    commits = [
        int(name[:20])
        for name in Storage(spark).children(f"{path.rstrip('/')}/_delta_log")
        if _COMMIT_FILE.fullmatch(name)
    ]
    return max(commits) if commits else None


# The runs of this process that hold claims, by run id (`_holder_alive` asks it; the renewing
# thread walks it). Weak: a run object dropped without commit or abort is as good as killed.
_live_runs: weakref.WeakValueDictionary[str, StagedOutputs] = weakref.WeakValueDictionary()
_renewer_lock = threading.Lock()
_renewer: list[threading.Thread] = []


def _renew_claims_forever() -> None:
    """Renew every claim of the live runs of this process, every _RENEW_SECONDS."""
    while True:
        time.sleep(_RENEW_SECONDS)
        for outputs in list(_live_runs.values()):
            with contextlib.suppress(Exception):  # a run ending meanwhile; the JVM going down
                outputs.renew_claims()


def _hold(outputs: StagedOutputs) -> None:
    """Count `outputs` among this process's live runs and make sure its claims are renewed."""
    _live_runs[outputs.run_id] = outputs
    with _renewer_lock:
        if not _renewer:
            thread = threading.Thread(
                target=_renew_claims_forever, name="lakegate-claims", daemon=True
            )
            thread.start()
            _renewer.append(thread)


def _holder_alive(holder: Mapping[str, Any], age: float) -> bool:
    """Whether the run that wrote claim `holder`, last renewed `age` seconds ago, still runs.

    A claim renewed within LEASE_SECONDS is live unless its process is known to be gone: a
    process of this host that no longer exists, or a run of this process that ended.
    """
    if age >= LEASE_SECONDS:
        return False
    pid = holder.get("pid")
    if holder.get("host") != _HOST or not isinstance(pid, int):
        return True
    if pid == os.getpid():
        return holder.get("run_id") in _live_runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StagedOutputs:
    """The outputs of one job: all of them replace the earlier ones, or none does.

    A journal beside the outputs (`_journal-<run>.json`) is the job's write-ahead log. Delta
    tables are overwritten in place, each in one transaction, after the journal noted the
    version they had; other formats are written to a staging folder. `commit` marks the journal
    committed (with the small files to write), then moves staged tables in and writes the files.
    If the job fails, `abort` restores each Delta table to its noted version; if it is killed,
    the next job writing one of its tables does the same (`recover`), or finishes the moves of
    a committed journal.

    One run writes a given table at a time: before its first write to a table the run claims
    it (`.lakegate-writers/<name>.json` beside the outputs, created exclusively, renewed while
    the run lives, removed at commit or abort). A second run finding a live claim stops with
    `OutputConflict` (exit 5) before writing; a claim of a dead run is taken over, and its
    journal recovered. Delta refusing a commit because another writer committed first is the
    same conflict.
    """

    def __init__(
        self,
        spark: SparkSession,
        root: str,
        run_id: str,
        fmt: str = "delta",
        delta_properties: Mapping[str, str] | None = None,
    ) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise InputError(
                f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}"
            )
        self.delta_properties = dict(delta_properties or {}) if fmt == "delta" else {}
        if self.delta_properties:
            require_delta(spark)
            check_delta_properties(spark, self.delta_properties)
        self.spark = spark
        self.storage = Storage(spark)
        self.root = root.rstrip("/")
        self.run_id = run_id
        self.format = fmt
        self._tables: dict[str, dict[str, Any]] = {}
        self._files: dict[str, str] = {}
        self._claimed: set[str] = set()
        self._lock = threading.RLock()

    @classmethod
    def for_table(
        cls,
        spark: SparkSession,
        output: str,
        run_id: str,
        fmt: str = "delta",
        delta_properties: Mapping[str, str] | None = None,
    ) -> tuple[StagedOutputs, str]:
        """Outputs in the folder that holds `output`, and the table name `output` has there."""
        output = output.rstrip("/")
        root, name = output.rsplit("/", 1) if "/" in output else (".", output)
        return cls(spark, root, run_id, fmt, delta_properties), name

    def check_columns(self, name: str, columns: Collection[str]) -> None:
        """Refuse a `delta.dataSkippingStatsColumns` naming a column output `name` lacks.

        Raises:
            InputError: naming the columns, the output and the fix.
        """
        listed = self.delta_properties.get("delta.dataSkippingStatsColumns")
        if not listed:
            return
        present = {c.lower() for c in columns}
        missing = [c for c in _stats_columns(listed) if c.lower() not in present]
        if missing:
            raise InputError(
                f"outputs.delta_properties: delta.dataSkippingStatsColumns names "
                f"{', '.join(repr(c) for c in missing)}, which output {name!r} does not have "
                f"(its columns: {', '.join(columns)}); name only columns every Delta output of "
                "the job has, or bound the statistics with delta.dataSkippingNumIndexedCols"
            )

    def final(self, name: str) -> str:
        """The final location of output `name`."""
        return f"{self.root}/{name}"

    def _staging(self, run_id: str) -> str:
        return f"{self.root}/_staging-{run_id}"

    def _aside(self, run_id: str) -> str:
        return f"{self.root}/_replaced-{run_id}"

    def _journal_path(self, run_id: str) -> str:
        return f"{self.root}/_journal-{run_id}.json"

    def _save_journal(self, state: str) -> None:
        journal = {"run_id": self.run_id, "state": state, "tables": self._tables}
        if state == "committed":
            journal["files"] = self._files
        self.storage.write_text(self._journal_path(self.run_id), json.dumps(journal, indent=2))

    def write_table(self, name: str, df: DataFrame) -> None:
        """Write `df` as output `name`: a Delta overwrite in place, or a staged copy.

        Different tables of one job may be written from several threads at once (the journal
        is updated under a lock; the Spark writes run side by side).

        Raises:
            OutputConflict: another run writes `name` (exit 5).
            OutputSpaceExhausted: the file system filled up; the write left no files behind.
        """
        with self._space_guard(self.final(name)):
            self._write_table(name, df)

    @contextlib.contextmanager
    def _space_guard(self, path: str, *, committed: bool = False) -> Iterator[None]:
        """Turn a full file system's error, in Java or Python, into `OutputSpaceExhausted`.

        With `committed`, the run's journal was already marked committed when it happened.
        """
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise self._no_space(path, str(exc), committed) from None
        except (Py4JJavaError, CapturedException) as exc:
            found = _NO_SPACE.search(_error_chain(exc))
            if not found:
                raise
            raise self._no_space(path, found.group(0), committed) from None

    def _no_space(self, path: str, detail: str, committed: bool) -> OutputSpaceExhausted:
        done = (
            "this run's tables are committed but its report files are not all written: the "
            "next run writing there writes them"
            if committed
            else "this run committed nothing and the previous outputs are unchanged"
        )
        return OutputSpaceExhausted(
            f"no space left on the file system holding {path!r} ({detail}); {done}. Free space "
            "there (or write --output to another file system) and run the job again"
        )

    def _write_table(self, name: str, df: DataFrame) -> None:
        self.check_columns(name, df.columns)
        with self._lock:
            self._claim(name)
            self.recover([name])
            entry: dict[str, Any] = {"format": self.format}
            self._tables[name] = entry
            if self.format == "delta":
                require_delta(self.spark)
                self._note_delta_table(name, entry)
            else:
                self._save_journal("writing")
        if self.format != "delta":
            writer = df.write.mode("overwrite").format(self.format)
            if self.format == "csv":
                writer = writer.option("header", True)
            writer.save(f"{self._staging(self.run_id)}/{name}")
            return
        final = self.final(name)
        writer = (
            df.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .option("userMetadata", f"lakegate run {self.run_id}")
        )
        mapping = needs_column_mapping(df.columns)
        if entry["previous_version"] is not None:
            _update_table_properties(
                self.spark, final, self.delta_properties, column_mapping=mapping
            )
        else:  # writer options become properties only on creation
            for key, value in self.delta_properties.items():
                writer = writer.option(key, value)
        if mapping:
            for key, value in DELTA_COLUMN_MAPPING.items():
                writer = writer.option(key, value)
        self._commit_delta(writer, name, entry)
        version = delta_version(self.spark, final)
        with self._lock:
            entry["version"] = version

    def _save_delta(self, writer: Any, name: str, entry: dict[str, Any]) -> None:
        """Commit one Delta write; another writer's commit in between is an `OutputConflict`.

        A write that fails before its commit leaves no data files behind (Delta never
        references them, but they would hold the space a full disk needs back).
        """
        final = self.final(name)
        before = set(self.storage.children(final))
        try:
            writer.save(final)
        except BaseException:
            if delta_version(self.spark, final) == entry["previous_version"]:
                self._remove_unreferenced(final, before)
            raise

    def _remove_unreferenced(self, final: str, before: set[str]) -> None:
        """Delete what a failed, uncommitted write added to a table's folder (not its log).

        Only this run can have added them: it holds the table's claim.
        """
        for child in set(self.storage.children(final)) - before:
            if child != "_delta_log":
                self.storage.delete(f"{final}/{child}")
        if not before:  # the table did not exist: no folder either
            self.storage.delete(final)

    def _commit_delta(self, writer: Any, name: str, entry: dict[str, Any]) -> None:
        """`_save_delta`; Delta refusing the commit for another writer's is `OutputConflict`."""
        try:
            self._save_delta(writer, name, entry)
        except (Py4JJavaError, CapturedException) as exc:
            if not _DELTA_CONFLICT.search(_error_chain(exc)):
                raise
            with self._lock:
                entry["conflict"] = True  # the table is the other writer's now: never restore
            raise OutputConflict(
                f"another writer committed to output {self.final(name)!r} while this run wrote "
                f"it (Delta refused this run's commit: {_first_line(exc)}); this run's outputs "
                "were rolled back. Run the job again once the other writer has finished"
            ) from None

    def _claim_path(self, name: str) -> str:
        return f"{self.root}/{_CLAIMS_FOLDER}/{name}.json"

    def _read_claim(self, path: str) -> dict[str, Any]:
        """A claim's record; empty when it is gone or still being written."""
        try:
            return dict(json.loads(self.storage.read_text(path)))
        except (ValueError, Py4JJavaError):
            return {}

    def _claim(self, name: str) -> None:
        """Hold output `name` for this run (under the lock).

        Raises:
            OutputConflict: a live run holds it; the message names that run and the fix.
        """
        if name in self._claimed:
            return
        path = self._claim_path(name)
        record = {
            "run_id": self.run_id,
            "host": _HOST,
            "pid": os.getpid(),
            "claimed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for _ in range(5):
            if self.storage.create_new(path, json.dumps(record)):
                self._claimed.add(name)
                _hold(self)
                return
            holder, age = self._read_claim(path), self.storage.age_seconds(path)
            if age is None:
                continue  # released meanwhile
            if _holder_alive(holder, age):
                raise self._conflict(name, holder)
            self._take_over(name, holder)
        raise self._conflict(name, self._read_claim(path))

    def _take_over(self, name: str, holder: Mapping[str, Any]) -> None:
        """Remove a dead run's claim on `name`, unless a live one replaced it meanwhile."""
        path = self._claim_path(name)
        aside = f"{path}.stale-{self.run_id}"
        try:
            self.storage.rename(path, aside)
        except (OSError, Py4JJavaError):
            return  # another run took it over first
        taken = self._read_claim(aside)
        if taken.get("run_id") != holder.get("run_id"):  # a fresh claim: put it back
            with contextlib.suppress(OSError, Py4JJavaError):
                self.storage.rename(aside, path)
            raise self._conflict(name, taken)
        self.storage.delete(aside)

    def _conflict(self, name: str, holder: Mapping[str, Any]) -> OutputConflict:
        who = (
            f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {holder.get('claimed_at', '?')})"
        )
        return OutputConflict(
            f"output {self.final(name)!r} is being written by another lakegate {who}; this run "
            "stopped without changing its outputs. Run the job again once that run has "
            f"finished (a run that died is taken over once its claim, "
            f"{self._claim_path(name)}, is {LEASE_SECONDS:.0f} s old)"
        )

    def renew_claims(self) -> None:
        """Mark this run's claims as live now (the renewing thread calls it)."""
        with self._lock:
            for name in self._claimed:
                self.storage.touch(self._claim_path(name))

    def _release_claims(self) -> None:
        """Remove this run's claims (those still its own), and their folder once empty."""
        for name in sorted(self._claimed):
            path = self._claim_path(name)
            if self._read_claim(path).get("run_id") == self.run_id:
                self.storage.delete(path)
        if self._claimed:
            self.storage.remove_empty_folder(f"{self.root}/{_CLAIMS_FOLDER}")
        self._claimed.clear()
        _live_runs.pop(self.run_id, None)

    def _note_delta_table(self, name: str, entry: dict[str, Any]) -> None:
        """Journal the version a Delta output has before it is overwritten (under the lock)."""
        final = self.final(name)
        entry["previous_version"] = delta_version(self.spark, final)
        entry["moved_aside"] = entry["previous_version"] is None and self.storage.exists(final)
        self._save_journal("writing")
        if entry["moved_aside"]:  # not a Delta table (say, parquet): keep it until commit
            self.storage.rename(final, f"{self._aside(self.run_id)}/{name}")

    def table_versions(self) -> dict[str, int]:
        """The Delta version each table written so far was committed as."""
        with self._lock:
            return {
                n: e["version"] for n, e in self._tables.items() if e.get("version") is not None
            }

    def read_written(self, name: str) -> DataFrame:
        """What this job wrote as table `name`, before `commit` makes it current."""
        entry = self._tables[name]
        if entry["format"] == "delta":
            reader = self.spark.read.format("delta")
            if delta_version(self.spark, self.final(name)) != entry["version"]:
                # Someone wrote since: time travel (a snapshot rebuilt from the log, 0.5-1 s).
                reader = reader.option("versionAsOf", entry["version"])
            return reader.load(self.final(name))
        reader = self.spark.read.format(entry["format"])
        if entry["format"] == "csv":
            reader = reader.option("header", True)
        return reader.load(f"{self._staging(self.run_id)}/{name}")

    def add_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Stage a JSON document as output `name`."""
        self.add_text(name, json.dumps(data, indent=2, default=str) + "\n")

    def add_text(self, name: str, text: str) -> None:
        """Stage a small text file (a report) as output `name`, written at commit."""
        self._files[name] = text

    def commit(self) -> None:
        """Make every output of the job the current one."""
        with self._lock:
            try:
                with self._space_guard(self.root):
                    try:
                        self._save_journal("committed")
                    except BaseException:  # not committed: the earlier outputs come back
                        self._undo(self.run_id, self._tables)
                        raise
                with self._space_guard(self.root, committed=True):
                    self._finish(self.run_id, self._tables, self._files)
            finally:  # a commit cut short after its journal is finished by the next run
                self._release_claims()

    def abort(self) -> None:
        """Discard what the job wrote; earlier outputs are current again.

        Call it once every thread writing a table of this job has returned.
        """
        with self._lock:
            try:
                self._undo(self.run_id, self._tables)
            finally:
                self._release_claims()

    def recover(self, names: Collection[str] | None = None) -> None:
        """Complete or undo what jobs killed while writing to this folder left.

        Only journals naming one of `names` (every journal, when None) are handled, so a job
        writing other tables in the same folder at the same time is left alone.
        """
        journals: dict[str, list[str]] = {}
        for entry in self.storage.children(self.root):
            if entry.startswith("_journal-"):
                run_id = entry.removeprefix("_journal-").split(".json", 1)[0]
                journals.setdefault(run_id, []).append(entry)
        for run_id, entries in journals.items():
            journal = self._read_journal(sorted(entries, key=lambda e: ".tmp-" in e))
            tables = journal.get("tables", {})
            if run_id == self.run_id or (names is not None and not set(names) & set(tables)):
                continue
            if journal.get("state") == "committed":
                self._finish(run_id, tables, journal.get("files", {}))
            else:
                self._undo(run_id, tables)
            for entry in entries:
                self.storage.delete(f"{self.root}/{entry}")
        for entry in self.storage.children(self.root):
            folder = f"{self.root}/{entry}"
            run_id = entry.split("-", 1)[-1]
            if run_id in journals:
                continue  # a running job's (its journal is written before these folders)
            if entry.startswith("_replaced-"):  # left by a job from before journals
                for name in self.storage.children(folder):
                    if not self.storage.exists(self.final(name)):
                        self.storage.rename(f"{folder}/{name}", self.final(name))
                self.storage.delete(folder)
            elif entry.startswith("_staging-"):
                self.storage.delete(folder)

    def _read_journal(self, entries: list[str]) -> dict[str, Any]:
        """The first readable of a run's journal files.

        A journal being replaced at the moment of a kill is read from the complete temporary
        file that was about to replace it; a temporary file cut short is skipped (its journal
        still existed then).
        """
        for entry in entries:
            with contextlib.suppress(ValueError):
                return dict(json.loads(self.storage.read_text(f"{self.root}/{entry}")))
        return {}

    def _finish(self, run_id: str, tables: Mapping[str, Any], files: Mapping[str, str]) -> None:
        staging, aside = self._staging(run_id), self._aside(run_id)
        for name, entry in tables.items():
            staged = f"{staging}/{name}"
            if entry["format"] != "delta" and self.storage.exists(staged):
                if self.storage.exists(self.final(name)):
                    self.storage.rename(self.final(name), f"{aside}/{name}")
                self.storage.rename(staged, self.final(name))
        for name, text in files.items():
            self.storage.write_text(self.final(name), text)
        self.storage.delete(aside)
        self.storage.delete(staging)
        self.storage.delete(self._journal_path(run_id))

    def _undo(self, run_id: str, tables: Mapping[str, Any]) -> None:
        from delta.tables import DeltaTable

        aside = self._aside(run_id)
        for name, entry in tables.items():
            if entry["format"] != "delta" or entry.get("conflict"):
                continue
            final, previous = self.final(name), entry.get("previous_version")
            if previous is None and entry.get("moved_aside"):
                if self.storage.exists(f"{aside}/{name}"):  # else it was never moved
                    self.storage.delete(final)
                    self.storage.rename(f"{aside}/{name}", final)
            elif previous is None:
                self.storage.delete(final)
            elif delta_version(self.spark, final) != previous:
                DeltaTable.forPath(self.spark, final).restoreToVersion(previous)
        self.storage.delete(aside)
        self.storage.delete(self._staging(run_id))
        self.storage.delete(self._journal_path(run_id))


def write_table_atomically(
    spark: SparkSession,
    df: DataFrame,
    output: str,
    fmt: str = "delta",
    delta_properties: Mapping[str, str] | None = None,
) -> str:
    """Write one table to `output`, replacing the earlier one whole or not at all; return `output`.

    Raises:
        InputError: the format is unknown, or Delta refuses `delta_properties`.
    """
    staged, name = StagedOutputs.for_table(
        spark, output, uuid.uuid4().hex[:12], fmt, delta_properties
    )
    try:
        staged.write_table(name, df)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return staged.final(name)
