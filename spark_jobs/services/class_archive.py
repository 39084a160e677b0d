"""The driver JVM's class-data archive: what every small job paid in class loading, paid once.

A local job spends seconds of its start loading and verifying Spark's, Deequ's and Delta's
classes. Java's application class-data sharing (CDS) keeps them, parsed and verified, in an
archive file that a later JVM maps at start. `python -m spark_jobs.jars` (run by `make setup`)
dumps one after a representative job (`-XX:ArchiveClassesAtExit`); every later session on this
machine starts with `-XX:SharedArchiveFile`, and so does every driver spark-submit starts here
(client deploy mode: `lakegate submit`, the Airflow DAG's tasks), whose command carries the same
options (`driver_archive_conf`). The Deequ and Delta jars go on the driver's class path too (they
stay in `spark.jars` for executors), so their classes are archived as well.

The archive is named for everything it depends on (the Java binary, pyspark's jars, the extra
class path), so a changed JVM or jar set simply finds no archive and starts as before; the JVM
itself also checks the archive and ignores one that does not match, silently.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import pyspark

from lakegate_config.settings import Settings

CLASS_PATH_KEY = "spark.driver.extraClassPath"
JAVA_OPTIONS_KEY = "spark.driver.extraJavaOptions"
_ARTIFACT = re.compile(r"^(.+?)-\d[^/]*\.jar$")


def java_binary() -> Path | None:
    """The `java` spark-submit starts: `$JAVA_HOME/bin/java`, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).is_file() else None


@lru_cache(maxsize=1)
def _spark_jars() -> tuple[Path, ...]:
    """The jars of the Spark the session runs (`$SPARK_HOME/jars`, pyspark's own by default)."""
    from pyspark.find_spark_home import _find_spark_home

    folder = Path(_find_spark_home()) / "jars"  # type: ignore[no-untyped-call]
    return tuple(sorted(folder.glob("*.jar"))) if folder.is_dir() else ()


def _identity(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{int(stat.st_mtime)}"


def archive_file(settings: Settings, class_path: list[str]) -> Path | None:
    """Where the archive for this JVM, pyspark and `class_path` lives (None when disabled)."""
    folder = settings.spark.class_archive
    java = java_binary()
    if folder is None or java is None or not class_path or not _spark_jars():
        return None
    parts = [_identity(java), pyspark.__version__, sys.platform]
    parts += [_identity(jar) for jar in _spark_jars()]
    parts += [_identity(Path(entry)) for entry in class_path if Path(entry).is_file()]
    parts += class_path
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]
    return settings.resolve(folder) / f"driver-{key}.jsa"


def _joined(existing: str | None, extra: str, separator: str) -> str:
    return f"{existing}{separator}{extra}" if existing else extra


def _artifact(name: str) -> str:
    found = _ARTIFACT.match(name)
    return found.group(1) if found else name


@lru_cache(maxsize=1)
def _spark_artifacts() -> frozenset[str]:
    return frozenset(_artifact(jar.name) for jar in _spark_jars())


def ships_with_spark(jar: str) -> bool:
    """Whether Spark's own jars hold this jar's artifact, in whatever version.

    Spark ships `<artifact>-<version>.jar`; Ivy names what it resolves
    `<organization>_<artifact>-<version>.jar` (`org.scala-lang_scala-reflect-2.12.10.jar`).
    """
    name, shipped = Path(jar).name, _spark_artifacts()
    return _artifact(name) in shipped or (
        "_" in name and _artifact(name.split("_", 1)[1]) in shipped
    )


def _driver_class_path(settings: Settings, jars: list[str]) -> list[str]:
    """The user's `spark.driver.extraClassPath` entries, then the local `jars`.

    A jar whose artifact Spark ships already is left out (it stays in `spark.jars`): ahead of
    Spark's own jars it would replace Spark's version (slf4j-api 1.7 for 2.0, scala-reflect
    2.12.10 for 2.12.18), while behind them, in `spark.jars`' loader, Spark's version wins.
    """
    configured = str(settings.spark.conf.get(CLASS_PATH_KEY, ""))
    added = [jar.removeprefix("file:") for jar in jars if not ships_with_spark(jar)]
    return [entry for entry in configured.split(os.pathsep) if entry] + added


def planned_archive(settings: Settings, jars: list[str]) -> Path | None:
    """The archive a session with these local `jars` maps, whether it exists yet or not."""
    return archive_file(settings, _driver_class_path(settings, jars)) if jars else None


def archive_conf(
    settings: Settings, conf: dict[str, str], jars: list[str], *, dump_to: Path | None = None
) -> dict[str, str]:
    """The driver settings that use (or, with `dump_to`, write) the class-data archive.

    `jars` are local jar files (the cached Deequ and Delta jars); without them, or with
    `spark.class_archive: null`, nothing changes. The user's own driver class path and Java
    options are kept, the archive's appended.
    """
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # spark-submit started the JVM already
        return {}
    return driver_archive_conf(settings, conf, jars, dump_to=dump_to)


def driver_archive_conf(
    settings: Settings, conf: dict[str, str], jars: list[str], *, dump_to: Path | None = None
) -> dict[str, str]:
    """`archive_conf` for a driver JVM not started yet, whoever starts it.

    A spark-submit command in client deploy mode (`spark_jobs.submit`) starts its driver JVM
    here with these settings, as a session's builder does: the same class path, so the same
    archive.
    """
    class_path = _driver_class_path(settings, jars)
    archive = archive_file(settings, class_path) if jars else None
    if archive is None or (dump_to is None and not archive.is_file()):
        return {}
    option = (
        f"-XX:ArchiveClassesAtExit={dump_to}" if dump_to else f"-XX:SharedArchiveFile={archive}"
    )
    if dump_to:
        option += " -Xlog:cds=off -Xlog:cds+dynamic=off"  # thousands of 'skipping' warnings
    return {
        CLASS_PATH_KEY: os.pathsep.join(class_path),
        JAVA_OPTIONS_KEY: _joined(conf.get(JAVA_OPTIONS_KEY), option, " "),
    }
