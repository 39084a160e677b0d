"""Benchmark the data-quality gate against a bare copy and the plain PyDeequ way, in one run.

On a generated table (default 10 million rows, 10 columns, realistic defects) and the suite
`checks/examples/bench_wide.yaml` (16 constraints: row rules and table metrics), it times,
interleaved a, b, c, a, b, c, ...:

  (a) copy      `spark.read.parquet(src).write.mode("overwrite").parquet(dst)`
  (a') copy-delta  the same copy written as a Delta table (lakegate's default output format)
  (b) lakegate  `spark_jobs.validate.run(...)`: metrics observed in the valid write, two Delta
                writes through the journal
  (b') lakegate-parquet  the same with `outputs.format: parquet` (staged and moved in)
  (b'') lakegate-lean-stats  Delta outputs with `outputs.delta_properties` keeping statistics
                of the non-string columns only (opt-in: `--variants ...,lakegate-lean-stats`)
  (c) pydeequ   the same constraints as PyDeequ `Check` calls, `VerificationSuite.run()`,
                `VerificationResult.rowLevelResultsAsDataFrame` and two filtered writes

and prints median seconds, rows/second, the ratios (b)/(a), (b)/(a'), (b')/(a) and (b)/(c),
the peak RSS of the driver JVM and of the driver's Python process (sampled in a background
thread), and the bytes tasks sent back to the driver (from Spark's status store) to show that
no rows are collected.
Each variant's row counts are checked (valid + quarantine == rows in) against a ground truth
computed once with plain Spark SQL. The table is generated once per run (not timed) into a
temporary folder; LAKEGATE_STATE_DIR points into it, so the repository's state is untouched.

Run (from the project root):

    .venv/bin/python bench/bench_validate.py                       # 10M rows, 3 repeats
    .venv/bin/python bench/bench_validate.py --rows 1000000 --repeats 1
    nohup .venv/bin/python bench/bench_validate.py > /tmp/bench_validate.log 2>&1 &

Results also go to a JSON file (`--json`, default bench/results/validate-<rows>-<time>.json).
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

DEFAULT_SUITE = PROJECT_ROOT / "checks" / "examples" / "bench_wide.yaml"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
VARIANTS = ("copy", "copy-delta", "lakegate", "lakegate-parquet", "pydeequ", "lakegate-lean-stats")
DEFAULT_VARIANTS = VARIANTS[:5]
# Delta statistics of the orders table's non-string columns only (docs/performance.md).
LEAN_STATS = {
    "delta.dataSkippingStatsColumns": "customer_id,amount,quantity,score,created_at",
}
LABELS = {
    "copy": "(a) copy read+write",
    "copy-delta": "(a') copy to Delta",
    "lakegate": "(b) lakegate validate",
    "lakegate-parquet": "(b') lakegate, parquet",
    "pydeequ": "(c) plain PyDeequ",
    "lakegate-lean-stats": "(b'') lakegate, lean stats",
}
# Issue 9: validate at most 2x the bare parquet copy and 0.6x plain PyDeequ.
TARGETS = {"b_over_a_max": 2.0, "b_over_c_max": 0.6}
# One id in DUP_EVERY repeats its predecessor: ~300 duplicated ids (600 rows) in 10M rows.
DUP_EVERY = 33_331
STATUSES = ("new", "paid", "shipped", "delivered", "cancelled")
COUNTRIES = ("DE", "FR", "US", "GB", "IT", "ES", "NL", "PL", "SE", "JP")
CATEGORIES = ("books", "games", "garden", "food", "toys", "tools", "music", "sports")
COUNTRY_PATTERN = "^[A-Z]{2}$"
# The constraint ids of bench_wide.yaml, in order; pydeequ_checks() writes the same ones.
EXPECTED_CONSTRAINTS = [
    "isComplete(id)",
    "isComplete(customer_id)",
    "isUnique(id)",
    "isContainedIn(status)",
    "isNonNegative(amount)",
    "isInRange(quantity)",
    "hasPattern(country)",
    "hasSize()",
    "hasCompleteness(customer_id)",
    "hasMean(score)",
    "hasStandardDeviation(score)",
    "hasApproxQuantile(amount)",
    "hasMin(quantity)",
    "hasMax(quantity)",
    "containsURL(description)",
    "hasEntropy(category)",
]
ROW_CHECK = "row rules"


# --------------------------------------------------------------------------- measurement


class MemorySampler(threading.Thread):
    """Samples the RSS of this Python process and of its Java children (the driver JVM)."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.interval = interval
        self.me = psutil.Process()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._peak_jvm = 0
        self._peak_py = 0
        self.jvm_pids: set[int] = set()

    def sample(self) -> None:
        """Take one sample and raise the peaks."""
        py = self.me.memory_info().rss
        jvm = 0
        pids = set()
        for child in self.me.children(recursive=True):
            try:
                if child.name().startswith("java"):
                    jvm += child.memory_info().rss
                    pids.add(child.pid)
            except psutil.Error:
                continue
        with self._lock:
            self._peak_py = max(self._peak_py, py)
            self._peak_jvm = max(self._peak_jvm, jvm)
            self.jvm_pids |= pids

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def take(self) -> tuple[int, int]:
        """Return (peak JVM RSS, peak Python RSS) since the last call and start anew."""
        self.sample()
        with self._lock:
            peaks = (self._peak_jvm, self._peak_py)
            self._peak_jvm = self._peak_py = 0
        return peaks

    def stop(self) -> None:
        self._halt.set()


class StageLedger:
    """Reads Spark's status store: stages run and bytes of task results sent to the driver."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.seen = self._max_stage()

    def _stages(self) -> list[Any]:
        gateway = self.spark.sparkContext._gateway
        store = self.spark.sparkContext._jsc.sc().statusStore()
        stages = store.stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0), None)
        return [stages.apply(i) for i in range(stages.size())]

    def _max_stage(self) -> int:
        return max((s.stageId() for s in self._stages()), default=-1)

    def take(self) -> dict[str, int]:
        """Stages, tasks and task-result bytes of the stages completed since the last call."""
        new = [s for s in self._stages() if s.stageId() > self.seen]
        self.seen = max([s.stageId() for s in new], default=self.seen)
        ran = [s for s in new if s.status().toString() != "SKIPPED"]
        return {
            "stages": len(ran),
            "tasks": sum(s.numCompleteTasks() for s in ran),
            "task_result_bytes": sum(int(s.resultSize()) for s in ran),
            "input_bytes": sum(int(s.inputBytes()) for s in ran),
            "shuffle_write_bytes": sum(int(s.shuffleWriteBytes()) for s in ran),
        }


@dataclass
class Run:
    """One timed execution of one variant."""

    variant: str
    repeat: int
    seconds: float
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    peak_jvm_rss: int
    peak_python_rss: int
    load_average: float
    spark: dict[str, int]
    phases: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def _uniform(salt: int, seed: int) -> str:
    """A deterministic uniform [0, 1) value per row, independent of partitioning."""
    return f"(CAST(pmod(xxhash64(n, {salt + seed * 1000}), 1000000) AS DOUBLE) / 1e6)"


def _pick(values: tuple[str, ...], salt: int, seed: int) -> str:
    items = ", ".join(f"'{v}'" for v in values)
    index = f"CAST(1 + pmod(xxhash64(n, {salt + seed * 1000}), {len(values)}) AS INT)"
    return f"element_at(array({items}), {index})"


def generate_table(spark: Any, path: str, rows: int, seed: int) -> None:
    """Write the `orders` table: 10 columns, defects at known rates, deterministic."""
    u = lambda salt: _uniform(salt, seed)  # noqa: E731
    partitions = max(2, rows // 1_000_000)
    columns = [
        f"CASE WHEN n % {DUP_EVERY} = {DUP_EVERY - 1} THEN n - 1 ELSE n END AS id",
        f"CASE WHEN {u(1)} < 0.005 THEN NULL "
        f"ELSE 1 + pmod(xxhash64(n, {11 + seed * 1000}), 500000) END AS customer_id",
        f"CASE WHEN {u(2)} < 0.001 THEN -round(1 + {u(3)} * 99, 2) "
        f"ELSE round(5 + {u(3)} * 495, 2) END AS amount",
        f"CAST(1 + pmod(xxhash64(n, {13 + seed * 1000}), 100) AS INT) AS quantity",
        f"CASE WHEN {u(4)} < 0.0005 THEN 'unknown' ELSE {_pick(STATUSES, 14, seed)} END AS status",
        f"CASE WHEN {u(5)} < 0.0002 THEN lower({_pick(COUNTRIES, 15, seed)}) "
        f"ELSE {_pick(COUNTRIES, 15, seed)} END AS country",
        f"{_pick(CATEGORIES, 16, seed)} AS category",
        f"{u(6)} AS score",
        f"CASE WHEN {u(7)} < 0.6 THEN concat('Order ', n, ' see https://shop.example.com/items/', "
        f"pmod(xxhash64(n, {17 + seed * 1000}), 100000), ' for details') "
        "ELSE concat('Order ', n, ' packed in a plain box') END AS description",
        f"timestamp_seconds(1700000000 + pmod(xxhash64(n, {18 + seed * 1000}), 31536000)) "
        "AS created_at",
    ]
    (
        spark.range(0, rows, 1, partitions)
        .withColumnRenamed("id", "n")
        .selectExpr(*columns)
        .write.mode("overwrite")
        .parquet(path)
    )


def ground_truth(spark: Any, path: str) -> dict[str, int]:
    """Rows breaking each row rule, and rows breaking any, by plain Spark SQL (not timed)."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(path)
    dup_ids = df.groupBy("id").count().where("count > 1").select("id", F.lit(True).alias("dup"))
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    rules = {
        "isComplete(customer_id)": "customer_id IS NULL",
        "isUnique(id)": "dup IS NOT NULL",
        "isContainedIn(status)": f"status IS NOT NULL AND status NOT IN ({statuses})",
        "isNonNegative(amount)": "amount < 0",
        "isInRange(quantity)": "quantity < 1 OR quantity > 100",
        "hasPattern(country)": f"country IS NULL OR NOT country RLIKE '{COUNTRY_PATTERN}'",
    }
    flagged = df.join(F.broadcast(dup_ids), "id", "left")
    sums = [F.sum(F.expr(f"CAST(coalesce({e}, false) AS INT)")).alias(k) for k, e in rules.items()]
    any_rule = " OR ".join(f"coalesce({e}, false)" for e in rules.values())
    sums.append(F.sum(F.expr(f"CAST({any_rule} AS INT)")).alias("any"))
    sums.append(F.count(F.lit(1)).alias("rows"))
    row = flagged.agg(*sums).first()
    return {k: int(row[k] or 0) for k in [*rules, "any", "rows"]}


# --------------------------------------------------------------------------- variants


class PhaseClock:
    """A `Progress` stand-in that records how long each step of `spark_jobs.validate.run` took."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._name: str | None = None
        self._started = time.perf_counter()

    def _close(self) -> None:
        if self._name is not None:
            self.phases[self._name] = round(time.perf_counter() - self._started, 3)
        self._name = None

    def step(self, text: str) -> None:
        self._close()
        self._name = text.split(" ")[0]
        self._started = time.perf_counter()

    def done(self) -> float:
        self._close()
        return sum(self.phases.values())


def run_copy(spark: Any, source: str, out: Path) -> tuple[int, int, int]:
    """(a) the bare read-and-write copy."""
    spark.read.parquet(source).write.mode("overwrite").parquet(str(out / "copy"))
    return -1, -1, -1  # counted afterwards, untimed


def run_copy_delta(spark: Any, source: str, out: Path) -> tuple[int, int, int]:
    """(a') the bare copy, written as a Delta table."""
    spark.read.parquet(source).write.format("delta").mode("overwrite").save(str(out / "copy"))
    return -1, -1, -1


def run_lakegate(
    spark: Any, settings: Any, suite: Any, source: str, out: Path, clock: PhaseClock
) -> tuple[int, int, int]:
    """(b) lakegate's validate job, writing the outputs in `settings.outputs.format`."""
    from spark_jobs.validate import ValidateSpec, run

    spec = ValidateSpec(suite=str(suite.path), input=source, output=str(out))
    counts = run(spark, settings, spec, suite=suite, progress=clock).counts  # type: ignore[arg-type]
    return counts.rows_in, counts.rows_valid, counts.rows_quarantined


def pydeequ_checks(spark: Any) -> list[Any]:
    """The suite's constraints as plain PyDeequ calls.

    Row rules keep Deequ's default assertion (every row complies): a Python lambda would end up
    in the row-level column and Spark cannot serialize it (Task not serializable).
    """
    from pydeequ.checks import Check, CheckLevel

    rows = (
        Check(spark, CheckLevel.Error, ROW_CHECK)
        .isComplete("id")
        .isComplete("customer_id")
        .isUnique("id")
        .isContainedIn("status", list(STATUSES))
        .isNonNegative("amount")
        .satisfies("quantity IS NULL OR (quantity >= 1 AND quantity <= 100)", "isInRange(quantity)")
        .hasPattern("country", COUNTRY_PATTERN)
    )
    metrics = (
        Check(spark, CheckLevel.Error, "table metrics")
        .hasSize(lambda n: n >= 1000)
        .hasCompleteness("customer_id", lambda r: r >= 0.99)
        .hasMean("score", lambda m: 0.45 <= m <= 0.55)
        .hasStandardDeviation("score", lambda s: 0.25 <= s <= 0.32)
        .hasApproxQuantile("amount", 0.5, lambda q: 100 <= q <= 400)
        .hasMin("quantity", lambda v: v >= 1)
        .hasMax("quantity", lambda v: v <= 100)
        .containsURL("description", lambda r: r >= 0.5)
        .hasEntropy("category", lambda e: e >= 1.5)
    )
    return [rows, metrics]


def run_pydeequ(spark: Any, source: str, out: Path) -> tuple[int, int, int]:
    """(c) VerificationSuite, row-level results, two filtered writes."""
    from pydeequ.verification import VerificationResult, VerificationSuite
    from pyspark.sql import functions as F

    df = spark.read.parquet(source)
    builder = VerificationSuite(spark).onData(df)
    for check in pydeequ_checks(spark):
        builder = builder.addCheck(check)
    result = builder.run()
    annotated = VerificationResult.rowLevelResultsAsDataFrame(spark, result, df)
    # Only the row-rule check decides: the metrics check's row-level column would blame rows
    # for ratio constraints (containsURL >= 0.5 fails the ~40% of rows without a URL) and
    # carries the Python assertions, which Spark cannot serialize into a task.
    ok = F.coalesce(F.col(f"`{ROW_CHECK}`"), F.lit(False))
    annotated.where(ok).select(*df.columns).write.mode("overwrite").parquet(str(out / "valid"))
    annotated.where(~ok).select(*df.columns).write.mode("overwrite").parquet(
        str(out / "quarantine")
    )
    return -1, -1, -1  # counted afterwards, untimed


# --------------------------------------------------------------------------- reporting


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def timing_summary(mine: list[Any], rows: int) -> dict[str, Any]:
    """Median, min and max seconds, rows/s, peaks and phases of one variant's runs.

    Shared with bench_items.py; each `Run` has seconds, phases, peak RSS and Spark counters.
    """
    seconds = [r.seconds for r in mine]
    median = statistics.median(seconds)
    phase_names = list(dict.fromkeys(p for r in mine for p in r.phases))
    return {
        "median_seconds": round(median, 3),
        "min_seconds": round(min(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "rows_per_second": round(rows / median),
        "peak_jvm_rss_bytes": max(r.peak_jvm_rss for r in mine),
        "peak_python_rss_bytes": max(r.peak_python_rss for r in mine),
        "task_result_bytes_max": max(r.spark["task_result_bytes"] for r in mine),
        "stages_median": statistics.median(r.spark["stages"] for r in mine),
        "phases_median_seconds": {
            p: round(statistics.median(r.phases.get(p, 0.0) for r in mine), 3) for p in phase_names
        },
    }


def summarize(runs: list[Run], rows: int) -> dict[str, dict[str, Any]]:
    """Median, min and max seconds, rows/s and peaks per variant."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r.variant == variant]
        if not mine:
            continue
        summary[variant] = {
            **timing_summary(mine, rows),
            "shuffle_write_bytes_median": statistics.median(
                r.spark["shuffle_write_bytes"] for r in mine
            ),
            "input_bytes_median": statistics.median(r.spark["input_bytes"] for r in mine),
            "rows_valid": mine[-1].rows_valid,
            "rows_quarantined": mine[-1].rows_quarantined,
        }
    return summary


def print_table(summary: dict[str, dict[str, Any]], rows: int, repeats: int) -> None:
    """The compact side-by-side table."""
    print()
    print(f"rows={rows:,}  repeats={repeats}  (medians; interleaved a,b,c per repeat)")
    header = (
        f"{'variant':<24}{'median s':>9}{'min s':>8}{'max s':>8}{'rows/s':>12}"
        f"{'stages':>7}{'shuffle MB':>11}{'JVM RSS MB':>11}{'Py RSS MB':>10}{'to driver KB':>13}"
    )
    print(header)
    print("-" * len(header))
    for variant, s in summary.items():
        print(
            f"{LABELS[variant]:<24}{s['median_seconds']:>9.2f}{s['min_seconds']:>8.2f}"
            f"{s['max_seconds']:>8.2f}{s['rows_per_second']:>12,}{s['stages_median']:>7g}"
            f"{_mb(s['shuffle_write_bytes_median']):>11}{_mb(s['peak_jvm_rss_bytes']):>11}"
            f"{_mb(s['peak_python_rss_bytes']):>10}{s['task_result_bytes_max'] / 1024:>13,.0f}"
        )
    if "lakegate" in summary:
        phases = summary["lakegate"]["phases_median_seconds"]
        print("(b) phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """(b)/(a) and (b)/(c) on medians."""
    medians = {v: summary.get(v, {}).get("median_seconds") for v in VARIANTS}

    def ratio(top: str, bottom: str) -> float | None:
        t, b = medians[top], medians[bottom]
        return round(t / b, 3) if t and b else None

    return {
        "b_over_a": ratio("lakegate", "copy"),
        "b_over_a_delta": ratio("lakegate", "copy-delta"),
        "b_parquet_over_a": ratio("lakegate-parquet", "copy"),
        "b_over_c": ratio("lakegate", "pydeequ"),
        "b_lean_stats_over_a": ratio("lakegate-lean-stats", "copy"),
        "b_lean_stats_over_b": ratio("lakegate-lean-stats", "lakegate"),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated defects")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="lakegate suite file")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)}",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder afterwards")
    parser.add_argument(
        "--json", type=Path, default=None, help="result file (default: bench/results/)"
    )
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"unknown variants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakegate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    suite = load_suite(args.suite)
    ids = [c.id for c in suite.constraints]
    if "pydeequ" in variants and ids != EXPECTED_CONSTRAINTS:
        print(
            f"{args.suite} has constraints {ids}, but the PyDeequ variant is written for "
            f"{EXPECTED_CONSTRAINTS}; update pydeequ_checks() or pass --variants copy,lakegate",
            file=sys.stderr,
        )
        return 2

    sampler = MemorySampler(args.sample_interval)
    sampler.start()
    settings = load_settings("local")
    parquet_settings = settings.model_copy(
        update={"outputs": settings.outputs.model_copy(update={"format": "parquet"})}
    )
    lean_settings = settings.model_copy(
        update={"outputs": settings.outputs.model_copy(update={"delta_properties": LEAN_STATS})}
    )
    t0 = time.perf_counter()
    spark = get_session(settings, "lakegate-bench-validate")
    session_seconds = time.perf_counter() - t0
    source = str(work / "input" / "orders.parquet")
    try:
        print(f"scratch folder {work}; session started in {session_seconds:.1f}s", flush=True)
        t0 = time.perf_counter()
        generate_table(spark, source, args.rows, args.seed)
        generate_seconds = time.perf_counter() - t0
        input_bytes = sum(p.stat().st_size for p in Path(source).rglob("*.parquet"))
        print(
            f"generated {args.rows:,} rows ({_mb(input_bytes)} MB parquet) in "
            f"{generate_seconds:.1f}s",
            flush=True,
        )
        t0 = time.perf_counter()
        truth = ground_truth(spark, source)
        print(f"ground truth in {time.perf_counter() - t0:.1f}s: {truth}", flush=True)
        ledger = StageLedger(spark)
        sampler.take()

        runs: list[Run] = []
        for repeat in range(args.repeats):
            for variant in variants:
                out = work / "out" / variant
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                clock = PhaseClock()
                actions: dict[str, Callable[[], tuple[int, int, int]]] = {
                    "copy": lambda out=out: run_copy(spark, source, out),
                    "copy-delta": lambda out=out: run_copy_delta(spark, source, out),
                    "lakegate": lambda out=out, clock=clock: run_lakegate(
                        spark, settings, suite, source, out, clock
                    ),
                    "lakegate-parquet": lambda out=out, clock=clock: run_lakegate(
                        spark, parquet_settings, suite, source, out, clock
                    ),
                    "pydeequ": lambda out=out: run_pydeequ(spark, source, out),
                    "lakegate-lean-stats": lambda out=out, clock=clock: run_lakegate(
                        spark, lean_settings, suite, source, out, clock
                    ),
                }
                load = os.getloadavg()[0]
                ledger.take()
                sampler.take()
                started = time.perf_counter()
                rows_in, rows_valid, rows_quarantined = actions[variant]()
                seconds = time.perf_counter() - started
                peak_jvm, peak_py = sampler.take()
                stages = ledger.take()
                # untimed sanity counts (parquet footers)
                if variant in {"copy", "copy-delta"}:
                    rows_in = truth["rows"]
                    reader = spark.read.format("delta" if variant == "copy-delta" else "parquet")
                    rows_valid = reader.load(str(out / "copy")).count()
                    rows_quarantined = 0
                elif variant == "pydeequ":
                    rows_in = truth["rows"]
                    rows_valid = spark.read.parquet(str(out / "valid")).count()
                    rows_quarantined = spark.read.parquet(str(out / "quarantine")).count()
                ledger.take()
                run = Run(
                    variant,
                    repeat,
                    seconds,
                    rows_in,
                    rows_valid,
                    rows_quarantined,
                    peak_jvm,
                    peak_py,
                    load,
                    stages,
                    clock.phases,
                )
                runs.append(run)
                print(
                    f"[{repeat + 1}/{args.repeats}] {LABELS[variant]:<24} {seconds:7.2f}s  "
                    f"in={rows_in:,} valid={rows_valid:,} quarantined={rows_quarantined:,}  "
                    f"JVM {_mb(peak_jvm)} MB  py {_mb(peak_py)} MB  load {load:.1f}  "
                    f"stages {stages['stages']}  "
                    f"to-driver {stages['task_result_bytes'] / 1024:,.0f} KB"
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
    problems = []
    for r in runs:
        if r.rows_valid + r.rows_quarantined != r.rows_in:
            problems.append(f"{r.variant} repeat {r.repeat}: valid + quarantine != rows in")
        if not r.variant.startswith("copy") and r.rows_quarantined != truth["any"]:
            problems.append(
                f"{r.variant} repeat {r.repeat}: quarantined {r.rows_quarantined:,}, "
                f"ground truth {truth['any']:,}"
            )
    b_over_a, b_over_c = ratio["b_over_a"], ratio["b_over_c"]
    if b_over_a is not None:
        verdict = "met" if b_over_a <= TARGETS["b_over_a_max"] else "MISSED"
        print(f"(b)/(a) = {b_over_a:.2f}  (issue 9 target <= {TARGETS['b_over_a_max']}: {verdict})")
    if b_over_c is not None:
        verdict = "met" if b_over_c <= TARGETS["b_over_c_max"] else "MISSED"
        print(f"(b)/(c) = {b_over_c:.2f}  (issue 9 target <= {TARGETS['b_over_c_max']}: {verdict})")
    if ratio["b_over_a_delta"] is not None:
        print(f"(b)/(a') = {ratio['b_over_a_delta']:.2f}  (both writing Delta)")
    if ratio["b_parquet_over_a"] is not None:
        print(f"(b')/(a) = {ratio['b_parquet_over_a']:.2f}  (both writing parquet)")
    if ratio["b_lean_stats_over_b"] is not None:
        print(
            f"(b'')/(b) = {ratio['b_lean_stats_over_b']:.2f}, (b'')/(a) = "
            f"{ratio['b_lean_stats_over_a']:.2f}  (Delta statistics of non-string columns only)"
        )
    print(f"ground truth: {truth['any']:,} rows break a row rule ({truth})")
    print("sanity: " + ("all counts add up and match the ground truth" if not problems else ""))
    for problem in problems:
        print(f"  {problem}")

    from pyspark import __version__ as spark_version

    record = {
        "benchmark": "bench_validate",
        "created_at": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": args.rows,
        "repeats": args.repeats,
        "seed": args.seed,
        "suite": str(args.suite),
        "constraints": len(ids),
        "input_parquet_bytes": input_bytes,
        "generate_seconds": round(generate_seconds, 3),
        "session_start_seconds": round(session_seconds, 3),
        "environment": {
            "spark": spark_version,
            "deequ": settings.deequ.coordinate,
            "master": settings.spark.master,
            "shuffle_partitions": settings.spark.conf.get("spark.sql.shuffle.partitions"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "ground_truth": truth,
        "summary": summary,
        "ratios": ratio,
        "targets": TARGETS,
        "problems": problems,
        "runs": [r.__dict__ for r in runs],
    }
    path = args.json or RESULTS_DIR / f"validate-{args.rows}-{datetime.now():%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results written to {path}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
