"""Benchmark `lakegate validate` on Deequ's Items example against cuallee and a bare copy.

On a generated table with the Items schema of Deequ's README (id long, productName string,
description string, priority string, numViews long; default 5 million rows with realistic
defects) and the suite `checks/examples/items.yaml`, it times, interleaved a, b, b', d per repeat:

  (a) copy              `spark.read.parquet(src).write.mode("overwrite").parquet(dst)`
  (b) lakegate          `spark_jobs.validate.run(...)`: metrics observed in the valid write,
                        split, two Delta writes (the default output format), report.json
  (b') lakegate-parquet the same with `outputs.format: parquet`
  (d) cuallee           cuallee 0.15 computing the metrics only (no split, no write) of the six
                        Items checks it can express: is_complete(id), is_unique(id),
                        is_complete(productName), is_contained_in(priority, high/low),
                        is_greater_or_equal_than(numViews, 0) and has_pattern(description,
                        Deequ's URL regex, pct=0.5); `.validate(df)` collected

It prints median, min and max seconds and rows/s per variant, the ratios (b)/(d) (target <= 1.0),
(b)/(a) and (b')/(a), and writes a JSON result. cuallee's `has_percentile` is left out on purpose:
together with `is_unique` it makes Spark plan `percentile_approx` and `count_distinct` in one
aggregate, which does not finish on millions of rows (../shared/PITFALLS.md).

Sanity (untimed): lakegate's counts must add up (valid + quarantined = rows in) and quarantine
exactly the rows a plain-SQL ground truth says break a row rule; cuallee's violations per rule
must equal the ground truth's counts. The table is generated once per run (not timed) into a
temporary folder; LAKEGATE_STATE_DIR points into it, so the repository's state is untouched.

Run (from the project root):

    .venv/bin/python bench/bench_items.py                        # 5M rows, 3 repeats
    .venv/bin/python bench/bench_items.py --rows 1000000 --repeats 2
    make bench-items

Results also go to a JSON file (`--json`, default bench/results/items-<rows>-<time>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
for folder in (PROJECT_ROOT, BENCH_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_validate import (  # noqa: E402  (the bench folder is put on the path just above)
    MemorySampler,
    PhaseClock,
    StageLedger,
    _pick,
    _uniform,
    timing_summary,
)

DEFAULT_SUITE = PROJECT_ROOT / "checks" / "examples" / "items.yaml"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
VARIANTS = ("copy", "lakegate", "lakegate-parquet", "cuallee")
LABELS = {
    "copy": "(a) copy read+write",
    "lakegate": "(b) lakegate validate",
    "lakegate-parquet": "(b') lakegate, parquet",
    "cuallee": "(d) cuallee metrics",
}
# One id in DUP_EVERY repeats its predecessor: ~150 duplicated ids (300 rows) in 5M rows.
DUP_EVERY = 33_331
PRIORITIES = ("high", "low")
ODD_PRIORITIES = ("medium", "urgent", "HIGH")
TARGET_B_OVER_D = 1.0


@dataclass
class Run:
    """One timed execution of one variant."""

    variant: str
    repeat: int
    seconds: float
    peak_jvm_rss: int
    peak_python_rss: int
    load_average: float
    spark: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    status: str = ""
    phases: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def generate_items(spark: Any, path: str, rows: int, seed: int) -> None:
    """Write the Items table with defects at known rates, deterministically.

    ~1% null productName, ~55% of descriptions with a URL (5% null), ~0.5% priorities other
    than high/low, ~0.1% negative numViews (median numViews ~6), ~150 duplicated ids per 5M rows.
    """
    u = lambda salt: _uniform(salt, seed)  # noqa: E731
    partitions = max(2, rows // 1_000_000)
    columns = [
        f"CASE WHEN n % {DUP_EVERY} = {DUP_EVERY - 1} THEN n - 1 ELSE n END AS id",
        f"CASE WHEN {u(1)} < 0.01 THEN NULL ELSE concat('Thingy ', n) END AS productName",
        f"CASE WHEN {u(2)} < 0.55 THEN concat('available at https://thing', n, '.example.com') "
        f"WHEN {u(2)} < 0.95 THEN concat('awesome thing number ', n) END AS description",
        f"CASE WHEN {u(3)} < 0.005 THEN {_pick(ODD_PRIORITIES, 4, seed)} "
        f"ELSE {_pick(PRIORITIES, 5, seed)} END AS priority",
        f"CASE WHEN {u(6)} < 0.001 THEN -1 - pmod(xxhash64(n, {7 + seed * 1000}), 100) "
        f"ELSE CAST(floor(pow({u(8)}, 3) * 50) AS BIGINT) END AS numViews",
    ]
    (
        spark.range(0, rows, 1, partitions)
        .withColumnRenamed("id", "n")
        .selectExpr(*columns)
        .write.mode("overwrite")
        .parquet(path)
    )


def ground_truth(spark: Any, path: str, url_pattern: str) -> dict[str, int]:
    """Rows breaking each Items rule, rows breaking any row rule, by plain Spark SQL (untimed).

    `duplicate_extra_rows` is rows minus distinct ids (what cuallee's is_unique counts);
    `duplicate_rows` is every row sharing an id (what lakegate quarantines).
    """
    from pyspark.sql import functions as F

    df = spark.read.parquet(path)
    dup_ids = df.groupBy("id").count().where("count > 1").select("id", F.lit(True).alias("dup"))
    allowed = ", ".join(f"'{p}'" for p in PRIORITIES)
    rules = {
        "null_id": "id IS NULL",
        "null_productName": "productName IS NULL",
        "odd_priority": f"priority IS NOT NULL AND priority NOT IN ({allowed})",
        "negative_numViews": "numViews < 0",
        "duplicate_rows": "dup IS NOT NULL",
    }
    flagged = df.join(F.broadcast(dup_ids), "id", "left")
    sums = [F.sum(F.expr(f"CAST(coalesce({e}, false) AS INT)")).alias(k) for k, e in rules.items()]
    any_rule = " OR ".join(f"coalesce({e}, false)" for e in rules.values())
    sums += [
        F.sum(F.expr(f"CAST({any_rule} AS INT)")).alias("any"),
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("id").alias("distinct_ids"),
        F.sum((F.length(F.regexp_extract("description", url_pattern, 0)) > 0).cast("int")).alias(
            "url_descriptions"
        ),
        F.sum(F.col("priority").isNull().cast("int")).alias("null_priority"),
        F.sum(F.col("numViews").isNull().cast("int")).alias("null_numViews"),
    ]
    row = flagged.agg(*sums).first()
    truth = {k: int(row[k] or 0) for k in row.asDict()}
    truth["duplicate_extra_rows"] = truth["rows"] - truth["distinct_ids"]
    return truth


# --------------------------------------------------------------------------- variants


class StepClock(PhaseClock):
    """`PhaseClock` with one name per validate step (both write steps start with "writing")."""

    def step(self, text: str) -> None:
        super().step(text)
        if "quarantined" in text:
            self._name = "quarantine write + verdict"
        elif "valid rows" in text:
            self._name = "valid write (metrics observed)"


def run_copy(spark: Any, source: str, out: Path) -> None:
    """(a) the bare read-and-write copy."""
    spark.read.parquet(source).write.mode("overwrite").parquet(str(out / "copy"))


def run_lakegate(
    spark: Any, settings: Any, suite: Any, source: str, out: Path, clock: StepClock
) -> tuple[dict[str, int], str]:
    """(b) lakegate's validate job, writing its outputs in `settings.outputs.format`."""
    from spark_jobs.validate import ValidateSpec, run

    spec = ValidateSpec(suite=str(suite.path), input=source, output=str(out), keep_history=False)
    result = run(spark, settings, spec, suite=suite, progress=clock)  # type: ignore[arg-type]
    return asdict(result.counts), result.status


def cuallee_check(url_pattern: str) -> Any:
    """The Items checks cuallee can express (no has_percentile: it hangs beside is_unique)."""
    from cuallee import Check, CheckLevel

    return (
        Check(CheckLevel.ERROR, "items")
        .is_complete("id")
        .is_unique("id")
        .is_complete("productName")
        .is_contained_in("priority", PRIORITIES)
        .is_greater_or_equal_than("numViews", 0)
        .has_pattern("description", url_pattern, pct=0.5)
    )


def run_cuallee(spark: Any, source: str, url_pattern: str) -> list[dict[str, Any]]:
    """(d) cuallee's validate, forced by collecting its result rows."""
    df = spark.read.parquet(source)
    return [r.asDict() for r in cuallee_check(url_pattern).validate(df).collect()]


def cuallee_expected(truth: dict[str, int]) -> dict[str, int]:
    """The violations cuallee must report per rule (keyed `rule(column)`), from the ground truth."""
    return {
        "is_complete(id)": truth["null_id"],
        "is_unique(id)": truth["duplicate_extra_rows"],
        "is_complete(productName)": truth["null_productName"],
        # a null is not `isin`, so cuallee counts it as a violation
        "is_contained_in(priority)": truth["odd_priority"] + truth["null_priority"],
        "is_greater_or_equal_than(numViews)": truth["negative_numViews"] + truth["null_numViews"],
        "has_pattern(description)": truth["rows"] - truth["url_descriptions"],
    }


# --------------------------------------------------------------------------- reporting


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def summarize(runs: list[Run], rows: int) -> dict[str, dict[str, Any]]:
    """Median, min and max seconds, rows/s and peaks per variant."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r.variant == variant]
        if not mine:
            continue
        summary[variant] = {
            **timing_summary(mine, rows),
            "load_average_median": round(statistics.median(r.load_average for r in mine), 2),
        }
    return summary


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """(b)/(d), (b')/(d), (b)/(a) and (b')/(a) on medians."""
    medians = {v: summary.get(v, {}).get("median_seconds") for v in VARIANTS}

    def ratio(top: str, bottom: str) -> float | None:
        t, b = medians[top], medians[bottom]
        return round(t / b, 3) if t and b else None

    return {
        "b_over_d": ratio("lakegate", "cuallee"),
        "b_parquet_over_d": ratio("lakegate-parquet", "cuallee"),
        "b_over_a": ratio("lakegate", "copy"),
        "b_parquet_over_a": ratio("lakegate-parquet", "copy"),
    }


def print_table(summary: dict[str, dict[str, Any]], rows: int, repeats: int) -> None:
    """The side-by-side table of medians."""
    print()
    print(f"rows={rows:,}  repeats={repeats}  (medians; interleaved a, b, b', d per repeat)")
    header = (
        f"{'variant':<24}{'median s':>9}{'min s':>8}{'max s':>8}{'rows/s':>12}"
        f"{'stages':>7}{'JVM RSS MB':>11}{'to driver KB':>13}{'load':>6}"
    )
    print(header)
    print("-" * len(header))
    for variant, s in summary.items():
        print(
            f"{LABELS[variant]:<24}{s['median_seconds']:>9.2f}{s['min_seconds']:>8.2f}"
            f"{s['max_seconds']:>8.2f}{s['rows_per_second']:>12,}{s['stages_median']:>7g}"
            f"{_mb(s['peak_jvm_rss_bytes']):>11}{s['task_result_bytes_max'] / 1024:>13,.0f}"
            f"{s['load_average_median']:>6.1f}"
        )
    if "lakegate" in summary:
        phases = summary["lakegate"]["phases_median_seconds"]
        print("(b) phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))


def print_ratios(ratio: dict[str, float | None]) -> None:
    """The ratios, with the (b)/(d) target's verdict."""
    if ratio["b_over_d"] is not None:
        verdict = "met" if ratio["b_over_d"] <= TARGET_B_OVER_D else "MISSED"
        print(f"(b)/(d)  = {ratio['b_over_d']:.2f}  (target <= {TARGET_B_OVER_D}: {verdict})")
    if ratio["b_parquet_over_d"] is not None:
        print(f"(b')/(d) = {ratio['b_parquet_over_d']:.2f}")
    if ratio["b_over_a"] is not None:
        print(f"(b)/(a)  = {ratio['b_over_a']:.2f}  (Delta outputs against a parquet copy)")
    if ratio["b_parquet_over_a"] is not None:
        print(f"(b')/(a) = {ratio['b_parquet_over_a']:.2f}  (both writing parquet)")


def check_runs(runs: list[Run], truth: dict[str, int]) -> list[str]:
    """Each disagreement with the ground truth: lakegate's counts, cuallee's violations."""
    problems = []
    expected = cuallee_expected(truth)
    for r in runs:
        where = f"{r.variant} repeat {r.repeat}"
        if r.variant.startswith("lakegate"):
            c = r.counts
            if (
                c["rows_in"] != truth["rows"]
                or c["rows_valid"] + c["rows_quarantined"] != c["rows_in"]
            ):
                problems.append(f"{where}: counts {c} do not add up to {truth['rows']:,} rows")
            if c["rows_quarantined"] != truth["any"]:
                problems.append(
                    f"{where}: quarantined {c['rows_quarantined']:,}, ground truth {truth['any']:,}"
                )
        elif r.variant == "cuallee":
            for rule, violations in r.counts.items():
                if violations != expected.get(rule):
                    problems.append(
                        f"{where}: {rule} has {violations:,} violations, ground truth "
                        f"{expected.get(rule)}"
                    )
    return problems


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows to generate")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated defects")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="lakegate suite file")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of " + ",".join(VARIANTS),
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder afterwards")
    parser.add_argument(
        "--json", type=Path, default=None, help="result file (default: bench/results/)"
    )
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling seconds")
    return parser.parse_args(argv)


def time_variant(
    variant: str, action: Callable[[], Any], ledger: StageLedger, sampler: MemorySampler
) -> tuple[Any, float, tuple[int, int], float, dict[str, int]]:
    """Run one variant: its return value, seconds, RSS peaks, load average before, Spark stages."""
    load = os.getloadavg()[0]
    ledger.take()
    sampler.take()
    started = time.perf_counter()
    value = action()
    seconds = time.perf_counter() - started
    peaks = sampler.take()
    return value, seconds, peaks, load, ledger.take()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"unknown variants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakegate-bench-items-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")

    from importlib.metadata import version

    from pyspark import __version__ as spark_version

    from checks.row_rules import deequ_patterns
    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    suite = load_suite(args.suite)
    sampler = MemorySampler(args.sample_interval)
    sampler.start()
    settings = load_settings("local")
    parquet_settings = settings.model_copy(
        update={"outputs": settings.outputs.model_copy(update={"format": "parquet"})}
    )
    t0 = time.perf_counter()
    spark = get_session(settings, "lakegate-bench-items")
    session_seconds = time.perf_counter() - t0
    source = str(work / "input" / "items.parquet")
    runs: list[Run] = []
    try:
        url_pattern = deequ_patterns(spark)["URL"]
        print(f"scratch folder {work}; session started in {session_seconds:.1f}s", flush=True)
        t0 = time.perf_counter()
        generate_items(spark, source, args.rows, args.seed)
        generate_seconds = time.perf_counter() - t0
        input_bytes = sum(p.stat().st_size for p in Path(source).rglob("*.parquet"))
        print(
            f"generated {args.rows:,} rows ({_mb(input_bytes)} MB parquet) in "
            f"{generate_seconds:.1f}s",
            flush=True,
        )
        t0 = time.perf_counter()
        truth = ground_truth(spark, source, url_pattern)
        print(f"ground truth in {time.perf_counter() - t0:.1f}s: {truth}", flush=True)
        ledger = StageLedger(spark)

        for repeat in range(args.repeats):
            for variant in variants:
                out = work / "out" / variant
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                clock = StepClock()
                actions: dict[str, Callable[[], Any]] = {
                    "copy": lambda out=out: run_copy(spark, source, out),
                    "lakegate": lambda out=out, clock=clock: run_lakegate(
                        spark, settings, suite, source, out, clock
                    ),
                    "lakegate-parquet": lambda out=out, clock=clock: run_lakegate(
                        spark, parquet_settings, suite, source, out, clock
                    ),
                    "cuallee": lambda: run_cuallee(spark, source, url_pattern),
                }
                value, seconds, (jvm, py), load, stages = time_variant(
                    variant, actions[variant], ledger, sampler
                )
                run = Run(variant, repeat, seconds, jvm, py, load, stages, phases=clock.phases)
                if variant.startswith("lakegate"):
                    run.counts, run.status = value
                elif variant == "cuallee":
                    run.counts = {f"{r['rule']}({r['column']})": r["violations"] for r in value}
                    failed = [
                        k for k, r in zip(run.counts, value, strict=True) if r["status"] != "PASS"
                    ]
                    run.status = "PASS" if not failed else "FAIL " + ", ".join(failed)
                runs.append(run)
                print(
                    f"[{repeat + 1}/{args.repeats}] {LABELS[variant]:<24} {seconds:7.2f}s  "
                    f"JVM {_mb(jvm)} MB  load {load:.1f}  stages {stages['stages']}  "
                    f"to-driver {stages['task_result_bytes'] / 1024:,.0f} KB  "
                    f"{run.status} {run.counts if run.counts else ''}"
                    + (f"  phases {clock.phases}" if clock.phases else ""),
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
    finally:
        stop_session(spark)
        sampler.stop()

    summary = summarize(runs, args.rows)
    print_table(summary, args.rows, args.repeats)
    ratio = ratios(summary)
    print_ratios(ratio)
    problems = check_runs(runs, truth)
    print(f"ground truth: {truth['any']:,} rows break a row rule ({truth})")
    print("sanity: " + ("all counts match the ground truth" if not problems else "PROBLEMS"))
    for problem in problems:
        print(f"  {problem}")

    record = {
        "benchmark": "bench_items",
        "created_at": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": args.rows,
        "repeats": args.repeats,
        "seed": args.seed,
        "suite": str(args.suite),
        "input_parquet_bytes": input_bytes,
        "generate_seconds": round(generate_seconds, 3),
        "session_start_seconds": round(session_seconds, 3),
        "environment": {
            "spark": spark_version,
            "deequ": settings.deequ.coordinate,
            "cuallee": version("cuallee"),  # cuallee.__version__ says 0.15.2
            "master": settings.spark.master,
            "shuffle_partitions": settings.spark.conf.get("spark.sql.shuffle.partitions"),
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "ground_truth": truth,
        "cuallee_expected_violations": cuallee_expected(truth),
        "summary": summary,
        "ratios": ratio,
        "targets": {"b_over_d_max": TARGET_B_OVER_D},
        "problems": problems,
        "runs": [asdict(r) for r in runs],
    }
    path = args.json or RESULTS_DIR / f"items-{args.rows}-{datetime.now():%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results written to {path}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
