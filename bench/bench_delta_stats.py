"""What Delta's per-file column statistics cost a write, against a parquet write of the same rows.

Generates bench_validate.py's `orders` table once (untimed), then writes it, interleaved,
`--repeats` times after one warm-up round, as parquet and as Delta with its statistics settings
varied. Prints median seconds and each variant's ratio to parquet. Each Delta write is a new
table, so the `spark.databricks.delta.properties.defaults.*` settings apply to it.

Run from the project root:

    .venv/bin/python bench/bench_delta_stats.py --rows 3000000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
for entry in (PROJECT_ROOT, PROJECT_ROOT / "bench"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

_DEFAULTS = "spark.databricks.delta.properties.defaults."
# Session settings per variant; None: a plain parquet write.
VARIANTS: dict[str, dict[str, str] | None] = {
    "parquet": None,
    "delta": {},
    "delta-no-stats": {"spark.databricks.delta.stats.collect": "false"},
    "delta-num-records-only": {_DEFAULTS + "dataSkippingNumIndexedCols": "0"},
    "delta-non-string-stats": {
        _DEFAULTS + "dataSkippingStatsColumns": "id,customer_id,amount,quantity,score,created_at"
    },
    "delta-string-stats": {
        _DEFAULTS + "dataSkippingStatsColumns": "status,country,category,description"
    },
    "delta-description-stats": {_DEFAULTS + "dataSkippingStatsColumns": "description"},
}


def write_once(spark: Any, source: str, out: str, settings: dict[str, str] | None) -> float:
    """Write `source` to `out` with the variant's session settings; return the seconds taken."""
    shutil.rmtree(out, ignore_errors=True)
    df = spark.read.parquet(source)
    if settings is None:
        started = time.perf_counter()
        df.write.mode("overwrite").parquet(out)
        return time.perf_counter() - started
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        started = time.perf_counter()
        df.write.format("delta").mode("overwrite").save(out)
        return time.perf_counter() - started
    finally:
        for key in settings:
            spark.conf.unset(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="lakegate-bench-delta-stats-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")
    from bench_validate import generate_table

    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    spark = get_session(load_settings("local"), "lakegate-bench-delta-stats")
    source = str(work / "input" / "orders.parquet")
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        generate_table(spark, source, args.rows, args.seed)
        for name, settings in VARIANTS.items():  # warm-up round, not counted
            write_once(spark, source, str(work / "out" / name), settings)
        for repeat in range(args.repeats):
            for name, settings in VARIANTS.items():
                taken = write_once(spark, source, str(work / "out" / name), settings)
                seconds[name].append(taken)
                load = os.getloadavg()[0]
                print(f"[{repeat + 1}/{args.repeats}] {name:<24} {taken:6.2f}s  load {load:.1f}")
    finally:
        stop_session(spark)
        shutil.rmtree(work, ignore_errors=True)

    floor = statistics.median(seconds["parquet"])
    print(f"\n{args.rows:,} rows, medians of {args.repeats}")
    print(f"{'variant':<24} {'median s':>9} {'x parquet':>10}  runs")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(
            f"{name:<24} {median:9.2f} {median / floor:10.2f}  "
            + " ".join(f"{s:.2f}" for s in runs)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
