"""A real single-node Kafka broker (KRaft) for the tests, run from Apache Kafka's own jars.

`kafka_2.12` and its dependencies are resolved by Spark's Ivy into lakegate's jar cache (once;
later runs are offline), Scala's library comes from pyspark's jars. The fixture writes a KRaft
`server.properties` (broker and controller in one process, loopback ports picked free, logs in
a temporary folder), formats the storage, starts `kafka.Kafka`, waits until the broker answers
and yields `127.0.0.1:PORT`; at teardown SIGTERM, then SIGKILL after 30 s.

Use it with `from tests.kafka_broker import kafka_broker` (or `pytest_plugins`); produce
records with `produce(spark, bootstrap, topic, values)` (Spark's own Kafka writer).
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pyspark.find_spark_home import _find_spark_home
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings
from spark_jobs.jars import resolve_coordinates
from spark_jobs.services.class_archive import java_binary

KAFKA_COORDINATE = "org.apache.kafka:kafka_2.12:3.7.2"
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30
JVM_OPTIONS = ["-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


def broker_class_path(spark: SparkSession, settings: Settings) -> str:
    """Kafka's jars from the Ivy cache plus the Scala library Spark ships (Ivy leaves it out)."""
    jars = [
        jar.removeprefix("file:")
        for jar in resolve_coordinates(spark, settings, [KAFKA_COORDINATE])
    ]
    spark_jars = Path(_find_spark_home()) / "jars"  # type: ignore[no-untyped-call]
    jars += [str(jar) for jar in sorted(spark_jars.glob("scala-library-2.12.*.jar"))]
    return ":".join(jars)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_properties(folder: Path, port: int, controller_port: int) -> Path:
    """A single-node KRaft configuration listening on loopback, its logs in `folder`."""
    path = folder / "server.properties"
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={folder / 'logs'}",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )
    )
    return path


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop_broker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Kafka's orderly shutdown), then SIGKILL after `STOP_TIMEOUT_SECONDS`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)


def start_broker(class_path: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Format the storage and start the broker; the process and its bootstrap address."""
    java = java_binary()
    if java is None:
        pytest.fail("no java binary (JAVA_HOME or PATH) to run the Kafka broker with")
    port, controller_port = free_port(), free_port()
    properties = server_properties(folder, port, controller_port)
    command = [str(java), *JVM_OPTIONS, "-cp", class_path]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    # `--cluster-id=ID`: an ID starting with "-" (1 in 64) would be read as an option.
    storage = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}"]
    formatted = subprocess.run(
        [*command, *storage, "-c", str(properties)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = folder / "broker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "kafka.Kafka", str(properties)], stdout=output, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_broker(process)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"the Kafka broker did not start on 127.0.0.1:{port}:\n{tail}")
        time.sleep(0.2)
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def kafka_broker(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A running single-node broker for the module's tests: its bootstrap address."""
    process, bootstrap = start_broker(
        broker_class_path(spark, settings), tmp_path_factory.mktemp("kafka")
    )
    try:
        yield bootstrap
    finally:
        stop_broker(process)


def produce(spark: SparkSession, bootstrap: str, topic: str, values: Sequence[str | None]) -> None:
    """Write `values` to `topic` as record values, in order, through Spark's Kafka writer."""
    frame = spark.createDataFrame([(value,) for value in values], "value string")
    (
        frame.coalesce(1)
        .write.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("topic", topic)
        .save()
    )
