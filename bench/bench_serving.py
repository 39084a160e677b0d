"""Benchmark: `lakegate serve` against `mlflow models serve` on the same model, side by side.

    .venv/bin/python bench/bench_serving.py --requests 1000 --repeats 3

A scaler + logistic regression on three features is trained and registered in a throwaway
MLflow sqlite store; both servers run on loopback (`mlflow models serve --env-manager local`,
one worker, as it starts by default). Per repeat, servers interleaved: `--requests` sequential
single-record predictions over one keep-alive connection (p50, p99, mean), then throughput with
`--clients` concurrent clients (each its own connection). lakegate's `predict-by-key` (features
from the SQLite online store) is timed the same way. Medians of the repeats; ratios to MLflow.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FEATURES = ["feature_1", "feature_2", "feature_3"]
MODEL = "bench_serving"
VIEW = "bench_users"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrent-requests", type=int, default=2000)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def users(rows: int = 10_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(0, "user_id", np.arange(1, rows + 1, dtype="int64"))
    frame["target"] = (x @ np.array([1.5, -2.0, 0.5]) + rng.normal(size=rows) > 0).astype("int64")
    return frame


def train(settings, frame: pd.DataFrame) -> str:
    from spark_jobs.services.training import TrainConfig, train_model

    config = TrainConfig.model_validate(
        {
            "model_name": MODEL,
            "input": "generated",
            "features": FEATURES,
            "target": "target",
            "task": "classification",
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            "preprocessing": [{"class": "sklearn.preprocessing.StandardScaler"}],
        }
    )
    return str(train_model(frame, config, settings, source="generated").version)


def start(command: list[str], env: dict[str, str], health: str, log: Path) -> subprocess.Popen:
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(health, timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit(f"{command[:3]} did not answer in 120 s: {log.read_text()[-2000:]}")


def sequential(url: str, bodies: list[dict]) -> list[float]:
    """Milliseconds per request, one keep-alive connection."""
    session = requests.Session()
    times = []
    for body in bodies:
        started = time.perf_counter()
        answer = session.post(url, json=body, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: {answer.status_code} {answer.text}")
    return times


def concurrent(url: str, bodies: list[dict], clients: int) -> float:
    """Requests per second with `clients` threads, each with its own connection."""
    shares = [bodies[i::clients] for i in range(clients)]

    def client(share: list[dict]) -> None:
        session = requests.Session()
        for body in share:
            if session.post(url, json=body, timeout=30).status_code != 200:
                raise SystemExit(f"{url}: a request failed")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, shares))
    return len(bodies) / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    args = parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lakegate-bench-serving-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(folder / "state")
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    from lakegate_config.settings import load_settings
    from online_store import open_online_store

    settings = load_settings("local")
    frame = users()
    version = train(settings, frame)
    store = open_online_store("sqlite", path=settings.online_store_path)
    columns = [("user_id", "bigint"), *((f, "double") for f in FEATURES), ("target", "bigint")]
    rows = list(frame[[c for c, _ in columns]].itertuples(index=False, name=None))
    store.write_view(VIEW, ["user_id"], columns, [rows], source="generated")
    store.close()

    # `mlflow models serve` runs `uvicorn` from PATH: the venv's own.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.tracking_uri, PATH=path)
    lakegate_port, mlflow_port = free_port(), free_port()
    lakegate = start(
        [str(Path(sys.executable).with_name("lakegate")), "serve", "--port", str(lakegate_port)],
        env,
        f"http://127.0.0.1:{lakegate_port}/health",
        folder / "lakegate.log",
    )
    mlflow_server = start(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}/{version}",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "-p",
            str(mlflow_port),
        ],
        env,
        f"http://127.0.0.1:{mlflow_port}/health",
        folder / "mlflow.log",
    )
    try:
        records = frame[FEATURES].to_dict(orient="records")
        bodies = [{"dataframe_records": [records[i % len(records)]]} for i in range(args.requests)]
        key_bodies = [
            {"keys": [int(frame.user_id[i % len(frame)])], "feature_view": VIEW}
            for i in range(args.requests)
        ]
        targets = {
            "lakegate serve: predict": (
                f"http://127.0.0.1:{lakegate_port}/{MODEL}/{version}/predict",
                bodies,
            ),
            "lakegate serve: predict-by-key": (
                f"http://127.0.0.1:{lakegate_port}/{MODEL}/{version}/predict-by-key",
                key_bodies,
            ),
            "mlflow models serve: /invocations": (
                f"http://127.0.0.1:{mlflow_port}/invocations",
                bodies,
            ),
        }
        # Same answers from both servers before any timing.
        sample = {"dataframe_records": records[:200]}
        ours = requests.post(targets["lakegate serve: predict"][0], json=sample, timeout=30).json()
        theirs = requests.post(
            targets["mlflow models serve: /invocations"][0], json=sample, timeout=30
        ).json()
        assert ours["predictions"] == theirs["predictions"], "the servers disagree"
        for url, some in targets.values():  # warm-up: model loads, connections, JIT-free paths
            sequential(url, some[:100])
        results: dict[str, dict[str, list[float]]] = {
            name: {"p50": [], "p99": [], "mean": [], "rps": []} for name in targets
        }
        for repeat in range(args.repeats):
            for name, (url, some) in targets.items():
                times = sequential(url, some)
                results[name]["p50"].append(percentile(times, 50))
                results[name]["p99"].append(percentile(times, 99))
                results[name]["mean"].append(statistics.fmean(times))
                many = (some * (args.concurrent_requests // len(some) + 1))[
                    : args.concurrent_requests
                ]
                results[name]["rps"].append(concurrent(url, many, args.clients))
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        for process in (lakegate, mlflow_server):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    median = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    base = median["mlflow models serve: /invocations"]
    print(
        f"\n{args.requests} sequential single-record requests, then "
        f"{args.concurrent_requests} with {args.clients} concurrent clients; "
        f"medians of {args.repeats} repeats\n"
    )
    print(
        f"| server | p50 ms | p99 ms | mean ms | req/s ({args.clients} clients) "
        "| p50 vs MLflow | req/s vs MLflow |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, m in median.items():
        print(
            f"| {name} | {m['p50']:.2f} | {m['p99']:.2f} | {m['mean']:.2f} | {m['rps']:,.0f} | "
            f"{m['p50'] / base['p50']:.2f} | {m['rps'] / base['rps']:.2f} |"
        )
    print(
        "\nper repeat:",
        {n: {k: [round(x, 2) for x in v] for k, v in r.items()} for n, r in results.items()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
