"""The one place a SparkSession is built, from `conf/<env>.yaml`.

It also owns the process environment Spark and PyDeequ need: workers run the driver's
interpreter (pandas UDFs fail otherwise), `SPARK_VERSION` is set for PyDeequ, the Deequ and
Delta Lake jars (and Spark's Kafka connector when `kafka.coordinate` is set) are resolved from
Maven Central into a cache outside the project (or taken from local paths), Delta's session
extension and catalog are set, and
PyDeequ's py4j callback server is started on a free port and shut down before `spark.stop()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyspark
from py4j.java_gateway import quiet_shutdown
from pyspark.errors import PySparkRuntimeError
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings, conf_string
from lakegate_errors import EnvironmentProblem
from spark_jobs.services.class_archive import archive_conf

SPARK_LINE = ".".join(pyspark.__version__.split(".")[:2])
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
CATALOG_KEY = "spark.sql.catalog.spark_catalog"
_SUBMIT_OWNED = ("spark.master", "spark.jars", "spark.driver.", "spark.app.name")


def prepare_process_environment() -> None:
    """Set the variables Spark's Python workers and PyDeequ read; call before any session."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_VERSION", SPARK_LINE)
    # Bind to loopback unless a deployment says otherwise: nothing listens on the network.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def spark_conf(
    settings: Settings, app_name: str | None = None, *, class_archive_dump: Path | None = None
) -> dict[str, str]:
    """Return the Spark configuration for `settings`, including how to find the Deequ jar.

    With the jars cached, the driver maps the class-data archive (`class_archive`), or writes
    one to `class_archive_dump` when it exits.
    """
    conf = {key: conf_string(value) for key, value in settings.spark.conf.items()}
    conf["spark.app.name"] = app_name or settings.spark.app_name
    if settings.spark.master:
        conf["spark.master"] = settings.spark.master
    conf.setdefault("spark.sql.warehouse.dir", str(settings.state_path / "warehouse"))
    log_config = settings.project_root / "conf" / "log4j2.properties"
    java_options = f"-Dderby.system.home={settings.state_path}"
    if log_config.is_file():
        java_options += f" -Dlog4j2.configurationFile={log_config.as_uri()}"
    conf.setdefault("spark.driver.extraJavaOptions", java_options)
    jars, packages = jar_sources(settings)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if packages:
        conf["spark.jars.packages"] = ",".join(packages)
        conf["spark.jars.excludes"] = ",".join(settings.jar_excludes)
        conf["spark.jars.ivy"] = str(settings.resolve(settings.deequ.ivy_cache))
    else:
        conf.update(archive_conf(settings, conf, jars, dump_to=class_archive_dump))
    conf.update(delta_conf(conf))
    return conf


def delta_conf(conf: dict[str, str]) -> dict[str, str]:
    """The session settings Delta Lake needs, keeping extensions configured elsewhere."""
    extensions = [e for e in conf.get("spark.sql.extensions", "").split(",") if e]
    if DELTA_EXTENSION not in extensions:
        extensions.append(DELTA_EXTENSION)
    return {
        "spark.sql.extensions": ",".join(extensions),
        CATALOG_KEY: conf.get(CATALOG_KEY, DELTA_CATALOG),
    }


def jar_sources(settings: Settings) -> tuple[list[str], list[str]]:
    """The jar files and the Maven coordinates a session (or spark-submit) needs.

    Local jars (`deequ.jar`, `delta.jars`, `kafka.jars`) are used as they are; coordinates
    resolved before come from the cache manifest, so later starts work offline; the rest Ivy
    resolves.

    Raises:
        EnvironmentProblem: a configured local jar does not exist.
    """
    jars = []
    for jar in settings.local_jars:
        if not jar.is_file():
            raise EnvironmentProblem(
                f"the jar {jar} configured in conf/{settings.env}.yaml (deequ.jar, delta.jars or "
                "kafka.jars) does not exist; copy the jar there or remove the setting to resolve "
                "its Maven coordinate (deequ.coordinate, delta.coordinate or kafka.coordinate) "
                "from Maven Central"
            )
        jars.append(str(jar))
    if not settings.jar_coordinates:
        return jars, []
    cached = cached_jars(settings)
    if cached is not None:
        return jars + cached, []
    return jars, settings.jar_coordinates


def manifest_path(settings: Settings, coordinates: list[str]) -> Path:
    """The file in the Ivy cache listing the jars resolved for `coordinates`."""
    name = "+".join(c.replace(":", "_") for c in coordinates) + ".jars"
    return settings.resolve(settings.deequ.ivy_cache) / "manifests" / name


def _manifest(settings: Settings) -> Path:
    return manifest_path(settings, settings.jar_coordinates)


def manifest_jars(manifest: Path) -> list[str] | None:
    """The jars a manifest lists, if it exists and every one of them is still cached."""
    if not manifest.is_file():
        return None
    jars = [line for line in manifest.read_text().splitlines() if line]
    return jars if jars and all(Path(jar.removeprefix("file:")).is_file() for jar in jars) else None


def cached_jars(settings: Settings) -> list[str] | None:
    """The jars resolved for the configured coordinates earlier, if all are still cached."""
    return manifest_jars(_manifest(settings))


def _remember_jars(spark: SparkSession, settings: Settings) -> None:
    """After Ivy resolved the coordinates, record the jar files so later starts skip Ivy."""
    if not settings.jar_coordinates or _manifest(settings).is_file():
        return
    local = {Path(jar).resolve().as_uri() for jar in settings.local_jars}
    local |= {str(jar) for jar in settings.local_jars}
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    resolved = [jar for jar in jars.split(",") if jar and jar not in local]
    if resolved:
        _manifest(settings).parent.mkdir(parents=True, exist_ok=True)
        _manifest(settings).write_text("\n".join(resolved) + "\n")


def _driver_can_load(class_name: str) -> bool:
    """Whether the running driver JVM (spark-submit's) has `class_name` on its classpath."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    if jvm is None:  # _ensure_initialized has just started the gateway
        raise EnvironmentProblem("Spark's JVM did not start; see the messages above")
    return bool(jvm.org.apache.spark.util.Utils.classIsLoadable(class_name))


def get_session(
    settings: Settings, app_name: str | None = None, *, class_archive_dump: Path | None = None
) -> SparkSession:
    """Return the active session (a notebook's `spark`), or build one from `settings`.

    `class_archive_dump`: the new JVM writes its class-data archive there when it exits
    (`spark_jobs.jars` builds the archive so).

    Raises:
        EnvironmentProblem: the JVM could not start, typically because the Deequ jar could not
            be resolved (offline with an empty cache).
    """
    prepare_process_environment()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    settings.state_path.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    conf = spark_conf(settings, app_name, class_archive_dump=class_archive_dump)
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Started by spark-submit: master, jars and driver options came from its command line.
        conf = {k: v for k, v in conf.items() if not k.startswith(_SUBMIT_OWNED)}
        if not _driver_can_load(DELTA_EXTENSION):
            # Without the Delta jar, naming its classes would break every query; writing a
            # Delta output then fails with a clear error instead.
            for key in delta_conf({}):
                conf.pop(key)
                if key in settings.spark.conf:
                    conf[key] = conf_string(settings.spark.conf[key])
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except PySparkRuntimeError as exc:
        raise EnvironmentProblem(
            f"Spark could not start ({exc.getErrorClass()}). The usual cause is that the jars "
            f"{', '.join(settings.jar_coordinates)} could not be downloaded from Maven Central "
            f"into {settings.resolve(settings.deequ.ivy_cache)}: connect once to fill the cache, "
            "or set deequ.jar and delta.jars in conf/<env>.yaml to local copies of the jars"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    _remember_jars(spark, settings)
    ensure_callback_server_started(spark.sparkContext._gateway)
    return spark


def stop_session(spark: SparkSession) -> None:
    """Shut PyDeequ's callback server down, then stop Spark.

    The callback connections are shut at the socket first: closing their streams while a
    reader thread blocks on them would hang the process.
    """
    gateway = spark.sparkContext._gateway
    server = getattr(gateway, "_callback_server", None)
    if gateway is not None and server is not None:
        for connection in list(getattr(server, "connections", [])):
            quiet_shutdown(connection.socket)
        gateway.shutdown_callback_server()
    spark.stop()


def stop_session_and_jvm(spark: SparkSession, timeout: float = 300) -> None:
    """Stop the session, then its JVM, and wait until the JVM process has exited.

    The JVM ends when its standard input closes; its exit hooks (the class-data archive dump)
    have run once this returns.
    """
    from pyspark import SparkContext

    gateway = spark.sparkContext._gateway
    process = getattr(gateway, "proc", None)
    stop_session(spark)
    if gateway is not None:
        gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is not None:
        process.stdin.close()
        process.wait(timeout)


def jvm_of(spark: SparkSession) -> Any:
    """The JVM behind `spark` as py4j sees it (`jvm.org.apache...`), dynamic by nature.

    Raises:
        EnvironmentProblem: the session has been stopped, so there is no JVM to talk to.
    """
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise EnvironmentProblem(
            "Spark's JVM is gone (the session was stopped); start a new session and run again"
        )
    return jvm


@contextmanager
def spark_session(settings: Settings, app_name: str | None = None) -> Iterator[SparkSession]:
    """Build a session for a job and stop it afterwards, unless it was already running."""
    owned = SparkSession.getActiveSession() is None
    spark = get_session(settings, app_name)
    try:
        yield spark
    finally:
        if owned:
            stop_session(spark)
