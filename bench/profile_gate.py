"""Where the one-pass gate's time goes: ablations of its Spark work, timed interleaved.

On the `orders` table of bench_validate.py (generated once, untimed) and its suite, each variant
runs once to warm up, then `--repeats` times interleaved. For every run it records the wall
time and the executors' CPU time of the stages it ran (Spark's status store: robust when other
jobs share the machine). Variants:

  copy           read + write parquet (the floor)
  valid-plain    the valid rows written without any observation (duplicate flag + filter)
  valid-join     the same with the duplicate flag a broadcast join (the gate's path for many
                 keys, multi-column keys and other key types)
  valid-noflag   the same with the duplicate flag a constant (what the flag costs)
  valid-counts   the same with lakegate's own counts observed (rows, quarantined, blamed)
  valid-counts-projected  the same with each row test projected once as a column below the
                 observe, read by the counts and the filter (inline, as the gate does, the
                 tests are evaluated in observe's update and again in the filter)
  valid-deequ    valid-counts with Deequ's aggregates in the same observe (no groupings)
  valid-deequ-projected  the same with the tests projected
  valid-gate     `apply_suite(...).valid` as the job writes it (every Deequ aggregate observed),
                 its key groupings included
  agg-deequ      Deequ's observable aggregates in a plain `agg` (its own scan, no write)
  agg:<analyzer> one analyzer's aggregates alone in a plain `agg` (columns pruned)
  grouping       the whole key grouping of `id` cached, with its totals (`_cached_grouping`)
  grouping-counted  only its duplicated keys cached (`_counted_grouping`, the gate's path for
                 Uniqueness and the other counts-only analyzers)
  split-serial   valid then quarantine written through StagedOutputs (as validate.py does)
  split-threads  both tables written from two threads through the same StagedOutputs

Run (from the project root; results to stdout and, with --json, a file):

    .venv/bin/python bench/profile_gate.py --rows 3000000 --repeats 3
    .venv/bin/python bench/profile_gate.py --variants copy,valid-gate,agg-deequ
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial, reduce
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
for entry in (PROJECT_ROOT, PROJECT_ROOT / "bench"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

SPLIT_FORMATS = ("delta", "parquet")


def stage_cpu(spark: Any) -> Callable[[], tuple[float, int]]:
    """A function giving (executor CPU seconds, stages) of the stages done since its last call."""
    gateway = spark.sparkContext._gateway
    store = spark.sparkContext._jsc.sc().statusStore()
    seen = [-1]

    def stages() -> list[Any]:
        found = store.stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0), None)
        return [found.apply(i) for i in range(found.size())]

    def take() -> tuple[float, int]:
        new = [s for s in stages() if s.stageId() > seen[0]]
        seen[0] = max([s.stageId() for s in new], default=seen[0])
        ran = [s for s in new if s.status().toString() != "SKIPPED"]
        return sum(s.executorCpuTime() for s in ran) / 1e9, len(ran)

    take()
    return take


def gate_parts(spark: Any, df: Any, suite: Any) -> dict[str, Any]:
    """The pieces of the valid write, rebuilt the way `apply_suite` builds them."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    from checks import gate as G
    from checks.row_rules import (
        DUPLICATE_FLAG_PREFIX,
        RowContext,
        column,
        deequ_patterns,
        violation,
    )

    gate = G.apply_suite(spark, df, suite)
    # The duplicate flags as the gate builds them (an IN list of few keys), as a join, constant.
    annotated, joined, no_flag, flags = df, df, df, {}
    split = [c for c in gate.row_constraints if c.type.groups_rows]
    count = F.col(G._count_column(spark))
    inline_keys = G.INLINE_DUPLICATE_KEYS
    for i, constraint in enumerate(split):
        flag = flags[constraint.id] = f"{DUPLICATE_FLAG_PREFIX}{i}"
        # Cached as the gate does, over a plan of its own (a no-op projection): Spark's cache
        # matches analyzed plans, and the gate's own groupings must not find this table.
        own = df.select(*[column(c) for c in df.columns])
        frequencies = G._frequencies(own, constraint.columns, None).cache()
        duplicated = frequencies.where(count > 1).count()
        grouping = G._Grouping(
            constraint.columns, None, frequencies, 0, duplicated, cached=frequencies
        )
        annotated = G._flag_duplicates(annotated, constraint, grouping, flag)
        G.INLINE_DUPLICATE_KEYS = 0
        try:
            joined = G._flag_duplicates(joined, constraint, grouping, flag)
        finally:
            G.INLINE_DUPLICATE_KEYS = inline_keys
        no_flag = no_flag.withColumn(flag, F.lit(False))
    patterns = deequ_patterns(spark)
    tests = [violation(c, RowContext(patterns, flags.get(c.id)))[0] for c in gate.row_constraints]
    quarantined = reduce(operator.or_, tests, F.lit(False))
    per_analyzer = {
        str(a.toString())[:48]: [Column(f) for f in G._scala_iter(a.aggregationFunctions())]
        for a, _ in gate._observable
    }
    functions = [f for fs in per_analyzer.values() for f in fs]
    gate.release()
    return {
        "plain": annotated.where(~quarantined).select(*df.columns),
        "join": joined.where(~quarantined).select(*df.columns),
        "no-flag": no_flag.where(~quarantined).select(*df.columns),
        "counts": counted(annotated, tests, [], projected=False),
        "counts-projected": counted(annotated, tests, [], projected=True),
        "deequ-counts": counted(annotated, tests, [G._pack(functions)], projected=False),
        "deequ-counts-projected": counted(annotated, tests, [G._pack(functions)], projected=True),
        "deequ": G._pack(functions),
        "per_analyzer": per_analyzer,
    }


def counted(df: Any, tests: list[Any], extra: list[Any], *, projected: bool) -> Any:
    """The valid rows with lakegate's counts (and `extra` aggregates) observed.

    Inline (as the gate does), every test is evaluated in observe's update and again in the
    filter; projected, each test is a column below the observe, read by both.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    columns = list(df.columns)
    if projected:
        names = [f"_profile_test_{i}" for i in range(len(tests))]
        df = df.select("*", *[t.alias(n) for t, n in zip(tests, names, strict=True)])
        tests = [F.col(n) for n in names]
    quarantined = reduce(operator.or_, tests, F.lit(False))
    counts = [F.count(F.lit(1)), F.sum(quarantined.cast("long"))]
    counts += [F.sum(t.cast("long")) for t in tests] + extra
    observed = df.observe(Observation(), *[c.alias(f"c{i}") for i, c in enumerate(counts)])
    return observed.where(~quarantined).select(*columns)


def split_variant(spark: Any, source: str, suite: Any, out: Path, fmt: str, threads: bool) -> None:
    """Write valid and quarantine through StagedOutputs, one after the other or side by side."""
    from checks.gate import apply_suite
    from spark_jobs.services.table_io import StagedOutputs

    gate = apply_suite(spark, spark.read.parquet(source), suite)
    outputs = StagedOutputs(spark, str(out / uuid.uuid4().hex), uuid.uuid4().hex[:8], fmt)
    try:
        if threads:
            writer = threading.Thread(
                target=outputs.write_table, args=("quarantine", gate.quarantine)
            )
            writer.start()
            outputs.write_table("valid", gate.valid)
            writer.join()
        else:
            outputs.write_table("valid", gate.valid)
            outputs.write_table("quarantine", gate.quarantine_to_write())
        gate.verdict()
        outputs.commit()
    finally:
        gate.release()


def variants(spark: Any, source: str, suite: Any, out: Path) -> dict[str, Callable[[], Any]]:
    """Every variant by name, each a no-argument callable."""

    df = spark.read.parquet(source)
    parts = gate_parts(spark, df, suite)
    target = str(out / "t")

    def write(frame: Any) -> None:
        frame.write.mode("overwrite").parquet(target)

    found: dict[str, Callable[[], Any]] = {
        "copy": lambda: write(df),
        "valid-plain": lambda: write(parts["plain"]),
        "valid-join": lambda: write(parts["join"]),
        "valid-noflag": lambda: write(parts["no-flag"]),
        "valid-counts": lambda: write(parts["counts"]),
        "valid-counts-projected": lambda: write(parts["counts-projected"]),
        "valid-deequ": lambda: write(parts["deequ-counts"]),
        "valid-deequ-projected": lambda: write(parts["deequ-counts-projected"]),
        "valid-gate": partial(gate_write, spark, df, suite, target),
        "agg-deequ": lambda: df.agg(parts["deequ"]).collect(),
        "grouping": partial(grouping, df),
        "grouping-counted": partial(counted_grouping, df),
    }
    for name, functions in parts["per_analyzer"].items():
        found[f"agg:{name}"] = partial(aggregate, df, functions)
    for fmt in SPLIT_FORMATS:
        for threads in (False, True):
            label = f"split-{'threads' if threads else 'serial'}-{fmt}"
            found[label] = partial(split_variant, spark, source, suite, out, fmt, threads)
    return found


def gate_write(spark: Any, df: Any, suite: Any, target: str) -> None:
    """The gate's valid rows written with every metric observed (groupings included)."""
    from checks.gate import apply_suite

    gate = apply_suite(spark, df, suite)
    try:
        gate.valid.write.mode("overwrite").parquet(target)
    finally:
        gate.release()


def aggregate(df: Any, functions: list[Any]) -> None:
    """A plain aggregation of `functions`, collected."""
    df.agg(*functions).collect()


def grouping(df: Any) -> None:
    """The key grouping of `id` as `_group` builds it: cached frequencies and their totals."""
    from pyspark.sql import functions as F

    from checks import gate as G

    frequencies = G._frequencies(df, ["id"], None).cache()
    frequencies.agg(F.sum(F.col(G._count_column(df.sparkSession)))).collect()
    frequencies.unpersist()


def counted_grouping(df: Any) -> None:
    """The key grouping of `id` as the gate builds it for Uniqueness: duplicated keys cached."""
    from checks import gate as G

    G._counted_grouping(df, ["id"], None, []).cached.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="", help="comma-separated name prefixes (all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lakegate-profile-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")

    from bench_validate import DEFAULT_SUITE, generate_table

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    spark = get_session(load_settings("local"), "lakegate-profile-gate")
    try:
        source = str(work / "orders.parquet")
        generate_table(spark, source, args.rows, 7)
        found = variants(spark, source, load_suite(DEFAULT_SUITE), work / "out")
        prefixes = [p for p in args.variants.split(",") if p]
        chosen = {k: v for k, v in found.items() if not prefixes or k.startswith(tuple(prefixes))}
        take = stage_cpu(spark)
        wall: dict[str, list[float]] = {k: [] for k in chosen}
        cpu: dict[str, list[float]] = {k: [] for k in chosen}
        loads = [os.getloadavg()[0]]
        for repeat in range(args.repeats + 1):
            for name, action in chosen.items():
                take()
                started = time.perf_counter()
                action()
                seconds = time.perf_counter() - started
                if repeat:  # the first round warms up
                    wall[name].append(seconds)
                    cpu[name].append(take()[0])
            loads.append(os.getloadavg()[0])
    finally:
        stop_session(spark)
        shutil.rmtree(work, ignore_errors=True)
    base_wall = statistics.median(wall.get("copy", [1.0]))
    base_cpu = statistics.median(cpu.get("copy", [1.0]))
    print(f"rows={args.rows:,} repeats={args.repeats} load 1-min {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'variant':<58}{'wall s':>8}{'x copy':>8}{'CPU s':>8}{'x copy':>8}")
    summary = {}
    for name in chosen:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        summary[name] = {"wall": wall[name], "cpu": cpu[name], "wall_median": w, "cpu_median": c}
        print(f"{name:<58}{w:>8.2f}{w / base_wall:>8.2f}{c:>8.2f}{c / base_cpu:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "loads": loads, "variants": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
