"""Benchmark: one predict query through the warm JDBC endpoint and a one-shot `lakegate sql -e`.

    .venv/bin/python bench/bench_sql_endpoint.py --rows 100000 --starts 3 --repeats 15

(a) `lakegate serve-sql` started from nothing until the first answer of the query (process start,
Spark, model registration with compiled scoring, Thrift server, PyHive connection, query);
(b) the warm endpoint: the query again over one PyHive connection, `--repeats` times (p50, p90);
(c) the query as one `lakegate sql -e` process, as an analyst without the endpoint runs it.
Medians of each; ratios to (b). The MLflow store, model and feature table live in a throwaway
folder (`conf/local.yaml` otherwise, so the session is the one analysts get).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "tests"))  # model_fixtures: the tests' own users model

LAKEGATE = str(Path(sys.executable).with_name("lakegate"))
QUERY = "SELECT avg(predict_users(struct(*))) FROM features"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=3, help="server starts timed (a)")
    parser.add_argument("--repeats", type=int, default=15, help="warm queries timed (b)")
    parser.add_argument("--one-shot", type=int, default=3, help="lakegate sql -e runs timed (c)")
    parser.add_argument("--env", default="local")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser.parse_args()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(folder: Path, rows: int, env: str) -> Path:
    """Train and register `users` (champion) in the folder's store; write the feature table."""
    from model_fixtures import train, users_frame

    from lakegate_config.settings import load_settings

    train(load_settings(env), "users")
    features = folder / "features.parquet"
    users_frame(rows=rows, seed=1).to_parquet(features)
    return features


def query_once(port: int) -> tuple[float, float]:
    """Connect, run the query, fetch; return (seconds, answer)."""
    from pyhive import hive

    started = time.perf_counter()
    connection = hive.connect(host="127.0.0.1", port=port)
    try:
        cursor = connection.cursor()
        cursor.execute(QUERY)
        answer = cursor.fetchall()[0][0]
    finally:
        connection.close()
    return time.perf_counter() - started, float(answer)


def start_to_first_answer(features: Path, env: str) -> tuple[float, subprocess.Popen, int]:
    """Start serve-sql and poll until the query answers; return seconds, process, port."""
    port = _free_port()
    command = [LAKEGATE, "serve-sql", "--port", str(port), "--table", f"features={features}"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LAKEGATE_ENV": env},
    )
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve-sql exited with {process.returncode}")
        try:
            query_once(port)
            return time.perf_counter() - started, process, port
        except Exception:
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> float:
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    return time.perf_counter() - started


def one_shot(features: Path, env: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [LAKEGATE, "sql", "-e", QUERY, "--table", f"features={features}", "--output-format", "csv"],
        capture_output=True,
        text=True,
        env={**os.environ, "LAKEGATE_ENV": env},
        check=True,
    )
    return time.perf_counter() - started, result.stdout.splitlines()[-1]


def main() -> None:
    args = parse_args()
    logging.getLogger("thrift").setLevel(logging.CRITICAL)  # the polling's refused connections
    with tempfile.TemporaryDirectory(prefix="bench-sql-endpoint-") as tmp:
        folder = Path(tmp)
        os.environ["LAKEGATE_STATE_DIR"] = str(folder / "state")
        features = prepare(folder, args.rows, args.env)
        starts, stops, warm = [], [], []
        answer = None
        for number in range(args.starts):
            seconds, process, port = start_to_first_answer(features, args.env)
            starts.append(seconds)
            print(f"(a) start {number + 1}: first answer after {seconds:.1f} s", flush=True)
            try:
                if number == 0:
                    query_once(port)  # one more warm-up on the first server
                    for _ in range(args.repeats):
                        seconds, answer = query_once(port)
                        warm.append(seconds)
                    print(f"(b) warm queries: {', '.join(f'{s:.2f}' for s in warm)}", flush=True)
            finally:
                stops.append(stop(process))
        shots = []
        shot_answer = None
        for number in range(args.one_shot):
            seconds, shot_answer = one_shot(features, args.env)
            shots.append(seconds)
            print(f"(c) lakegate sql -e {number + 1}: {seconds:.1f} s", flush=True)
    p50 = statistics.median(warm)
    p90 = statistics.quantiles(warm, n=10)[-1] if len(warm) >= 2 else warm[0]
    results = {
        "rows": args.rows,
        "query": QUERY,
        "start_to_first_answer_median_s": statistics.median(starts),
        "start_to_first_answer_s": starts,
        "stop_on_sigterm_median_s": statistics.median(stops),
        "warm_jdbc_p50_s": p50,
        "warm_jdbc_p90_s": p90,
        "one_shot_sql_median_s": statistics.median(shots),
        "jdbc_answer": answer,
        "one_shot_answer": shot_answer,
    }
    print()
    print(f"rows {args.rows:,}; query: {QUERY}")
    print(f"(b) warm JDBC query      p50 {p50:6.2f} s   p90 {p90:6.2f} s   1.0x")
    print(
        f"(a) start to 1st answer  median {results['start_to_first_answer_median_s']:6.1f} s   "
        f"{results['start_to_first_answer_median_s'] / p50:.0f}x"
    )
    print(
        f"(c) one-shot sql -e      median {results['one_shot_sql_median_s']:6.1f} s   "
        f"{results['one_shot_sql_median_s'] / p50:.0f}x"
    )
    print(f"stop on SIGTERM median {results['stop_on_sigterm_median_s']:.1f} s")
    print(f"answers: JDBC {answer}, one-shot {shot_answer}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
