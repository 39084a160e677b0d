"""Resolve the Deequ jar into the local cache now, so the first job starts quickly and offline."""

from __future__ import annotations

import sys

from py4j.java_gateway import JavaClass

from spark_jobs.errors import UserError
from spark_jobs.session import get_session, stop_session
from spark_jobs.settings import load_settings


def main() -> int:
    """Start and stop one session, which resolves and caches the configured jars."""
    try:
        settings = load_settings()
        spark = get_session(settings, "lakegate-jars")
    except UserError as exc:
        print(f"lakegate: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    found = isinstance(spark.sparkContext._jvm.com.amazon.deequ.checks.Check, JavaClass)
    stop_session(spark)
    if not found:
        print(
            f"lakegate: error: Deequ ({settings.deequ.coordinate}) is not on the classpath",
            file=sys.stderr,
        )
        return 3
    print(f"Deequ is on the classpath ({settings.deequ.coordinate})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
