"""The running approx-quantile state of `stream validate` stays small and within Deequ's error.

Merged batch by batch as Deequ merges it, Spark's quantile digest grew by some 160 entries for
every 300-row batch and never shrank (services/stream_state.py, module docstring). The batches
here go through the gate and `RunningTotals` as the stream's batch function sends them; the
saved digest's size is read after every batch, and the last running quantiles are ranked among
all rows, beside a plain `VerificationSuite` over those rows.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from checks.deequ_run import ConstraintResult, verify
from checks.gate import apply_suite
from checks.suite_formats import load_suite
from spark_jobs.services.stream_state import RunningTotals

# Sixteen batches through the gate: 47-90 s (load 5-10), not for the fast tier.
pytestmark = pytest.mark.slow

SUITE = """\
suite: quantiles
checks:
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasApproxQuantile: {column: amount, quantile: 0.5, max: 1000000}
      - hasApproxQuantile: {column: amount, quantile: 0.9, max: 1000000}
"""
QUANTILES = (0.5, 0.9)
BATCHES = 16
ROWS = 300
RELATIVE_ERROR = 0.01  # Deequ's hasApproxQuantile: the quantile's rank within 1% of the rows
# Bytes of one saved digest (24 per entry): about 680 entries. Merged as Deequ merges them,
# 16 batches of 300 rows left some 2,500.
STATE_BOUND = 16 * 1024


def amounts(batch_id: int) -> list[float]:
    """A batch's amounts: log-normal, drifting upwards batch by batch."""
    draw = random.Random(batch_id)
    return [round(draw.lognormvariate(3 + batch_id / BATCHES, 1.0), 3) for _ in range(ROWS)]


def digest_bytes(folder: Path) -> list[int]:
    """Sizes of the saved quantile digests in a state folder (Size's state is 8 bytes)."""
    return sorted(p.stat().st_size for p in folder.rglob("*.bin") if p.stat().st_size > 100)


def rank_error(values: list[float], answer: float, quantile: float) -> float:
    """How far `answer`'s rank among `values` is from `quantile`'s, as a share of the rows."""
    ordered = sorted(values)
    low = sum(1 for v in ordered if v < answer) + 1
    high = sum(1 for v in ordered if v <= answer)
    target = math.ceil(quantile * len(ordered))
    return (
        0.0 if low <= target <= high else min(abs(low - target), abs(high - target)) / len(ordered)
    )


def quantile_metrics(results: list[ConstraintResult]) -> list[float | None]:
    """The approx quantiles' metrics among a run's constraint results, in the suite's order."""
    return [c.metric for c in results if c.kind == "hasApproxQuantile"]


def test_running_quantiles_stay_within_deequs_error_in_a_bounded_state(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "quantiles.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    totals = RunningTotals(spark, str(tmp_path / "_lakegate"))
    sizes, every = [], []
    for batch_id in range(BATCHES):
        values = amounts(batch_id)
        every += values
        frame = spark.createDataFrame([(v,) for v in values], "amount double")
        gate = apply_suite(spark, frame, suite)
        try:
            gate.valid.write.format("noop").mode("append").save()  # the pass with the metrics
            gate.verdict()
            staged = totals.merge(gate, frame, batch_id, {})
            total = totals.commit(staged, {"batches": batch_id + 1})
        finally:
            gate.release()
        sizes.append(digest_bytes(tmp_path / "_lakegate" / "state" / str(batch_id)))

    assert all(len(found) == len(QUANTILES) for found in sizes)
    assert max(max(found) for found in sizes) <= STATE_BOUND, sizes
    assert max(sizes[-1]) <= 1.5 * max(sizes[BATCHES // 2]), sizes  # no longer growing

    everything = spark.createDataFrame([(v,) for v in every], "amount double")
    streamed = quantile_metrics(total.outcome.results)
    plain = quantile_metrics(verify(spark, everything, suite).results)
    for quantile, ours, theirs in zip(QUANTILES, streamed, plain, strict=True):
        assert ours is not None and theirs is not None
        assert rank_error(every, ours, quantile) <= RELATIVE_ERROR, (quantile, ours, theirs)
        assert rank_error(every, theirs, quantile) <= RELATIVE_ERROR, (quantile, ours, theirs)
