"""Benchmark the fixed cost of a small job: a 5-row `lakegate validate` against bare PySpark copies.

Every variant is a whole process, started as a user starts it, so the JVM's start, the jars, the
imports and the first Delta commit are all in the time. Interleaved a, a', b, b' per repeat:

  (a)  copy             bare PySpark: a `local[2]` session (UI off), `data/items.csv` read with a
                        header and schema inference, written as parquet, session stopped
  (a') copy-delta       the same, written as a Delta table (Delta's cached jars on the class path)
  (b)  lakegate         `lakegate validate checks/examples/items.yaml --input data/items.csv
                        --no-history --quiet`: Delta outputs, report.json and report.html
  (b') lakegate-parquet the same with `outputs.format: parquet` (a copy of conf/ with that change)

It prints median, min and max seconds per variant and the ratios (b)/(a), (b)/(a') and (b')/(a)
(issue 9: a 5-row validate should come close to a bare copy), and writes a JSON result
(`--json`, default bench/results/small-job-<time>.json). Each run must exit 0 (lakegate: 0 or 1,
the checks failed) and lakegate's report.json must count 5 rows in, valid + quarantined; a
failed run stops the bench.

Run (from the project root, after `make setup`):

    .venv/bin/python bench/bench_small_job.py                 # 5 repeats
    .venv/bin/python bench/bench_small_job.py --repeats 3 --variants copy,lakegate
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

SUITE = PROJECT_ROOT / "checks" / "examples" / "items.yaml"
INPUT = PROJECT_ROOT / "data" / "items.csv"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
VARIANTS = ("copy", "copy-delta", "lakegate", "lakegate-parquet")
LABELS = {
    "copy": "(a) bare PySpark copy, parquet",
    "copy-delta": "(a') bare PySpark copy, Delta",
    "lakegate": "(b) lakegate validate, Delta",
    "lakegate-parquet": "(b') lakegate validate, parquet",
}
BARE_COPY = """
import sys
from pyspark.sql import SparkSession
source, target, fmt, jars = sys.argv[1:5]
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
builder = SparkSession.builder.master("local[2]").appName("bare-copy")
builder = builder.config("spark.ui.enabled", "false")
if fmt == "delta":
    builder = (
        builder.config("spark.jars", jars)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    )
spark = builder.getOrCreate()
frame = spark.read.option("header", True).option("inferSchema", True).csv(source)
frame.write.format(fmt).mode("overwrite").save(target)
spark.stop()
"""


def delta_jars() -> str:
    """Delta's jars from the project's jar cache (resolved by `make setup`), comma-separated."""
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import cached_jars

    jars = cached_jars(load_settings()) or []
    delta = [jar for jar in jars if "delta" in Path(jar).name or "antlr4" in Path(jar).name]
    if not delta:
        raise SystemExit("bench_small_job: no cached Delta jars; run `make setup` first")
    return ",".join(delta)


def parquet_conf(scratch: Path) -> Path:
    """A copy of conf/ whose local environment writes parquet outputs."""
    target = scratch / "conf-parquet"
    shutil.copytree(PROJECT_ROOT / "conf", target)
    local = target / "local.yaml"
    text = local.read_text()
    if "  format: delta" not in text:
        raise SystemExit("bench_small_job: conf/local.yaml no longer says `outputs.format: delta`")
    text = text.replace("  format: delta", "  format: parquet", 1)
    local.write_text(f"project_root: {PROJECT_ROOT}\n{text}")
    return target


def command_for(variant: str, out: Path, jars: str) -> list[str]:
    """The command line of one run of `variant`, writing under `out`."""
    if variant in ("copy", "copy-delta"):
        fmt = "parquet" if variant == "copy" else "delta"
        return [sys.executable, "-c", BARE_COPY, str(INPUT), str(out / "copy"), fmt, jars]
    lakegate = str(Path(sys.executable).with_name("lakegate"))
    return [
        *(lakegate, "validate", str(SUITE), "--input", str(INPUT), "--output", str(out)),
        *("--no-history", "--quiet"),
    ]


def run_once(variant: str, scratch: Path, jars: str, conf: Path, round_no: int) -> float:
    """Run `variant` once as its own process; returns its wall seconds."""
    out = scratch / f"{variant}-{round_no}"
    command = command_for(variant, out, jars)
    env = dict(os.environ, LAKEGATE_STATE_DIR=str(scratch / "state"))
    if variant == "lakegate-parquet":
        env["LAKEGATE_CONF_DIR"] = str(conf)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    seconds = time.perf_counter() - started
    # lakegate exits 1 when an error-level check fails, as Items' example data makes it do.
    if done.returncode not in ((0, 1) if variant.startswith("lakegate") else (0,)):
        raise SystemExit(f"bench_small_job: {variant} exited {done.returncode}:\n{done.stderr}")
    if variant.startswith("lakegate"):
        counts = json.loads((out / "report.json").read_text())["counts"]
        if counts["rows_in"] != 5 or counts["rows_valid"] + counts["rows_quarantined"] != 5:
            raise SystemExit(f"bench_small_job: {variant} counted {counts}, not 5 rows")
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Median, min, max and every run, per variant."""
    return {
        name: {
            "median_s": statistics.median(runs),
            "min_s": min(runs),
            "max_s": max(runs),
            "runs_s": runs,
        }
        for name, runs in times.items()
    }


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    """(b)/(a), (b)/(a') and (b')/(a), where both variants ran."""
    pairs = {
        "(b)/(a)": ("lakegate", "copy"),
        "(b)/(a')": ("lakegate", "copy-delta"),
        "(b')/(a)": ("lakegate-parquet", "copy"),
    }
    return {
        label: summary[top]["median_s"] / summary[bottom]["median_s"]
        for label, (top, bottom) in pairs.items()
        if top in summary and bottom in summary
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: repeats, variants, JSON path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Time the variants interleaved, print the table and ratios, write the JSON result."""
    args = parse_args(argv)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="bench-small-job-") as folder:
        scratch = Path(folder)
        jars = delta_jars()
        conf = parquet_conf(scratch)
        for round_no in range(args.repeats):
            for variant in args.variants:
                seconds = run_once(variant, scratch, jars, conf, round_no)
                times[variant].append(seconds)
                print(f"round {round_no + 1}: {LABELS[variant]:<34} {seconds:6.2f} s", flush=True)
    summary = summarize(times)
    print(f"\n{'variant':<34} {'median s':>9} {'min-max s':>13}")
    for name, row in summary.items():
        spread = f"{row['min_s']:.2f}-{row['max_s']:.2f}"
        print(f"{LABELS[name]:<34} {row['median_s']:9.2f} {spread:>13}")
    ratio = ratios(summary)
    for label, value in ratio.items():
        print(f"{label} = {value:.2f}")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = args.json or RESULTS_DIR / f"small-job-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": "small_job",
        "when": stamp,
        "machine": platform.node(),
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load_after,
        "summary": summary,
        "ratios": ratio,
    }
    path.write_text(json.dumps(result, indent=2))
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
