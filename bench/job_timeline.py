"""Where a validate run's wall time goes: Spark jobs, core utilisation and driver-only time.

On the `orders` table of bench_validate.py (generated once, untimed), runs the bare parquet copy
(a) and `lakegate validate` (b) interleaved, `--repeats` times after one warm-up each, with
Spark's event log on. From the log it measures, per run:

  wall s        the run, as the caller sees it
  task s        the seconds the executors' tasks ran (both cores together)
  utilisation   task s / (wall s x cores): how busy the cores were
  driver s      wall time with no Spark job running (planning, commits, Deequ's verdict,
                Python): what more cores would not shorten
  jobs          the Spark jobs the run started

and prints the medians side by side with (b)/(a) for wall and task seconds, then every job of
(b)'s last run (start, wait before it, duration, tasks, task seconds, call site).

Run (from the project root):

    .venv/bin/python bench/job_timeline.py --rows 3000000 --repeats 3
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
for entry in (PROJECT_ROOT, PROJECT_ROOT / "bench"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

CORES = 2  # conf/local.yaml's local[2]


@dataclass
class Job:
    """One Spark job from the event log (times in epoch milliseconds)."""

    start: int
    end: int
    stages: list[int]
    call_site: str
    task_ms: int = 0
    tasks: int = 0


@dataclass
class Span:
    """One timed run of a variant, and the jobs that ran inside it."""

    variant: str
    start_ms: int
    end_ms: int
    jobs: list[Job] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    @property
    def task_seconds(self) -> float:
        return sum(j.task_ms for j in self.jobs) / 1000

    @property
    def driver_seconds(self) -> float:
        """Wall time during which no job of the span ran."""
        covered, reach = 0, self.start_ms
        for job in sorted(self.jobs, key=lambda j: j.start):
            begin, end = max(job.start, reach), min(job.end, self.end_ms)
            if end > begin:
                covered += end - begin
            reach = max(reach, job.end)
        return (self.end_ms - self.start_ms - covered) / 1000


def read_event_log(path: Path) -> list[Job]:
    """Every job of a Spark event log, with its tasks' count and run time."""
    jobs: dict[int, Job] = {}
    stage_of_job: dict[int, int] = {}
    task_times: list[tuple[int, int]] = []
    with path.open() as log:
        for line in log:
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                call_site = event.get("Properties", {}).get("callSite.short", "")
                if not call_site:
                    names = [s.get("Stage Name", "") for s in event.get("Stage Infos", [])]
                    call_site = names[0] if names else ""
                job = Job(event["Submission Time"], event["Submission Time"], [], call_site)
                job.stages = list(event["Stage IDs"])
                jobs[event["Job ID"]] = job
                for stage in job.stages:
                    stage_of_job[stage] = event["Job ID"]
            elif kind == "SparkListenerJobEnd":
                jobs[event["Job ID"]].end = event["Completion Time"]
            elif kind == "SparkListenerTaskEnd":
                info = event["Task Info"]
                task_times.append((event["Stage ID"], info["Finish Time"] - info["Launch Time"]))
    for stage, millis in task_times:
        owner = jobs.get(stage_of_job.get(stage, -1))
        if owner is not None:
            owner.task_ms += millis
            owner.tasks += 1
    return list(jobs.values())


def assign_jobs(spans: list[Span], jobs: list[Job]) -> None:
    """Give each span the jobs submitted while it ran."""
    for span in spans:
        span.jobs = [j for j in jobs if span.start_ms <= j.start <= span.end_ms]


def summarize(spans: list[Span]) -> dict[str, dict[str, float]]:
    """Medians per variant: wall, task seconds, utilisation, driver-only seconds, jobs."""
    summary: dict[str, dict[str, float]] = {}
    for variant in dict.fromkeys(s.variant for s in spans):
        mine = [s for s in spans if s.variant == variant]
        summary[variant] = {
            "wall_seconds": round(statistics.median(s.wall for s in mine), 3),
            "task_seconds": round(statistics.median(s.task_seconds for s in mine), 3),
            "utilisation": round(
                statistics.median(s.task_seconds / (s.wall * CORES) for s in mine), 3
            ),
            "driver_seconds": round(statistics.median(s.driver_seconds for s in mine), 3),
            "jobs": statistics.median(len(s.jobs) for s in mine),
        }
    return summary


def print_summary(summary: dict[str, dict[str, float]], last: Span) -> None:
    """The side-by-side table, the ratios and the last (b) run's jobs."""
    header = f"{'variant':<12}{'wall s':>8}{'task s':>8}{'util':>7}{'driver s':>10}{'jobs':>6}"
    print(header)
    print("-" * len(header))
    for variant, s in summary.items():
        print(
            f"{variant:<12}{s['wall_seconds']:>8.2f}{s['task_seconds']:>8.2f}"
            f"{s['utilisation']:>7.0%}{s['driver_seconds']:>10.2f}{s['jobs']:>6g}"
        )
    copy, gate = summary["copy"], summary["lakegate"]
    print(
        f"(b)/(a): wall {gate['wall_seconds'] / copy['wall_seconds']:.2f}, "
        f"task seconds {gate['task_seconds'] / copy['task_seconds']:.2f}"
    )
    print(f"\njobs of the last (b) run ({last.wall:.2f} s):")
    reach = last.start_ms
    for job in sorted(last.jobs, key=lambda j: j.start):
        wait = max(0, job.start - reach) / 1000
        print(
            f"  +{(job.start - last.start_ms) / 1000:6.2f}s  after {wait:5.2f}s  "
            f"{(job.end - job.start) / 1000:6.2f}s  {job.tasks:3d} tasks "
            f"{job.task_ms / 1000:6.2f} task s  {job.call_site[:60]}"
        )
        reach = max(reach, job.end)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows to generate")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated defects")
    parser.add_argument(
        "--suite",
        type=Path,
        default=PROJECT_ROOT / "checks" / "examples" / "bench_wide.yaml",
        help="the suite (bench_validate's by default)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lakegate-timeline-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(work / "state")

    from bench_validate import PhaseClock, generate_table, run_copy, run_lakegate

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    settings = load_settings("local")
    events = work / "events"
    events.mkdir()
    conf = {
        **settings.spark.conf,
        "spark.eventLog.enabled": True,
        "spark.eventLog.dir": events.as_uri(),
    }
    settings = settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"conf": conf})}
    )
    suite = load_suite(args.suite)
    spark = get_session(settings, "lakegate-bench-timeline")
    source = str(work / "orders.parquet")
    spans: list[Span] = []
    try:
        generate_table(spark, source, args.rows, args.seed)
        actions: dict[str, Callable[[Path], Any]] = {
            "copy": lambda out: run_copy(spark, source, out),
            "lakegate": lambda out: run_lakegate(spark, settings, suite, source, out, PhaseClock()),
        }
        for repeat in range(args.repeats + 1):  # the first round warms up, untimed
            for variant, action in actions.items():
                out = work / "out" / variant
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                started = int(time.time() * 1000)
                action(out)
                span = Span(variant, started, int(time.time() * 1000))
                if repeat:
                    spans.append(span)
                    print(f"[{repeat}/{args.repeats}] {variant:<9} {span.wall:6.2f}s", flush=True)
    finally:
        stop_session(spark)
    logs = [p for p in events.iterdir() if p.is_file()]
    assign_jobs(spans, read_event_log(logs[0]))
    summary = summarize(spans)
    print(f"\nrows={args.rows:,} repeats={args.repeats} load {os.getloadavg()[0]:.1f}")
    print_summary(summary, [s for s in spans if s.variant == "lakegate"][-1])
    results = PROJECT_ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = results / f"timeline-{args.rows}-{stamp}.json"
    target.write_text(json.dumps({"rows": args.rows, "summary": summary}, indent=2))
    print(f"\nresults: {target}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
