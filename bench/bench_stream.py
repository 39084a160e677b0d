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
    """The Items rows as `batches` parquet files in one folder (one file per micro-batch)."""
    table = str(work / "input" / "items-table")
    generate_items(spark, table, rows, seed)
    folder = work / "input" / "landing"
    spark.read.parquet(table).repartition(batches).write.mode("overwrite").parquet(str(folder))
    for marker in folder.glob("_*"):
        marker.unlink()
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
    """(s) the stream over the same folder, one file per batch."""
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
    report = result.report or {}
    return {"counts": report.get("counts"), "batches": report.get("batches")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
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
    seconds: dict[str, list[float]] = {"validate": [], "stream": []}
    outcome: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        source = write_batches(spark, work, args.rows, args.batches, args.seed)
        print(f"{args.rows:,} rows in {args.batches} files, {time.perf_counter() - t0:.1f}s")
        for repeat in range(args.repeats):
            for name, action in (("validate", run_validate), ("stream", run_stream)):
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
    finally:
        stop_session(spark)
    problems = _check(outcome, args.rows)
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = medians["stream"] / medians["validate"]
    print(
        f"validate {medians['validate']:.1f}s, stream {medians['stream']:.1f}s "
        f"({medians['stream'] / args.batches:.1f}s per batch); stream/validate = {ratio:.2f} "
        f"(target <= {TARGET_RATIO})"
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
    batch, stream = outcome["validate"], outcome["stream"]["counts"]
    for name, counts in (("validate", batch), ("stream", stream)):
        if counts["rows_in"] != rows:
            problems.append(f"{name}: {counts['rows_in']} rows in, expected {rows}")
        if counts["rows_in"] != counts["rows_valid"] + counts["rows_quarantined"]:
            problems.append(f"{name}: outputs do not add up: {counts}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
