"""A spark-submit'ed 5-row validate with and without the driver's class-data archive.

`lakegate submit --master local[2] validate checks/examples/items.yaml --input data/items.csv`
as `spark_jobs.submit` builds it, run as a subprocess, interleaved: (with) the command as built
(the archive's `spark.driver.extraClassPath` and `-XX:SharedArchiveFile`, when the archive
exists), (without) the same command with `spark.class_archive: null`. Per run: wall seconds,
CPU seconds of the whole process tree (getrusage of the waited-for children) and of the driver
JVM alone (psutil, sampled every 0.2 s), and how many classes the JVM took from the archive
(`-Xlog:class+load` through SPARK_SUBMIT_OPTS, with `--log-classes`). Medians at the end;
report.json of both variants must agree apart from times and paths.

    .venv/bin/python bench/bench_submit_archive.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakegate_config.settings import Settings, load_settings  # noqa: E402
from spark_jobs.submit import package_code, submit_parts  # noqa: E402

ARCHIVE_SOURCE = "source: shared objects file (top)"


def _settings(with_archive: bool, state: Path) -> Settings:
    os.environ["LAKEGATE_STATE_DIR"] = str(state)
    settings = load_settings("local")
    if with_archive:
        return settings
    spark = settings.spark.model_copy(update={"class_archive": None})
    return settings.model_copy(update={"spark": spark})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command`; wall, tree CPU and the driver JVM's CPU (sampled)."""
    before, started = _children_cpu(), time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, jvm_cpu = psutil.Process(process.pid), {}
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for proc in tree:
            try:
                if "SparkSubmit" in " ".join(proc.cmdline()):
                    times = proc.cpu_times()
                    jvm_cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        time.sleep(0.2)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode in (0, 1), stderr[-3000:]
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "tree_cpu_s": round(_children_cpu() - before, 2),
        "driver_jvm_cpu_s": round(sum(jvm_cpu.values()), 2),
    }


def _comparable(report: Path) -> Any:
    """report.json without what differs between any two runs (times, run ids, paths)."""
    varying = ("time", "duration", "started", "finished", "run_id", "output", "path", "_s")

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not any(w in k for w in varying)}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(json.loads(report.read_text()))


def run_variant(with_archive: bool, work: Path, log_classes: bool) -> dict[str, Any]:
    """One spark-submit'ed validate; its measurements and its comparable report."""
    name = "with" if with_archive else "without"
    out = work / f"{name}-{time.monotonic_ns()}"
    settings = _settings(with_archive, work / "state")
    args = ["checks/examples/items.yaml", "--input", "data/items.csv", "--output", str(out)]
    parts = submit_parts(
        settings, "local[2]", "validate", [*args, "--no-history", "--quiet"], package_code(settings)
    )
    mapped = any("SharedArchiveFile" in v for v in parts.conf.values())
    assert mapped == with_archive, parts.conf
    env = dict(os.environ, **parts.env)
    log = out.with_suffix(".classes.log")
    if log_classes:
        given = env.get("SPARK_SUBMIT_OPTS", "")
        env["SPARK_SUBMIT_OPTS"] = f"{given} -Xlog:class+load=info:file={log}"
    result = {"variant": name, **_run(parts.argv(), env)}
    if log_classes:
        lines = log.read_text().splitlines()
        result["classes_loaded"] = len(lines)
        result["classes_from_archive"] = sum(ARCHIVE_SOURCE in line for line in lines)
    result["report"] = _comparable(out / "report.json")
    return result


def main() -> int:
    """Interleave the two variants `--repeats` times; print each run and the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-classes", action="store_true")
    options = parser.parse_args()
    os.chdir(ROOT)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-submit-archive-") as work:
        for _ in range(options.repeats):
            for with_archive in (True, False):
                run = run_variant(with_archive, Path(work), options.log_classes)
                runs.append(run)
                shown = {k: v for k, v in run.items() if k != "report"}
                print(json.dumps({**shown, "load": os.getloadavg()[0]}), flush=True)
    reports = {json.dumps(run["report"], sort_keys=True) for run in runs}
    print(f"report.json the same in all runs: {len(reports) == 1}")
    for name in ("with", "without"):
        mine = [run for run in runs if run["variant"] == name]
        medians = {
            key: statistics.median(run[key] for run in mine)
            for key in ("wall_s", "tree_cpu_s", "driver_jvm_cpu_s")
        }
        print(name, json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
