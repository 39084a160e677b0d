"""JVM flags for the test run's short jobs, given to every JVM Spark's launcher starts.

Every JVM the run starts compiles with C1 only: its jobs last seconds, too short for C2's
optimisations to pay back their compile time. A session plus three validates of the items
example (7 Dec 2026, load ~32): the driver JVM used 24.7 s of CPU instead of 45.0 s, and the
session started in 23 s instead of 48 s.

And every JVM collects with the serial collector: on 2 cores shared by three test processes,
G1's concurrent work and write barriers cost more CPU than they save in pauses for heaps of a
few hundred MB. A session plus a 20k-row validate three times: 18.3-19.0 s of CPU against
19.7-20.6 s with G1 (three runs each); tests/test_validate_job.py whole, sampled per process:
137.4 s against 143.5 s (its subprocess JVMs 20.3 s against 22.5 s). Results are the same:
only the JIT compiler and the collector differ.
"""

from __future__ import annotations

import os

JVM_SPEED_FLAGS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# One variable per kind of JVM Spark's launcher starts: drivers (the tests' sessions, `lakegate`
# and spark-submit subprocesses, their servers), the standalone master and workers, beeline.
# Executors take `spark.executor.extraJavaOptions` (tests/test_cluster.py sets it).
JVM_OPTIONS_VARIABLES = ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS", "SPARK_BEELINE_OPTS")


def start_jvms_with_speed_flags() -> None:
    """Append `JVM_SPEED_FLAGS` to the launcher's variables, for this process and its children."""
    for variable in JVM_OPTIONS_VARIABLES:
        given = os.environ.get(variable, "")
        if JVM_SPEED_FLAGS not in given:
            os.environ[variable] = f"{given} {JVM_SPEED_FLAGS}".strip()
