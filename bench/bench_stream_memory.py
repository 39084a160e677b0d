"""Driver memory and running-state size of `lakegate stream validate` over many micro-batches.

Issue 34: "Driver memory flat over 100 batches; running-state size reported per batch." The
Items table of bench_items.py (`--batches` x `--rows-per-batch` rows, default 100 x 10k) is
written as one parquet file per batch; then ONE query (`spark_jobs.stream.run`, trigger
available-now, `maxFilesPerTrigger=1`) gates it in `--batches` micro-batches, in this process.

The hook: the bench wraps the foreachBatch function the stream hands to `start_query` (the
product code is not changed). After a batch returns, and before Spark starts the next one, it
samples (the query waits meanwhile, so no batch work is in flight):

  - the driver JVM (py4j): heap used after `System.gc()` (a full GC with G1), the old
    generation's use after that collection, heap committed, non-heap (metaspace, code cache),
    classes loaded, threads, jobs and SQL executions Spark's status store keeps, cached RDDs
  - RSS of the JVM process and of this Python process (psutil), Python objects tracked by gc
  - the running state under CHECKPOINT/_lakegate: each key table's rows (Delta) and bytes (all
    files, and the live ones), the state/ folder's bytes, report.json's `key_state`, and the
    bytes of Spark's own checkpoint and of the outputs' Delta logs

`--variant ttl` runs the same with a suite copy bounding the key state
(`stream: key_state: ttl: --ttl`). It prints a table every 10 batches and a summary (first,
warm-up, last, max, and the least-squares slope per batch after the warm-up), takes a
`jmap -histo:live` of the driver after the warm-up and at the end (the classes that grew most),
and writes JSON to bench/results/.

Run (from the project root; a script, not a test):

    .venv/bin/python bench/bench_stream_memory.py                          # 100 x 10k, no bound
    .venv/bin/python bench/bench_stream_memory.py --variant ttl --ttl "2 minutes"
    .venv/bin/python bench/bench_stream_memory.py --batches 5 --rows-per-batch 5000   # smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.bench_items import DEFAULT_SUITE  # noqa: E402
from bench.bench_stream import run_stream, write_batches  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
MB = 1024 * 1024
# The series the summary fits a line to (bytes), and their labels.
SERIES = {
    "heap_after_gc": "heap used after GC",
    "old_gen_after_gc": "old gen after GC",
    "nonheap_used": "non-heap used",
    "jvm_rss": "JVM RSS",
    "python_rss": "Python RSS",
    "key_rows": "key table rows",
    "key_bytes": "key table bytes",
    "key_live_bytes": "key table live bytes",
    "state_bytes": "state/ bytes",
    "checkpoint_bytes": "Spark checkpoint bytes",
}


# --------------------------------------------------------------------------- probes


def dir_bytes(path: Path, *, skip: str | None = None) -> int:
    """Bytes of every file under `path` (0 if absent), leaving out a top-level `skip` folder."""
    if not path.exists():
        return 0
    total = 0
    for entry in path.iterdir():
        if entry.name == skip:
            continue
        if entry.is_dir():
            total += dir_bytes(entry)
        else:
            total += entry.stat().st_size
    return total


class Probe:
    """Reads the driver JVM, both processes' RSS and the stream's running state."""

    def __init__(self, spark: Any, checkpoint: Path, output: Path) -> None:
        self.spark = spark
        self.jvm = spark.sparkContext._jvm
        self.checkpoint = checkpoint
        self.output = output
        self.me = psutil.Process()
        self.java = self._java_process()

    def _java_process(self) -> psutil.Process | None:
        for child in self.me.children(recursive=True):
            try:
                if child.name().startswith("java"):
                    return child
            except psutil.Error:
                continue
        return None

    def jvm_memory(self) -> dict[str, Any]:
        """The JVM's memory after a full GC, and what Spark keeps that could grow."""
        system = self.jvm.java.lang.System
        management = self.jvm.java.lang.management.ManagementFactory
        system.gc()
        memory = management.getMemoryMXBean()
        heap = memory.getHeapMemoryUsage()
        old_gen = 0
        for pool in management.getMemoryPoolMXBeans():
            if "Old Gen" in pool.getName() and pool.getCollectionUsage() is not None:
                old_gen = pool.getCollectionUsage().getUsed()
        sc = self.spark.sparkContext._jsc.sc()
        return {
            "heap_after_gc": heap.getUsed(),
            "old_gen_after_gc": old_gen,
            "heap_committed": heap.getCommitted(),
            "nonheap_used": memory.getNonHeapMemoryUsage().getUsed(),
            "classes_loaded": management.getClassLoadingMXBean().getLoadedClassCount(),
            "jvm_threads": management.getThreadMXBean().getThreadCount(),
            "jobs_kept": sc.statusStore().jobsList(None).size(),
            "sql_executions_kept": self.spark._jsparkSession.sharedState().statusStore()
            .executionsCount(),
            "cached_rdds": self.spark.sparkContext._jsc.getPersistentRDDs().size(),
        }  # fmt: skip

    def rss(self) -> dict[str, int]:
        """RSS of the JVM and of this Python process; Python objects gc tracks."""
        java = self.java.memory_info().rss if self.java is not None else 0
        return {
            "jvm_rss": java,
            "python_rss": self.me.memory_info().rss,
            "python_objects": len(gc.get_objects()),
        }

    def state(self) -> dict[str, Any]:
        """Rows and bytes of the key tables, bytes of state/, report.json's key_state."""
        lakegate = self.checkpoint / "_lakegate"
        keys = sorted(p for p in (lakegate / "keys").glob("*") if p.is_dir())
        live = {p.name: delta_live_files(p) for p in keys}
        report_path = self.output / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        return {
            "key_rows": sum(rows for files in live.values() for _, rows in files.values()),
            "key_rows_per_scope": {
                name: sum(rows for _, rows in files.values()) for name, files in live.items()
            },
            "key_bytes": sum(dir_bytes(p) for p in keys),
            "key_live_bytes": sum(size for files in live.values() for size, _ in files.values()),
            "key_live_files": sum(len(files) for files in live.values()),
            "state_bytes": dir_bytes(lakegate / "state"),
            "state_folders": len(list((lakegate / "state").glob("*"))),
            "checkpoint_bytes": dir_bytes(self.checkpoint, skip="_lakegate"),
            "delta_log_bytes": sum(
                dir_bytes(self.output / t / "_delta_log") for t in ("valid", "quarantine")
            ),
            "report_bytes": report_path.stat().st_size if report_path.exists() else 0,
            "key_state": report.get("key_state"),
            "batches_reported": (report.get("batches") or {}).get("count"),
        }


def delta_live_files(table: Path) -> dict[str, tuple[int, int]]:
    """The files of a Delta table's newest snapshot, read from its log without Spark.

    path -> (bytes, rows): the last checkpoint's adds, then the JSON commits after it.
    """
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    log = table / "_delta_log"
    files: dict[str, tuple[int, int]] = {}
    start = -1
    if (log / "_last_checkpoint").exists():
        start = int(json.loads((log / "_last_checkpoint").read_text())["version"])
        for part in sorted(log.glob(f"{start:020d}.checkpoint*.parquet")):
            for add in pq.read_table(part, columns=["add"]).column("add").to_pylist():
                if add:
                    files[add["path"]] = (int(add["size"]), _rows(add.get("stats")))
    for commit in sorted(log.glob("*.json")):
        if int(commit.stem) <= start:
            continue
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                add = action["add"]
                files[add["path"]] = (int(add["size"]), _rows(add.get("stats")))
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return files


def _rows(stats: str | None) -> int:
    """numRecords of an add action's statistics (0 without statistics)."""
    return int(json.loads(stats).get("numRecords", 0)) if stats else 0


# --------------------------------------------------------------------------- the hook


class Sampler:
    """Collects one sample after every batch; prints a table every `every` batches."""

    def __init__(self, probe: Probe, args: argparse.Namespace, partial: Path) -> None:
        self.probe = probe
        self.every = args.every
        self.histo_at = 0 if args.no_histo else args.warmup
        self.python_trace = args.tracemalloc
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.partial = partial
        self.samples: list[dict[str, Any]] = []
        self.histograms: dict[str, dict[str, tuple[int, int]]] = {}
        self.traces: dict[str, Any] = {}
        self.errors: list[str] = []

    def wrap(self, process: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        """The foreachBatch function that runs `process`, then samples."""

        def sampled(batch: Any, batch_id: int) -> None:
            t0 = time.perf_counter()
            process(batch, batch_id)
            seconds = time.perf_counter() - t0
            try:
                self.sample(batch_id, seconds)
            except Exception as exc:  # a probe's failure must not fail the query
                self.errors.append(f"batch {batch_id}: {exc!r}")
                print(f"sample after batch {batch_id} failed: {exc!r}", file=sys.stderr)
            if time.monotonic() > self.deadline and hasattr(process, "stop_reason"):
                # the stream's own stop between batches (as on SIGTERM)
                process.stop_reason = process.stop_reason or "bench time limit"

        return sampled

    def sample(self, batch_id: int, seconds: float) -> None:
        """One row: state first (its Spark jobs' garbage is then collected), JVM, RSS."""
        t0 = time.perf_counter()
        row: dict[str, Any] = {"batch": len(self.samples) + 1, "batch_id": batch_id}
        row["batch_seconds"] = round(seconds, 2)
        row["load1"] = os.getloadavg()[0]
        row.update(self.probe.state())
        row.update(self.probe.jvm_memory())
        row.update(self.probe.rss())
        row["sample_seconds"] = round(time.perf_counter() - t0, 2)
        self.samples.append(row)
        if row["batch"] == self.histo_at:
            self._snapshot("warm")
        if row["batch"] % self.every == 0:
            print_rows(self.samples, self.every, header=row["batch"] == self.every)
            self.partial.write_text(json.dumps({"samples": self.samples}, default=str))

    def _snapshot(self, label: str) -> None:
        """A heap histogram of the driver JVM and, if asked, a Python allocation snapshot."""
        if self.probe.java is not None:
            self.histograms[label] = heap_histogram(self.probe.java.pid)
        if self.python_trace:
            self.traces[label] = tracemalloc.take_snapshot()

    def finish(self) -> None:
        """The last snapshots (after the query ended)."""
        self._snapshot("end")


@contextmanager
def sampled_batches(sampler: Sampler) -> Iterator[None]:
    """While open, `spark_jobs.stream.run` hands Spark the sampler's wrapper of its function."""
    import spark_jobs.stream as stream

    original = stream.start_query  # type: ignore[attr-defined]

    def start_query(frame: Any, process: Any, *args: Any) -> Any:
        return original(frame, sampler.wrap(process), *args)

    stream.start_query = start_query  # type: ignore[attr-defined,assignment]
    try:
        yield
    finally:
        stream.start_query = original  # type: ignore[attr-defined]


def heap_histogram(pid: int) -> dict[str, tuple[int, int]]:
    """`jmap -histo:live PID` (forces a full GC): class -> (instances, bytes)."""
    jmap = shutil.which("jmap")
    if jmap is None:
        return {}
    out = subprocess.run(
        [jmap, "-histo:live", str(pid)], capture_output=True, text=True, timeout=300, check=False
    ).stdout
    classes: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].endswith(":"):
            classes[parts[3]] = (int(parts[1]), int(parts[2]))
    return classes


# --------------------------------------------------------------------------- summary


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def summarize(samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """First, warm-up, last, max and slope per batch (batches >= warmup) of every series."""
    after = [s for s in samples if s["batch"] >= warmup] or samples
    summary: dict[str, Any] = {}
    for key in SERIES:
        values = [s[key] for s in samples if s.get(key) is not None]
        if not values:
            continue
        fit = slope([(s["batch"], s[key]) for s in after if s.get(key) is not None])
        summary[key] = {
            "first": values[0],
            "at_warmup": after[0].get(key),
            "last": values[-1],
            "max": max(values),
            "slope_per_batch": fit,
            "fitted_growth_after_warmup": fit * (after[-1]["batch"] - after[0]["batch"]),
        }
    return summary


def histogram_growth(
    histograms: dict[str, dict[str, tuple[int, int]]], top: int = 20
) -> list[dict[str, Any]]:
    """The classes whose live bytes grew most from the warm-up histogram to the last."""
    warm, end = histograms.get("warm"), histograms.get("end")
    if not warm or not end:
        return []
    grown: list[dict[str, Any]] = []
    for name, (count, size) in end.items():
        count0, size0 = warm.get(name, (0, 0))
        grown.append({"class": name, "instances": count - count0, "bytes": size - size0})
    grown.sort(key=lambda g: -abs(g["bytes"]))
    return grown[:top]


def trace_growth(traces: dict[str, Any], top: int = 15) -> list[str]:
    """Python allocation sites that grew most from the warm-up snapshot to the last."""
    if "warm" not in traces or "end" not in traces:
        return []
    stats = traces["end"].compare_to(traces["warm"], "lineno")
    return [str(stat) for stat in stats[:top]]


def print_rows(samples: list[dict[str, Any]], every: int, *, header: bool) -> None:
    """Every `every`-th sample as a table row (MB), with the mean batch seconds since the last."""
    if header:
        print(
            f"{'batch':>5} {'s/batch':>7} {'load':>5} {'heapGC':>7} {'oldGC':>7} {'nonheap':>7} "
            f"{'jvmRSS':>7} {'pyRSS':>6} {'keyrows':>8} {'keyMB':>6} {'liveMB':>6} "
            f"{'stateMB':>7} {'key_state':>10} {'jobs':>5} {'sqlx':>5}",
            flush=True,
        )
    last = samples[-every:]
    row = samples[-1]
    mean = sum(s["batch_seconds"] for s in last) / len(last)
    held = sum((row.get("key_state") or {}).values())
    print(
        f"{row['batch']:>5} {mean:>7.1f} {row['load1']:>5.1f} {row['heap_after_gc'] / MB:>7.1f} "
        f"{row['old_gen_after_gc'] / MB:>7.1f} {row['nonheap_used'] / MB:>7.1f} "
        f"{row['jvm_rss'] / MB:>7.0f} {row['python_rss'] / MB:>6.0f} {row['key_rows']:>8} "
        f"{row['key_bytes'] / MB:>6.2f} {row['key_live_bytes'] / MB:>6.2f} "
        f"{row['state_bytes'] / MB:>7.2f} {held:>10} {row['jobs_kept']:>5} "
        f"{row['sql_executions_kept']:>5}",
        flush=True,
    )


def print_summary(summary: dict[str, Any], warmup: int) -> None:
    """One line per series: first, at warm-up, last, max, slope per batch after the warm-up."""
    print(f"\nseries (MB unless rows)       first  b{warmup:<3}   last    max   slope/batch  fit")
    for key, label in SERIES.items():
        if key not in summary:
            continue
        s = summary[key]
        scale = 1 if key == "key_rows" else MB
        unit = "rows" if key == "key_rows" else "KB"
        per = s["slope_per_batch"] / (1 if key == "key_rows" else 1024)
        print(
            f"{label:<26} {s['first'] / scale:>8.1f} {(s['at_warmup'] or 0) / scale:>8.1f} "
            f"{s['last'] / scale:>6.1f} {s['max'] / scale:>6.1f} {per:>9.1f} {unit:<4} "
            f"{s['fitted_growth_after_warmup'] / scale:>6.1f}"
        )


# --------------------------------------------------------------------------- run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rows-per-batch", type=int, default=10_000)
    parser.add_argument("--variant", choices=["unbounded", "ttl"], default="unbounded")
    parser.add_argument("--ttl", default="2 minutes", help="the key TTL of --variant ttl")
    parser.add_argument("--warmup", type=int, default=10, help="batches left out of the slopes")
    parser.add_argument("--every", type=int, default=10, help="print a row every N batches")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--max-minutes", type=float, default=600, help="stop the query after this (between batches)"
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        help="a Spark setting K=V over conf/local.yaml's spark.conf and stream.spark_conf",
    )
    parser.add_argument("--no-histo", action="store_true", help="skip the jmap histograms")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace Python allocations (slower)"
    )
    return parser.parse_args(argv)


def suite_file(args: argparse.Namespace, work: Path) -> Path:
    """The suite as given, or (variant ttl) a copy with `stream: key_state: ttl`."""
    if args.variant == "unbounded":
        return Path(args.suite)
    text = Path(args.suite).read_text().rstrip("\n")
    bounded = work / f"{Path(args.suite).stem}-ttl.yaml"
    bounded.write_text(f"{text}\nstream:\n  key_state:\n    ttl: {args.ttl}\n")
    return bounded


def code_in_use(spark: Any) -> dict[str, str]:
    """Where the driver and a Python worker import spark_jobs from (the clone under test)."""
    import spark_jobs

    worker = (
        spark.sparkContext.parallelize([0], 1)
        .map(lambda _: __import__("spark_jobs").__file__)
        .collect()[0]
    )
    return {"driver": str(spark_jobs.__file__), "worker": str(worker)}


def measure(args: argparse.Namespace, work: Path, partial: Path) -> dict[str, Any]:
    """Generate the files, run the sampled stream, return the result document."""
    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session
    from spark_jobs.services.stream_io import stream_settings

    rows = args.batches * args.rows_per_batch
    suite = load_suite(suite_file(args, work))
    settings = stream_settings(load_settings("local"))  # as `stream validate` builds its session
    settings.spark.conf.update(dict(pair.split("=", 1) for pair in args.conf))
    spark = get_session(settings, "lakegate-bench-stream-memory")
    try:
        code = code_in_use(spark)
        print(f"spark_jobs from: driver {code['driver']}, worker {code['worker']}", flush=True)
        source = write_batches(spark, work, rows, args.batches, args.seed)
        print(f"{rows:,} rows in {args.batches} files; variant {args.variant}", flush=True)
        probe = Probe(spark, work / "checkpoint", work / "output")
        sampler = Sampler(probe, args, partial)
        if args.tracemalloc:
            tracemalloc.start(10)
        load0, t0 = os.getloadavg(), time.perf_counter()
        with sampled_batches(sampler):
            outcome = run_stream(spark, settings, suite, source, work)
        seconds = time.perf_counter() - t0
        if not args.no_histo or args.tracemalloc:
            sampler.finish()
        load1 = os.getloadavg()
    finally:
        stop_session(spark)
    return {
        "when": datetime.now(UTC).isoformat(),
        "variant": args.variant,
        "ttl": args.ttl if args.variant == "ttl" else None,
        "conf": args.conf,
        "rows": rows,
        "batches": args.batches,
        "rows_per_batch": args.rows_per_batch,
        "warmup": args.warmup,
        "seconds": seconds,
        "load_start": load0,
        "load_end": load1,
        "cpus": os.cpu_count(),
        "code": code,
        "outcome": outcome,
        "samples": sampler.samples,
        "summary": summarize(sampler.samples, args.warmup),
        "heap_growth_classes": histogram_growth(sampler.histograms),
        "python_growth": trace_growth(sampler.traces),
        "sample_errors": sampler.errors,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakegate-bench-stream-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    path = args.json or RESULTS_DIR / f"stream-memory-{args.variant}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = measure(args, work, path.with_suffix(".partial.json"))
    print_summary(result["summary"], args.warmup)
    done = len(result["samples"])
    print(f"\n{done} batches in {result['seconds']:.0f}s, load {result['load_start']}"
          f" -> {result['load_end']}; outcome {result['outcome']}")  # fmt: skip
    for grown in result["heap_growth_classes"][:10]:
        print(f"  heap {grown['bytes'] / 1024:>9.1f} KB {grown['instances']:>8} {grown['class']}")
    for line in result["python_growth"][:10]:
        print(f"  python {line}")
    problems = list(result["sample_errors"])
    if result["outcome"]["stopped_by"] == "bench time limit":
        print(f"NOTE: stopped by --max-minutes after {len(result['samples'])} batches")
    elif len(result["samples"]) != args.batches:
        problems.append(f"{len(result['samples'])} batches sampled, expected {args.batches}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
