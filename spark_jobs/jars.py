"""Resolve the Deequ and Delta jars into the local cache now, so later jobs start offline."""

from __future__ import annotations

import sys

from py4j.java_gateway import JavaClass

from lakegate_errors import LakegateError, exit_code_of
from spark_jobs.services.session import get_session, jvm_of, stop_session
from spark_jobs.services.settings import load_settings


def main() -> int:
    """Start and stop one session, which resolves and caches the configured jars."""
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
    missing = [name for name, cls in libraries.items() if not isinstance(cls, JavaClass)]
    stop_session(spark)
    for name in missing:
        print(f"lakegate: error: {name} is not on the classpath", file=sys.stderr)
    if missing:
        return 3
    print(f"On the classpath: {', '.join(libraries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
