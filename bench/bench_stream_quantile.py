"""Does the running approx-quantile state of `lakegate stream validate` stay bounded?

Deequ's `hasApproxQuantile` keeps a Spark `QuantileSummaries` (Greenwald-Khanna) as its state;
the stream merges the batch's into the running total's every batch and saves it under
`CHECKPOINT/_lakegate/state/<batch_id>/`. This bench streams `--batches` small parquet files
(`--rows-per-batch` rows each, one file per batch, `available-now`) through a suite with two
approx quantiles and, after every batch (the query waits meanwhile), reads the newest state
folder: the bytes and entries of each saved quantile digest (Deequ's file: an int length, then
Spark's serialized `PercentileDigest`: int threshold, double relative error, long count, int
entries, then value/g/delta per entry, big-endian). At the end it ranks the running metrics
among all rows (the rank error, as a fraction of the rows, is what Deequ's relative error
bounds) and computes Spark's own `percentile_approx` over all rows with the same accuracy.

Run (from the project root; a script, not a test):

    .venv/bin/python bench/bench_stream_quantile.py --batches 80 --rows-per-batch 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.bench_stream import run_stream  # noqa: E402
from bench.bench_stream_memory import sampled_batches  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
QUANTILES = (0.5, 0.9)
SUITE = """\
suite: quantile-state
checks:
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasApproxQuantile: {column: amount, quantile: 0.5, max: 1000000}
      - hasApproxQuantile: {column: amount, quantile: 0.9, max: 1000000}
"""
_HEADER = struct.Struct(">idqi")  # compressThreshold, relativeError, count, entries
_ENTRY = 24  # value (double), g (long), delta (long)


def digest_of(data: bytes) -> dict[str, Any] | None:
    """The header of a saved `PercentileDigest` (Deequ's file: int length, then the digest).

    None when `data` is not one.
    """
    if len(data) < 4 + _HEADER.size or struct.unpack_from(">i", data)[0] != len(data) - 4:
        return None
    data = data[4:]
    _threshold, error, count, entries = _HEADER.unpack_from(data)
    if not (0 < error < 1 and entries >= 0 and len(data) == _HEADER.size + entries * _ENTRY):
        return None
    return {"bytes": len(data), "entries": entries, "count": count, "relative_error": error}


def quantile_states(checkpoint: Path) -> list[dict[str, Any]]:
    """The quantile digests saved in the newest `state/<batch_id>/` folder."""
    state = checkpoint / "_lakegate" / "state"
    folders = [p for p in state.glob("*") if p.name.isdigit()] if state.exists() else []
    if not folders:
        return []
    newest = max(folders, key=lambda p: int(p.name))
    found = []
    for path in sorted(newest.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            digest = digest_of(path.read_bytes())
            if digest is not None:
                found.append(digest | {"file": path.name})
    return found


class QuantileProbe:
    """After every batch: the saved quantile digests and the running metrics of report.json."""

    def __init__(self, checkpoint: Path, output: Path) -> None:
        self.checkpoint = checkpoint
        self.output = output
        self.samples: list[dict[str, Any]] = []

    def wrap(self, process: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        """The foreachBatch function that runs `process`, then samples."""

        def sampled(batch: Any, batch_id: int) -> None:
            t0 = time.perf_counter()
            process(batch, batch_id)
            seconds = time.perf_counter() - t0
            digests = quantile_states(self.checkpoint)
            row = {
                "batch_id": batch_id,
                "seconds": round(seconds, 2),
                "load1": os.getloadavg()[0],
                "digests": digests,
                "entries": [d["entries"] for d in digests],
                "bytes": [d["bytes"] for d in digests],
                "metrics": running_metrics(self.output),
            }
            self.samples.append(row)
            if batch_id % 10 == 9:
                print(
                    f"batch {batch_id}: {seconds:.1f}s, digest entries {row['entries']}, "
                    f"bytes {row['bytes']}, metrics {row['metrics']}",
                    flush=True,
                )

        return sampled


def running_metrics(output: Path) -> dict[str, float]:
    """report.json's running-total approx quantiles, by quantile."""
    path = output / "report.json"
    if not path.exists():
        return {}
    constraints = json.loads(path.read_text()).get("constraints", [])
    quantiles = [c for c in constraints if "ApproxQuantile" in str(c.get("constraint"))]
    found = {}
    for quantile, constraint in zip(QUANTILES, quantiles, strict=False):  # in the suite's order
        if constraint.get("metric") is not None:
            found[str(quantile)] = float(constraint["metric"])
    return found


def write_files(folder: Path, batches: int, rows: int, seed: int) -> np.ndarray:
    """`batches` parquet files of `rows` amounts each (drifting log-normal); all amounts."""
    folder.mkdir(parents=True, exist_ok=True)
    random = np.random.default_rng(seed)
    every = []
    for index in range(batches):
        amounts = np.round(random.lognormal(3 + index / batches, 1.0, rows), 2)
        every.append(amounts)
        path = folder / f"part-{index:04d}.parquet"
        pd.DataFrame({"id": np.arange(rows) + index * rows, "amount": amounts}).to_parquet(path)
        os.utime(path, (1_700_000_000 + index * 10, 1_700_000_000 + index * 10))
    return np.concatenate(every)


def rank_error(values: np.ndarray, answer: float, quantile: float) -> float:
    """How far `answer`'s rank among `values` is from `quantile`'s, as a fraction of the rows."""
    ordered = np.sort(values)
    low = int(np.searchsorted(ordered, answer, side="left")) + 1
    high = int(np.searchsorted(ordered, answer, side="right"))
    target = int(np.ceil(quantile * len(ordered)))
    miss = 0 if low <= target <= high else min(abs(low - target), abs(high - target))
    return miss / len(ordered)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Write the files, run the stream with the probe, rank the final metrics."""
    from pyspark.sql import functions as F

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    suite_path = work / "quantile.yaml"
    suite_path.write_text(SUITE)
    values = write_files(work / "landing", args.batches, args.rows_per_batch, args.seed)
    settings = load_settings("local")
    spark = get_session(settings, "lakegate-bench-stream-quantile")
    probe = QuantileProbe(work / "checkpoint", work / "output")
    try:
        t0 = time.perf_counter()
        with sampled_batches(probe):  # type: ignore[arg-type]
            run_stream(spark, settings, load_suite(suite_path), str(work / "landing"), work)
        seconds = time.perf_counter() - t0
        frame = spark.read.parquet(str(work / "landing"))
        plain = frame.agg(
            *[F.percentile_approx("amount", q, 100).alias(str(q)) for q in QUANTILES]
        ).first()
    finally:
        stop_session(spark)
    final = probe.samples[-1]["metrics"] if probe.samples else {}
    ranks = {
        str(q): {
            "stream": final.get(str(q)),
            "stream_rank_error": rank_error(values, final[str(q)], q) if str(q) in final else None,
            "percentile_approx": plain[str(q)] if plain else None,
            "percentile_approx_rank_error": rank_error(values, plain[str(q)], q) if plain else None,
        }
        for q in QUANTILES
    }
    return {
        "when": datetime.now(UTC).isoformat(),
        "batches": args.batches,
        "rows_per_batch": args.rows_per_batch,
        "seconds": seconds,
        "ranks": ranks,
        "samples": probe.samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--rows-per-batch", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--label", default="", help="added to the result file's name")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lakegate-bench-stream-quantile-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for sample in result["samples"][::10] + result["samples"][-1:]:
        print(f"batch {sample['batch_id']:>4}: entries {sample['entries']} bytes {sample['bytes']}")
    print(json.dumps(result["ranks"], indent=2))
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"stream-quantile{args.label and '-' + args.label}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
