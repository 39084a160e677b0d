"""Load: `lakegate serve` against `mlflow models serve`, 16 concurrent asyncio clients, bounded.

    .venv/bin/python bench/bench_serve_load.py                  # 60 s per phase
    .venv/bin/python bench/bench_serve_load.py --seconds 15     # a quick look

A scaler + logistic regression on three features is trained and registered in a throwaway
MLflow sqlite store (as bench_serving.py), its features materialized into the SQLite online
store, and both servers started on loopback ports of their own (`mlflow models serve
--env-manager local`, as it starts by default: one worker). Phases, each `--seconds` long with
`--clients` aiohttp clients in `--client-processes` processes, each client its own keep-alive
connection:

  compare   the same payloads to both servers, alternating in `--rounds` slices so load from
            elsewhere on the machine falls on both: single-record and 100-record requests
            (3:1); lakegate's throughput and p99 divided by mlflow's
  mixed     lakegate alone: single-record, 100-record and predict-by-key (2:1:1)

Every answer is checked (status 200, one prediction per row, lakegate's names the model
version); a request that fails or times out counts as failed, never retried. The RSS of each
server (its whole process tree) is sampled every second. A JSON result goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import FEATURES, free_port, start, train, users

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench_serving"
VIEW = "bench_users"
COMPARE_MIX = {"single": 3, "batch100": 1}
MIXED = {"single": 2, "batch100": 1, "by_key": 1}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase and server")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--client-processes", type=int, default=4, help="client processes sharing --clients"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices in compare")
    parser.add_argument("--phases", default="compare,mixed")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="end a phase after this many requests to a server as well (0: time only); a soak",
    )
    parser.add_argument(
        "--lakegate-args", default="", help="extra `lakegate serve` arguments, space separated"
    )
    parser.add_argument("--mlflow-workers", type=int, default=1)
    return parser.parse_args()


@dataclass
class Tally:
    """What one phase on one server saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    versions: set[str] = field(default_factory=set)

    def add(self, kind: str, ms: float | None, why: str = "") -> None:
        if ms is None:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if len(self.examples) < 5:
                self.examples.append(f"{kind}: {why}")
        else:
            self.latencies.setdefault(kind, []).append(ms)

    def summary(self) -> dict[str, Any]:
        kinds = sorted(set(self.latencies) | set(self.failures))
        per_kind = {}
        for kind in kinds:
            times = self.latencies.get(kind, [])
            per_kind[kind] = {
                "ok": len(times),
                "failed": self.failures.get(kind, 0),
                "p50_ms": float(np.percentile(times, 50)) if times else None,
                "p99_ms": float(np.percentile(times, 99)) if times else None,
                "rps": len(times) / self.seconds if self.seconds else 0.0,
            }
        done = sum(len(v) for v in self.latencies.values())
        everything = [t for v in self.latencies.values() for t in v]
        return {
            "seconds": self.seconds,
            "requests": done + sum(self.failures.values()),
            "failed": sum(self.failures.values()),
            "rps": done / self.seconds if self.seconds else 0.0,
            "server_cpu_ms_per_request": 1000 * self.server_cpu_seconds / done if done else None,
            "p50_ms": float(np.percentile(everything, 50)) if everything else None,
            "p99_ms": float(np.percentile(everything, 99)) if everything else None,
            "kinds": per_kind,
            "failure_examples": self.examples,
            "versions": sorted(self.versions),
        }


@dataclass(frozen=True)
class Target:
    """One server: where each kind of request goes."""

    name: str
    urls: dict[str, str]
    names_version: bool


def bodies(frame: Any, count: int = 500) -> dict[str, list[bytes]]:
    """Pre-encoded request bodies per kind (the client spends no time on JSON)."""
    records = frame[FEATURES].to_dict(orient="records")
    rng = random.Random(0)
    single = [json.dumps({"dataframe_records": [rng.choice(records)]}) for _ in range(count)]
    batch = []
    for _ in range(count // 5):
        start_at = rng.randrange(len(records) - 100)
        split = {"columns": FEATURES, "data": [list(r.values()) for r in records[start_at:][:100]]}
        batch.append(json.dumps({"dataframe_split": split}))
    keys = frame.user_id.tolist()
    by_key = [json.dumps({"keys": [rng.choice(keys)], "feature_view": VIEW}) for _ in range(count)]
    return {
        "single": [b.encode() for b in single],
        "batch100": [b.encode() for b in batch],
        "by_key": [b.encode() for b in by_key],
    }


ROWS = {"single": 1, "batch100": 100, "by_key": 1}


async def one_request(
    session: aiohttp.ClientSession, target: Target, kind: str, body: bytes, tally: Tally
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(
            target.urls[kind], data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            text = await answer.read()
            ms = (time.perf_counter() - started) * 1000
            if answer.status != 200:
                tally.add(kind, None, f"{answer.status} {text[:200]!r}")
                return
            parsed = json.loads(text)
    except (TimeoutError, aiohttp.ClientError) as exc:
        tally.add(kind, None, f"{type(exc).__name__}: {exc}")
        return
    predictions = parsed.get("predictions") if isinstance(parsed, dict) else None
    if not isinstance(predictions, list) or len(predictions) != ROWS[kind]:
        tally.add(kind, None, f"not {ROWS[kind]} predictions: {text[:200]!r}")
        return
    if target.names_version:
        version = parsed.get("model_version")
        if not version:
            tally.add(kind, None, "the answer names no model_version")
            return
        tally.versions.add(str(version))
    tally.add(kind, ms)


async def drive(
    target: Target,
    payloads: dict[str, list[bytes]],
    mix: dict[str, int],
    seconds: float,
    clients: int,
    timeout: float,
    tally: Tally,
    first: int = 0,
    quota: int = 0,
) -> None:
    """`clients` loops, each on its own connection, until `seconds` have passed or each has
    sent `quota` requests (0: no count bound)."""
    kinds = [kind for kind, weight in mix.items() for _ in range(weight)]
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        rng = random.Random(number)
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        limits = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=limits) as session:
            sent = 0
            while time.perf_counter() < deadline and (not quota or sent < quota):
                sent += 1
                kind = rng.choice(kinds)
                await one_request(session, target, kind, rng.choice(payloads[kind]), tally)

    started = time.perf_counter()
    await asyncio.gather(*(client(first + i) for i in range(clients)))
    tally.seconds += time.perf_counter() - started


def _drive_here(
    target: Target,
    payloads: dict[str, list[bytes]],
    mix: dict[str, int],
    seconds: float,
    clients: int,
    timeout: float,
    first: int,
    quota: int = 0,
) -> Tally:
    tally = Tally()
    asyncio.run(drive(target, payloads, mix, seconds, clients, timeout, tally, first, quota))
    return tally


def drive_processes(
    pool: ProcessPoolExecutor,
    processes: int,
    target: Target,
    payloads: dict[str, list[bytes]],
    mix: dict[str, int],
    seconds: float,
    clients: int,
    timeout: float,
    tally: Tally,
    max_requests: int = 0,
) -> None:
    """`drive` in `processes` client processes (one Python thread cannot keep up with 16
    connections on a loaded machine), their tallies merged into `tally`; `max_requests`
    (0: none) is shared evenly between the clients."""
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    starts = [sum(shares[:i]) for i in range(processes)]
    quota = -(-max_requests // clients) if max_requests else 0
    futures = [
        pool.submit(_drive_here, target, payloads, mix, seconds, share, timeout, start, quota)
        for share, start in zip(shares, starts, strict=True)
        if share
    ]
    parts = [future.result() for future in futures]
    for part in parts:
        for kind, times in part.latencies.items():
            tally.latencies.setdefault(kind, []).extend(times)
        for kind, count in part.failures.items():
            tally.failures[kind] = tally.failures.get(kind, 0) + count
        tally.examples.extend(part.examples[: 5 - len(tally.examples)])
        tally.versions |= part.versions
    tally.seconds += max(part.seconds for part in parts)


class RssSampler:
    """The summed RSS of a process and its children, every `every` seconds, in a thread."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process tree so far."""
        total = 0.0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20

    async def _loop(self) -> None:
        while True:
            self.samples.append((round(time.monotonic() - self._started, 1), self.rss_mb()))
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict[str, Any]:
        values = [mb for _, mb in self.samples] or [self.rss_mb()]
        return {
            "first_mb": round(values[0], 1),
            "max_mb": round(max(values), 1),
            "last_mb": round(values[-1], 1),
            "samples": [(t, round(mb, 1)) for t, mb in self.samples],
        }


def setup(folder: Path) -> tuple[Any, str]:
    """Train and register the model, materialize its features; return the frame and version."""
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
    return frame, version


def start_servers(
    args: argparse.Namespace, folder: Path, version: str
) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, Target]]:
    from lakegate_config.settings import load_settings

    settings = load_settings("local")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.tracking_uri, PATH=path)
    ports = {"lakegate": free_port(), "mlflow": free_port()}
    lakegate_command = [  # this checkout's code (the working folder), not an installed copy
        sys.executable,
        "-m",
        "spark_jobs.cli",
        "serve",
        "--port",
        str(ports["lakegate"]),
        *args.lakegate_args.split(),
    ]
    mlflow_command = [
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
        str(ports["mlflow"]),
        "-w",
        str(args.mlflow_workers),
    ]
    processes = {}
    for name, command in (("lakegate", lakegate_command), ("mlflow", mlflow_command)):
        url = f"http://127.0.0.1:{ports[name]}/health"
        processes[name] = start(command, env, url, folder / f"{name}.log")
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    lakegate_base = f"{base['lakegate']}/{MODEL}/{version}"
    targets = {
        "lakegate": Target(
            "lakegate",
            {
                "single": f"{lakegate_base}/predict",
                "batch100": f"{lakegate_base}/predict",
                "by_key": f"{lakegate_base}/predict-by-key",
            },
            names_version=True,
        ),
        "mlflow": Target(
            "mlflow",
            {kind: f"{base['mlflow']}/invocations" for kind in ("single", "batch100")},
            names_version=False,
        ),
    }
    return processes, targets


async def warm_up(targets: dict[str, Target], payloads: dict[str, list[bytes]]) -> None:
    """Load the model in both servers; check they give the same predictions."""
    async with aiohttp.ClientSession() as session:
        answers = {}
        for name, target in targets.items():
            for kind, url in target.urls.items():
                for body in payloads[kind][:20]:
                    async with session.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as answer:
                        if answer.status != 200:
                            text = await answer.text()
                            raise SystemExit(f"{name} {kind}: {answer.status} {text}")
                        if kind == "batch100":
                            answers.setdefault(name, (await answer.json())["predictions"])
        if answers["lakegate"] != answers["mlflow"]:
            raise SystemExit("the servers disagree on the same payload")


async def run_phases(
    pool: ProcessPoolExecutor,
    args: argparse.Namespace,
    processes: dict[str, subprocess.Popen[bytes]],
    targets: dict[str, Target],
    payloads: dict[str, list[bytes]],
) -> dict[str, Any]:
    samplers = {name: RssSampler(process.pid) for name, process in processes.items()}
    for sampler in samplers.values():
        sampler.start()
    results: dict[str, Any] = {}
    phases = args.phases.split(",")
    if "compare" in phases:
        tallies = {name: Tally() for name in targets}
        for round_number in range(args.rounds):
            order = ["mlflow", "lakegate"] if round_number % 2 == 0 else ["lakegate", "mlflow"]
            for name in order:
                cpu = samplers[name].cpu_seconds()
                await asyncio.to_thread(
                    drive_processes,
                    pool,
                    args.client_processes,
                    targets[name],
                    payloads,
                    COMPARE_MIX,
                    args.seconds / args.rounds,
                    args.clients,
                    args.timeout,
                    tallies[name],
                )
                tallies[name].server_cpu_seconds += samplers[name].cpu_seconds() - cpu
            print(f"compare round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        results["compare"] = {name: tally.summary() for name, tally in tallies.items()}
    if "mixed" in phases:
        tally = Tally()
        cpu = samplers["lakegate"].cpu_seconds()
        await asyncio.to_thread(
            drive_processes,
            pool,
            args.client_processes,
            targets["lakegate"],
            payloads,
            MIXED,
            args.seconds,
            args.clients,
            args.timeout,
            tally,
            args.max_requests,
        )
        tally.server_cpu_seconds = samplers["lakegate"].cpu_seconds() - cpu
        results["mixed"] = {"lakegate": tally.summary()}
        print("mixed phase done", file=sys.stderr)
    for name, sampler in samplers.items():
        sampler.stop()
        results.setdefault("rss", {})[name] = sampler.summary()
    results["lakegate_batches"] = await batch_sizes(targets["lakegate"])
    return results


async def batch_sizes(target: Target) -> dict[str, float]:
    """Model calls and requests per call, from lakegate's /metrics (whole run)."""
    from prometheus_client.parser import text_string_to_metric_families

    base = target.urls["single"].split("/")[:3]
    async with (
        aiohttp.ClientSession() as session,
        session.get("/".join([*base, "metrics"])) as answer,
    ):
        text = await answer.text()
    totals = {"calls": 0.0, "requests": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lakegate_serving_batch_requests_count":
                totals["calls"] += sample.value
            elif sample.name == "lakegate_serving_batch_requests_sum":
                totals["requests"] += sample.value
    totals["requests_per_call"] = totals["requests"] / totals["calls"] if totals["calls"] else 0
    return totals


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.clients} clients; load average {os.getloadavg()}")
    if "compare" in results:
        ours, theirs = results["compare"]["lakegate"], results["compare"]["mlflow"]
        print(f"\ncompare ({args.seconds:g} s per server, {args.rounds} alternating slices)\n")
        print(
            "| kind | lakegate req/s | mlflow req/s | ratio | lakegate p50/p99 ms "
            "| mlflow p50/p99 ms | p99 ratio | failed (lakegate, mlflow) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in [*COMPARE_MIX, "all"]:
            a = ours if kind == "all" else ours["kinds"].get(kind, {})
            b = theirs if kind == "all" else theirs["kinds"].get(kind, {})
            ratio = a.get("rps", 0) / b["rps"] if b.get("rps") else float("nan")
            p99 = (
                (a["p99_ms"] / b["p99_ms"]) if a.get("p99_ms") and b.get("p99_ms") else float("nan")
            )
            print(
                f"| {kind} | {a.get('rps', 0):,.0f} | {b.get('rps', 0):,.0f} | {ratio:.2f} | "
                f"{_ms(a.get('p50_ms'))} / {_ms(a.get('p99_ms'))} | "
                f"{_ms(b.get('p50_ms'))} / {_ms(b.get('p99_ms'))} | {p99:.2f} | "
                f"{a.get('failed', 0)}, {b.get('failed', 0)} |"
            )
    if "mixed" in results:
        mixed = results["mixed"]["lakegate"]
        print(
            f"\nmixed, lakegate alone ({mixed['seconds']:.0f} s): {mixed['requests']:,} "
            f"requests, {mixed['failed']} failed, {mixed['rps']:,.0f} req/s\n"
        )
        print("| kind | requests | failed | req/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind, k in mixed["kinds"].items():
            print(
                f"| {kind} | {k['ok'] + k['failed']:,} | {k['failed']} | {k['rps']:,.0f} | "
                f"{_ms(k['p50_ms'])} | {_ms(k['p99_ms'])} |"
            )
    if "compare" in results:
        a, b = (results["compare"][n]["server_cpu_ms_per_request"] for n in ("lakegate", "mlflow"))
        if a and b:
            print(
                f"\nserver CPU per request (compare mix): lakegate {a:.2f} ms, mlflow {b:.2f} ms; "
                f"mlflow/lakegate {b / a:.2f} (the throughput ratio on an idle machine, when the "
                "server's CPU is the limit)"
            )
    batches = results["lakegate_batches"]
    print(
        f"lakegate model calls: {batches['calls']:,.0f} for {batches['requests']:,.0f} "
        f"requests ({batches['requests_per_call']:.2f} requests per call)"
    )
    for name, rss in results["rss"].items():
        print(
            f"RSS {name}: first {rss['first_mb']} MB, max {rss['max_mb']} MB, "
            f"last {rss['last_mb']} MB ({len(rss['samples'])} samples)"
        )
    for phase in ("compare", "mixed"):
        for name, summary in results.get(phase, {}).items():
            if summary["failure_examples"]:
                print(f"{phase} {name} failures: {summary['failure_examples']}")


def stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    args = parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lakegate-bench-serve-load-"))
    frame, version = setup(folder)
    payloads = bodies(frame)
    processes, targets = start_servers(args, folder, version)
    try:
        asyncio.run(warm_up(targets, payloads))
        with ProcessPoolExecutor(
            args.client_processes, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            list(pool.map(abs, range(args.client_processes)))  # workers started before timing
            results = asyncio.run(run_phases(pool, args, processes, targets, payloads))
    finally:
        stop(processes)
    results["args"] = vars(args)
    results["load_average"] = os.getloadavg()
    report(results, args)
    out = ROOT / "bench" / "results" / f"serve-load-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nresult: {out}")
    failed = sum(s["failed"] for p in ("compare", "mixed") for s in results.get(p, {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
