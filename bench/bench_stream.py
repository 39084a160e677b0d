"""Benchmark `lakegate stream validate` against `lakegate validate` over the same Items rows.

The Items table of bench_items.py (default 5 million rows, realistic defects) is written as
`--batches` parquet files (default 10) into a folder. Then, in one session, interleaved per
repeat:

  (b) validate  `spark_jobs.validate.run` over the folder as one table (Delta outputs, no
                report.html, no history)
  (s) stream    `spark_jobs.stream.run` over the same folder as a `parquet:` source with
                `maxFilesPerTrigger=1`, trigger available-now: one micro-batch per file, each
                split, appended once, its keys recorded and the running totals merged

It prints the seconds of each, the ratio (s)/(b) (issue 34's target: <= 1.3), the seconds per
batch, and checks that both saw every row and that each one's outputs add up. The quarantined
counts differ by design where a duplicated key spans two files: validate quarantines both rows,
the stream keeps the first (committed before the second arrived) and quarantines the second.

Run (from the project root):

    .venv/bin/python bench/bench_stream.py                       # 5M rows, 10 batches, 1 repeat
    .venv/bin/python bench/bench_stream.py --rows 1000000 --batches 5 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.bench_items import DEFAULT_SUITE, generate_items  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
TARGET_RATIO = 1.3


def write_batches(spark: Any, work: Path, rows: int, batches: int, seed: int) -> str:
    """The Items rows as `batches` parquet files in one folder (one file per micro-batch).

    A folder an earlier run with the same rows, batches and seed left in `work` is reused.
    """
    folder = work / "input" / "landing"
    stamp = work / "input" / f"landing-{rows}-{batches}-{seed}"
    if stamp.exists() and len(list(folder.glob("part-*.parquet"))) == batches:
        return str(folder)
    table = str(work / "input" / "items-table")
    generate_items(spark, table, rows, seed)
    spark.read.parquet(table).repartition(batches).write.mode("overwrite").parquet(str(folder))
    for marker in folder.glob("_*"):
        marker.unlink()
    stamp.touch()
    return str(folder)


def run_validate(spark: Any, settings: Any, suite: Any, source: str, out: Path) -> dict[str, int]:
    """(b) the batch job over the whole folder."""
    from dataclasses import asdict

    from spark_jobs.validate import ValidateSpec, run

    spec = ValidateSpec(
        suite=str(suite.path), input=source, output=str(out), keep_history=False, html_report=False
    )
    return asdict(run(spark, settings, spec, suite=suite).counts)


def run_stream(spark: Any, settings: Any, suite: Any, source: str, out: Path) -> dict[str, Any]:
    """(s) the stream over the same folder, one file per batch (OUT/output, OUT/checkpoint)."""
    from spark_jobs.stream import StreamValidateSpec, run

    spec = StreamValidateSpec(
        suite=str(suite.path),
        source=f"parquet:{source}",
        output=str(out / "output"),
        checkpoint=str(out / "checkpoint"),
        options={"maxFilesPerTrigger": "1"},
        keep_history=False,
        quiet=True,
    )
    result = run(spark, settings, spec, suite=suite)
    found: Any = result.report
    report = found.as_dict() if hasattr(found, "as_dict") else (found or {})
    return {
        "counts": report.get("counts"),
        "batches": report.get("batches"),
        "stopped_by": result.stopped_by,
    }


# Where a batch's time goes (`--profile`): the stream's phases, each timed where it is called.
_PHASES = (
    ("spark_jobs.stream", None, "checked_batch", "drift"),
    ("spark_jobs.services.stream_io", None, "batch_files", "drift.files"),
    ("spark_jobs.stream", None, "apply_suite", "gate"),
    ("checks.gate", None, "_group", "gate.grouping"),
    ("spark_jobs.stream", "_BatchProcessor", "_key_rules", "keys"),
    ("spark_jobs.services.stream_state", "KeySet", "_earlier", "keys.read"),
    ("spark_jobs.services.stream_state", "KeySet", "_repeats", "keys.join"),
    ("spark_jobs.services.stream_state", "KeySet", "_added", "keys.added"),
    ("spark_jobs.stream", "_BatchProcessor", "_write_valid", "valid"),
    ("spark_jobs.stream", "_BatchProcessor", "_write_quarantine", "quarantine*"),
    ("spark_jobs.stream", None, "_record_keys", "record*"),
    ("spark_jobs.services.stream_state", "RunningTotals", "merge", "merge*"),
    ("spark_jobs.services.stream_state", "RunningTotals", "commit", "commit"),
    ("spark_jobs.stream", "_BatchProcessor", "_save_history", "history"),
    ("spark_jobs.stream", "_BatchProcessor", "_report", "report"),
)


def profile_phases(spark: Any) -> None:
    """Time each phase of every batch and print one line per batch (* = in a thread).

    Also counts the Spark jobs a batch started (from the status tracker).
    """
    import importlib
    import threading

    from spark_jobs.stream import _BatchProcessor

    times: dict[str, float] = {}
    lock = threading.Lock()

    def timed(owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with lock:
                    times[label] = times.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, wrapper)

    for module_name, cls, attr, label in _PHASES:
        module = importlib.import_module(module_name)
        timed(getattr(module, cls) if cls else module, attr, label)
    tracker = spark.sparkContext.statusTracker()
    process = _BatchProcessor._process

    def profiled(self: Any, batch: Any, batch_id: int) -> None:
        times.clear()
        jobs = len(tracker.getJobIdsForGroup())
        t0 = time.perf_counter()
        process(self, batch, batch_id)
        whole = time.perf_counter() - t0
        phases = "  ".join(f"{k} {v:.2f}" for k, v in times.items())
        started = len(tracker.getJobIdsForGroup()) - jobs
        load = os.getloadavg()[0]
        print(
            f"  batch {batch_id}: {whole:.2f}s ({started} jobs, load {load:.1f}): {phases}",
            flush=True,
        )

    _BatchProcessor._process = profiled  # type: ignore[method-assign]


def floor(spark: Any, settings: Any, suite: Any, work: Path, source: str, n: int = 3) -> None:
    """What a batch costs whatever its size: `n` empty files streamed (one batch each), and a
    bare Delta append of one batch's file (`n` appends to one table), seconds each.
    """
    empty = work / "input" / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    one = spark.read.parquet(source)
    for i in range(n):
        one.limit(0).coalesce(1).write.mode("overwrite").parquet(str(work / "input" / f"e{i}"))
        empty.mkdir(parents=True, exist_ok=True)
        for part in (work / "input" / f"e{i}").glob("part-*.parquet"):
            part.rename(empty / f"empty-{i}.parquet")
    out = work / "out" / "floor"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    found = run_stream(spark, settings, suite, str(empty), out)
    whole = time.perf_counter() - t0
    print(
        f"floor: {n} empty batches {whole:.1f}s ({whole / n:.1f}s each), load {load:.1f}, {found}"
    )
    first = sorted(Path(source).glob("part-*.parquet"))[0]
    table, times = str(out / "bare"), []
    for _ in range(n):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        spark.read.parquet(str(first)).write.format("delta").mode("append").save(table)
        times.append(time.perf_counter() - t0)
    rows = spark.read.parquet(str(first)).count()
    shown = ", ".join(f"{t:.1f}" for t in times)
    print(f"floor: bare Delta append of one file ({rows:,} rows): {shown}s, load {load:.1f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--profile", action="store_true", help="print every batch's seconds per phase"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time a stream of empty files and a bare Delta append of one batch's file",
    )
    parser.add_argument(
        "--only", choices=["validate", "stream"], default=None, help="run one variant only"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakegate-bench-stream-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    suite = load_suite(args.suite)
    settings = load_settings("local")
    spark = get_session(settings, "lakegate-bench-stream")
    if args.profile:
        profile_phases(spark)
    seconds: dict[str, list[float]] = {"validate": [], "stream": []}
    outcome: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        source = write_batches(spark, work, args.rows, args.batches, args.seed)
        print(f"{args.rows:,} rows in {args.batches} files, {time.perf_counter() - t0:.1f}s")
        for repeat in range(args.repeats):
            for name, action in (("validate", run_validate), ("stream", run_stream)):
                if args.only not in (None, name):
                    continue
                out = work / "out" / name
                shutil.rmtree(out, ignore_errors=True)
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                outcome[name] = action(spark, settings, suite, source, out)
                seconds[name].append(time.perf_counter() - t0)
                print(
                    f"[{repeat + 1}/{args.repeats}] {name:<8} {seconds[name][-1]:7.1f}s  "
                    f"load {load:.1f}  {outcome[name]}",
                    flush=True,
                )
        if args.floor:
            floor(spark, settings, suite, work, source)
    finally:
        stop_session(spark)
    problems = _check(outcome, args.rows)
    medians = {k: statistics.median(v) for k, v in seconds.items() if v}
    ratio = None
    if len(medians) == 2:
        ratio = medians["stream"] / medians["validate"]
        print(
            f"validate {medians['validate']:.1f}s, stream {medians['stream']:.1f}s "
            f"({medians['stream'] / args.batches:.1f}s per batch); stream/validate = "
            f"{ratio:.2f} (target <= {TARGET_RATIO})"
        )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    result = {
        "when": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "batches": args.batches,
        "seconds": seconds,
        "ratio": ratio,
        "outcome": outcome,
        "problems": problems,
        "cpus": os.cpu_count(),
    }
    path = args.json or RESULTS_DIR / f"stream-{args.rows}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def _check(outcome: dict[str, Any], rows: int) -> list[str]:
    """Both variants saw every row, and each one's outputs add up."""
    problems = []
    found = {
        "validate": outcome.get("validate"),
        "stream": (outcome.get("stream") or {}).get("counts"),
    }
    for name, counts in found.items():
        if name not in outcome:
            continue
        if counts["rows_in"] != rows:
            problems.append(f"{name}: {counts['rows_in']} rows in, expected {rows}")
        if counts["rows_in"] != counts["rows_valid"] + counts["rows_quarantined"]:
            problems.append(f"{name}: outputs do not add up: {counts}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
