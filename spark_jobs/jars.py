"""Resolve the configured jars into the local cache now, so later jobs start offline.

The jars: Deequ, Delta Lake, and Spark's Kafka connector when `kafka.coordinate` is set. Then
write the driver JVM's class-data archive (`spark_jobs.services.class_archive`) once per
machine: a JVM runs a small validation and dumps the classes it loaded as it exits, so every
later job starts seconds faster. A failed dump only costs that speed-up; it never fails setup.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from py4j.java_gateway import JavaClass
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings, load_settings
from lakegate_errors import EnvironmentProblem, LakegateError, exit_code_of
from spark_jobs.services.class_archive import planned_archive
from spark_jobs.services.session import (
    get_session,
    jar_sources,
    jvm_of,
    manifest_jars,
    manifest_path,
    stop_session,
    stop_session_and_jvm,
)

DUMP_FLAG = "--dump-class-archive"
DUMP_TIMEOUT_SECONDS = 600
ITEMS_SUITE = Path(__file__).resolve().parents[1] / "checks" / "examples" / "items.yaml"
ITEMS_SCHEMA = "id long, productName string, description string, priority string, numViews long"
ITEMS_ROWS = [
    (1, "Thingy A", "awesome thing. http://thingb.com", "high", 0),
    (2, "Thingy B", "available at http://thingb.com", None, 0),
    (3, None, None, "low", 5),
    (4, "Thingy D", "checkout https://thingd.ca", "low", 10),
    (5, "Thingy E", None, "high", 12),
]


def main(argv: list[str] | None = None) -> int:
    """Start and stop one session, which resolves and caches the configured jars."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [DUMP_FLAG] and len(args) == 2:
        return dump_class_archive(Path(args[1]))
    try:
        settings = load_settings()
        spark = get_session(settings, "lakegate-jars")
    except LakegateError as exc:
        print(f"lakegate: error: {exc}", file=sys.stderr)
        return int(exit_code_of(exc) or 2)
    jvm = jvm_of(spark)
    libraries = {
        f"Deequ ({settings.deequ.coordinate})": jvm.com.amazon.deequ.checks.Check,
        f"Delta Lake ({settings.delta.coordinate})": jvm.io.delta.tables.DeltaTable,
    }
    if settings.kafka.coordinate or settings.kafka.jars:
        name = f"Spark's Kafka connector ({settings.kafka.coordinate or 'kafka.jars'})"
        libraries[name] = jvm.org.apache.spark.sql.kafka010.KafkaSourceProvider
    missing = [name for name, cls in libraries.items() if not isinstance(cls, JavaClass)]
    stop_session(spark)
    for name in missing:
        print(f"lakegate: error: {name} is not on the classpath", file=sys.stderr)
    if missing:
        return 3
    print(f"On the classpath: {', '.join(libraries)}")
    build_class_archive(settings)
    return 0


def resolve_coordinates(
    spark: SparkSession, settings: Settings, coordinates: list[str]
) -> list[str]:
    """Resolve Maven `coordinates` (and their dependencies) into the Ivy cache; their jar files.

    The same Ivy resolution as `spark.jars.packages` (Spark's `SparkSubmitUtils`, through the
    running session's JVM) into the same cache, for jars the session itself does not load (the
    test suite's Kafka broker). The files are remembered in a manifest, so later calls are
    offline.

    Raises:
        EnvironmentProblem: Ivy could not resolve the coordinates (offline with an empty cache,
            or a coordinate that is not published).
    """
    manifest = manifest_path(settings, coordinates)
    cached = manifest_jars(manifest)
    if cached is not None:
        return cached
    jvm = jvm_of(spark)
    utils = jvm.org.apache.spark.deploy.SparkSubmitUtils
    ivy_cache = str(settings.resolve(settings.deequ.ivy_cache))
    ivy = utils.buildIvySettings(
        jvm.scala.Option.apply(None), jvm.scala.Option.apply(ivy_cache), False
    )
    try:
        found = utils.resolveMavenCoordinates(
            ",".join(coordinates),
            ivy,
            jvm.scala.Option.apply(None),
            True,
            jvm.org.apache.spark.api.python.PythonUtils.toSeq([]),
            False,
        )
    except Py4JJavaError as exc:
        raise EnvironmentProblem(
            f"Ivy could not resolve {', '.join(coordinates)} into {ivy_cache}: "
            f"{exc.java_exception.getMessage()}; connect to Maven Central once to fill the cache"
        ) from None
    jars = [str(jar) for jar in jvm.scala.collection.JavaConverters.seqAsJavaList(found)]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("\n".join(jars) + "\n")
    return jars


def build_class_archive(settings: Settings) -> Path | None:
    """Write the class-data archive for these settings unless it exists; its path, or None."""
    jars, packages = jar_sources(settings)
    archive = None if packages else planned_archive(settings, jars)
    if archive is None:
        return None
    if archive.is_file():
        print(f"Class-data archive: {archive} (written earlier)")
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.stem}.{os.getpid()}.partial")
    print("Writing the driver JVM's class-data archive (once; later jobs start faster) ...")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "spark_jobs.jars", DUMP_FLAG, str(partial)],
            capture_output=True,
            text=True,
            check=False,
            timeout=DUMP_TIMEOUT_SECONDS,
        )
        failed, output = done.returncode != 0, done.stderr or done.stdout
    except subprocess.TimeoutExpired:
        failed, output = True, f"the dumping job did not finish in {DUMP_TIMEOUT_SECONDS} s"
    if failed or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = "\n".join(output.strip().splitlines()[-5:])
        print(f"lakegate: warning: no class-data archive, jobs start without it:\n{tail}")
        return None
    os.replace(partial, archive)
    print(f"Class-data archive: {archive} ({archive.stat().st_size // 2**20} MB)")
    return archive


def dump_class_archive(target: Path) -> int:
    """In a fresh JVM, run a small validation (Deequ, Delta, reports), then dump to `target`."""
    from spark_jobs.validate import ValidateSpec, run

    with tempfile.TemporaryDirectory(prefix="lakegate-class-archive-") as work:
        settings = load_settings().model_copy(update={"state_dir": Path(work) / "state"})
        spark = get_session(settings, "lakegate-class-archive", class_archive_dump=target)
        source = settings.project_root / "data" / "items.csv"
        if not source.is_file():  # installed without the bundled data: the same rows in memory
            spark.createDataFrame(ITEMS_ROWS, ITEMS_SCHEMA).createOrReplaceTempView("items")
        spec = ValidateSpec(
            suite=str(ITEMS_SUITE),
            input=str(source) if source.is_file() else "items",
            output=f"{work}/out",
        )
        run(spark, settings, spec)
        stop_session_and_jvm(spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
