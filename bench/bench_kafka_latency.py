"""`lakegate stream validate` from Kafka: end-to-end latency and sustained throughput, local[2].

A single-node KRaft broker starts from Kafka's jars (`tests/kafka_broker.py`); records are
produced by Kafka's own console producer (a separate JVM fed JSON lines, each stamped with
`produced_at`, epoch milliseconds, as it is written), so producing takes nothing from Spark.

- Latency: the stream runs (`--trigger 500ms`, `maxOffsetsPerTrigger=10000`) while bursts of
  `--batch-rows` records arrive every `--interval` seconds. A row's latency is the commit
  timestamp of the Delta version of `OUT/valid` that added its file, minus its `produced_at`.
  p50 and p99 over all rows of a run (a warm-up burst is left out); medians over `--runs`,
  after a warm-up stream of two bursts that is not counted (`--no-warmup` counts the first).
  The interval must exceed a batch's duration: bursts arriving faster than the stream drains
  them measure the growing queue, not the latency.
- `--bare`: the same bursts through `kafka_frame` into Spark's own Delta sink, no gate: the
  floor under lakegate's micro-batches on the same machine.
- Throughput: `--backlog-batches` bursts are in the topic before the stream starts; the stream
  runs `available-now` in micro-batches of `--batch-rows`; rows per second from the first
  batch's commit to the last (the first batch's rows are not counted).

Run from the project root (targets: p50 <= 3 s, p99 <= 6 s):

    .venv/bin/python bench/bench_kafka_latency.py --runs 3 --bare
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

SCHEMA_DDL = "id bigint, produced_at double, amount double, status string"
SUITE = """\
suite: kafka_bench
schema: {id: bigint, produced_at: double, amount: double, status: string}
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
      - isNonNegative: amount
      - isContainedIn: {column: status, values: [new, paid, shipped]}
  - name: table
    level: warning
    constraints:
      - hasSize: {min: 1}
      - hasMean: {column: amount, max: 1000}
"""
STATUSES = ("new", "paid", "shipped")
WARMUP_ROWS = 1000
RUN_TIMEOUT_SECONDS = 900


@dataclass
class Producer:
    """Kafka's console producer for one topic, fed JSON lines on its standard input."""

    process: subprocess.Popen[str]
    next_id: int = 0

    @classmethod
    def start(cls, java: str, class_path: str, bootstrap: str, topic: str) -> Producer:
        command = [
            java, "-Xmx256m", "-cp", class_path, "kafka.tools.ConsoleProducer",
            "--bootstrap-server", bootstrap, "--topic", topic,
            "--producer-property", "linger.ms=5", "--producer-property", "batch.size=262144",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        return cls(process)

    def burst(self, rows: int, *, warmup: bool = False) -> None:
        """Write `rows` records now (ids negative for warm-up rows), stamped as written."""
        assert self.process.stdin is not None
        lines = []
        for _ in range(rows):
            row_id = -(self.next_id + 1) if warmup else self.next_id
            self.next_id += 1
            lines.append(
                f'{{"id": {row_id}, "produced_at": {time.time() * 1000:.1f}, '
                f'"amount": {row_id % 500}.25, "status": "{STATUSES[row_id % 3]}"}}\n'
            )
        self.process.stdin.write("".join(lines))
        self.process.stdin.flush()

    def close(self) -> None:
        """Flush what is buffered and wait for the producer to exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(120)


def rows_in(output: Path) -> int:
    """Rows the stream has committed so far, from its report.json (0 before the first)."""
    try:
        report = json.loads((output / "report.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return int((report.get("counts") or {}).get("rows_in", 0))


def commit_times(table: Path) -> tuple[dict[str, int], list[tuple[int, int]]]:
    """Each data file's commit timestamp (ms), and (timestamp, files added) per version."""
    files: dict[str, int] = {}
    versions = []
    for entry in sorted((table / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line]
        stamp = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a)
        added = [Path(unquote(a["add"]["path"])).name for a in actions if "add" in a]
        files.update(dict.fromkeys(added, stamp))
        versions.append((stamp, len(added)))
    return files, versions


def row_latencies(spark: Any, valid: Path) -> list[float]:
    """Seconds from `produced_at` to the commit of each measured (non-warm-up) row."""
    from pyspark.sql import functions as F

    files, _ = commit_times(valid)
    rows = (
        spark.read.format("delta")
        .load(str(valid))
        .where("id >= 0")
        .select("produced_at", F.col("_metadata.file_name").alias("file"))
        .collect()
    )
    return [(files[row.file] - row.produced_at) / 1000 for row in rows]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stream_spec(root: Path, topic: str, bootstrap: str, trigger: str, batch_rows: int) -> Any:
    from spark_jobs.stream import StreamValidateSpec

    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    return StreamValidateSpec(
        suite=str(suite),
        source=f"kafka:{topic}",
        output=str(root / "out"),
        checkpoint=str(root / "checkpoint"),
        trigger=trigger,
        options={"maxOffsetsPerTrigger": str(batch_rows)},
        kafka_bootstrap=bootstrap,
        keep_history=False,
        quiet=True,
    )


def committed_rows(table: Path) -> int:
    """Rows the Delta table's commits have added so far (its log's operation metrics)."""
    total = 0
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            info = json.loads(line).get("commitInfo") if line else None
            if info:
                total += int((info.get("operationMetrics") or {}).get("numOutputRows", 0))
    return total


def feed_then_stop(
    producer: Producer, committed: Callable[[], int], stop: Callable[[], None], args: Any
) -> None:
    """After the warm-up is committed, send the bursts; when all are in, stop the stream."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while committed() < WARMUP_ROWS and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(args.bursts):
        started = time.monotonic()
        producer.burst(args.batch_rows)
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    expected = WARMUP_ROWS + args.bursts * args.batch_rows
    while committed() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    stop()


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # lakegate's stream stops after the batch in flight


def latency_run(
    spark: Any, settings: Any, broker: tuple[str, str, str], run: int, args: Any, *, bare: bool
) -> dict[str, float]:
    """One stream fed bursts while it runs: p50/p99 latency in seconds and the rows measured.

    `bare`: no gate, the parsed records appended to one Delta table by Spark's own Delta sink
    (the floor under lakegate's batches on this machine).
    """
    from spark_jobs.services.kafka_source import kafka_frame
    from spark_jobs.services.stream_io import parse_trigger
    from spark_jobs.stream import run as run_stream

    java, class_path, bootstrap = broker
    kind = "bare" if bare else "lakegate"
    root = Path(tempfile.mkdtemp(prefix=f"kafka-latency-{kind}-{run}-", dir=args.work))
    topic = f"latency_{kind}_{run}"
    producer = Producer.start(java, class_path, bootstrap, topic)
    producer.burst(WARMUP_ROWS, warmup=True)
    spec = stream_spec(root, topic, bootstrap, args.trigger, args.batch_rows)
    valid = root / "out" / "valid"
    if bare:
        schema = spark.createDataFrame([], SCHEMA_DDL).schema
        query = (
            kafka_frame(spark, topic, bootstrap, schema, spec.options)
            .writeStream.format("delta")
            .option("checkpointLocation", spec.checkpoint)
            .trigger(**parse_trigger(args.trigger))
            .start(str(valid))
        )
        feeder = threading.Thread(
            target=feed_then_stop, args=(producer, lambda: committed_rows(valid), query.stop, args)
        )
        feeder.start()
        query.awaitTermination()
    else:
        feeder = threading.Thread(
            target=feed_then_stop,
            args=(producer, lambda: rows_in(root / "out"), _sigterm_self, args),
        )
        feeder.start()
        run_stream(spark, settings, spec)
    feeder.join()
    producer.close()
    latencies = row_latencies(spark, valid)
    return {
        "rows": float(len(latencies)),
        "batches": float(len(commit_times(valid)[1])),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


def throughput_run(
    spark: Any, settings: Any, broker: tuple[str, str, str], run: int, args: Any
) -> dict[str, float]:
    """A backlog drained `available-now` in micro-batches: rows per second after the first."""
    from spark_jobs.stream import run as run_stream

    java, class_path, bootstrap = broker
    root = Path(tempfile.mkdtemp(prefix=f"kafka-throughput-{run}-", dir=args.work))
    topic = f"throughput_{run}"
    producer = Producer.start(java, class_path, bootstrap, topic)
    for _ in range(args.backlog_batches):
        producer.burst(args.batch_rows)
    producer.close()
    spec = stream_spec(root, topic, bootstrap, "available-now", args.batch_rows)
    started = time.perf_counter()
    result = run_stream(spark, settings, spec)
    wall = time.perf_counter() - started
    _, versions = commit_times(root / "out" / "valid")
    stamps = [stamp for stamp, added in versions if added]
    rows = args.backlog_batches * args.batch_rows
    later_rows = rows - args.batch_rows
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else float("nan")
    return {
        "rows": float(rows),
        "batches": float(result.batches),
        "rows_per_s": later_rows / span,
        "batch_s": span / max(1, len(stamps) - 1),
        "wall_s": wall,
    }


def medians(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--trigger", default="500ms")
    parser.add_argument("--backlog-batches", type=int, default=10)
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="measure the first stream too"
    )
    parser.add_argument(
        "--bare", action="store_true", help="also measure Spark's Delta sink without the gate"
    )
    parser.add_argument(
        "--work",
        default=None,
        help="folder for the broker, outputs and checkpoints (kept; default: a temporary one)",
    )
    args = parser.parse_args()

    owned = args.work is None
    args.work = args.work or tempfile.mkdtemp(prefix="kafka-bench-")
    os.environ.setdefault("LAKEGATE_STATE_DIR", tempfile.mkdtemp(prefix="state-", dir=args.work))
    from lakegate_config.settings import load_settings
    from spark_jobs.services.class_archive import java_binary
    from spark_jobs.services.session import get_session, stop_session
    from tests.kafka_broker import broker_class_path, start_broker, stop_broker

    settings = load_settings(os.environ.get("LAKEGATE_ENV", "local"))
    spark = get_session(settings, "bench-kafka-latency")
    class_path = broker_class_path(spark, settings)
    started = time.perf_counter()
    process, bootstrap = start_broker(
        class_path, Path(tempfile.mkdtemp(prefix="broker-", dir=args.work))
    )
    print(f"broker up in {time.perf_counter() - started:.1f} s at {bootstrap}", flush=True)
    broker = (str(java_binary()), class_path, bootstrap)
    try:
        latency: list[dict[str, float]] = []
        bare: list[dict[str, float]] = []
        throughput: list[dict[str, float]] = []
        if args.warmup:  # the session's first stream pays class loading and code generation
            warmup = argparse.Namespace(**{**vars(args), "bursts": 2})
            print(
                f"warm-up run: {_fmt(latency_run(spark, settings, broker, -1, warmup, bare=False))}"
            )
        for run in range(args.runs):
            latency.append(latency_run(spark, settings, broker, run, args, bare=False))
            print(f"latency run {run}: {_fmt(latency[-1])}", flush=True)
            if args.bare:
                bare.append(latency_run(spark, settings, broker, run, args, bare=True))
                print(f"bare Delta sink latency run {run}: {_fmt(bare[-1])}", flush=True)
            throughput.append(throughput_run(spark, settings, broker, run, args))
            print(f"throughput run {run}: {_fmt(throughput[-1])}", flush=True)
        print(f"latency, medians of {args.runs} runs: {_fmt(medians(latency))}")
        if bare:
            print(f"bare Delta sink latency, medians of {args.runs} runs: {_fmt(medians(bare))}")
        print(f"throughput, medians of {args.runs} runs: {_fmt(medians(throughput))}")
    finally:
        stop_broker(process)
        stop_session(spark)
        if owned:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.2f}" for key, value in values.items())


if __name__ == "__main__":
    sys.exit(main())
