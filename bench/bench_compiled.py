"""Benchmark: compiled scoring against the pandas UDF and MLflow's spark_udf, one session.

    .venv/bin/python bench/bench_compiled.py --rows 4000000 --repeats 3

For each model (a linear pipeline, GradientBoosting 20 trees of depth 3, RandomForest 50 trees)
the same SQL, `SELECT id, <fn>(f1, f2, f3) AS p FROM features`, is timed three ways, round
robin, as a full materialisation (`write.format("noop")`): (c) `predict_<m>` compiled to a Spark
expression (lakegate's default), (u) `predict_<m>` on the pandas UDF (`compiled=False`),
(m) `mlflow.pyfunc.spark_udf` registered for SQL. Medians of `--repeats` runs and ratios are
printed. "First query" is session start, registration and the first scored row in a fresh
process (what `lakegate sql` pays): the UDF, compiled with no verdict cached (a model version's
first registration) and compiled from the cached verdict (every later process), interleaved,
medians of `--first-rounds` processes per path. `--sweep` times GradientBoosting of growing
size compiled (size bound lifted) against the UDF, to find where code generation stops paying.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

FEATURES = ["f1", "f2", "f3"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--sweep", default="", help="GB sizes to sweep as TREESxDEPTH,... e.g. 20x3,100x3,100x5"
    )
    parser.add_argument("--sweep-rows", type=int, default=1_000_000)
    parser.add_argument("--models", default="linear,gb,rf")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--unchecked",
        action="store_true",
        help="also time each compiled query without the Python-side call check",
    )
    parser.add_argument(
        "--first-rounds", type=int, default=3, help="fresh processes per path (first query)"
    )
    parser.add_argument(
        "--first-only",
        action="store_true",
        help="time only the first query in fresh processes (no 4M-row data, no throughput)",
    )
    return parser.parse_args()


def make_models(train_rows: int) -> tuple[dict[str, object], object]:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(train_rows, 3)), columns=FEATURES)
    y = ((x.to_numpy() @ np.array([1.5, -2.0, 0.5]) + rng.normal(size=train_rows)) > 0).astype(
        "int64"
    )
    models = {
        "linear": make_pipeline(StandardScaler(), LogisticRegression()),
        "gb": GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
        "rf": RandomForestClassifier(n_estimators=50, max_depth=10, random_state=0, n_jobs=1),
    }
    return {name: model.fit(x, y) for name, model in models.items()}, (x, y)


def log_model(settings, name: str, model, x) -> str:
    import mlflow
    import pandas as pd
    import skops.io
    from mlflow.models import infer_signature

    from spark_jobs.services.training import pinned_requirements

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    trusted = sorted(t for t in untrusted if t.startswith(("sklearn.", "numpy."))) or None
    example = x.head(5)
    signature = infer_signature(example, pd.Series(model.predict(example), name="prediction"))
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name("bench") or None
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment("bench", artifact_location=settings.artifact_root)
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            skops_trusted_types=trusted,
            pip_requirements=pinned_requirements(),
        )
    version = mlflow.register_model(info.model_uri, f"bench_{name}")
    return f"models:/bench_{name}/{version.version}"


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


UNCHECKED = " (no call check)"


def noop(spark, query: str, *, checked: bool = True) -> None:
    """Run `query` to the end (`noop` write), its calls checked first as `lakegate sql` does."""
    from udfs import run_checked_sql

    df = run_checked_sql(spark, query) if checked else spark.sql(query)
    df.write.format("noop").mode("overwrite").save()


def first_query(uri: str, state: Path, compiled: bool, verdicts: Path) -> float:
    """Fresh process: session start, register, first scored row (what `lakegate sql` pays).

    `verdicts` is the compiled path's verdict cache (`LAKEGATE_COMPILED_CACHE`): an empty folder
    measures a model's first registration ever, a filled one every later process.
    """
    import subprocess

    code = (
        "import os, sys, time; sys.path.insert(0, sys.argv[1]);"
        "from spark_jobs.services.session import get_session;"
        "from lakegate_config.settings import load_settings;"
        "from spark_jobs.services.sql_catalog import preload_for;"
        "from udfs import register_model_function, run_checked_sql;"
        "s = load_settings('local'); t = time.perf_counter();"
        # as `lakegate sql` and `predict` do before their session (compiled scoring only)
        "preload_for(s, {'first': sys.argv[2]} if sys.argv[3] == '1' else {});"
        "spark = get_session(s);"
        "register_model_function(spark, 'predict_first', sys.argv[2],"
        " tracking_uri=s.tracking_uri, compiled=sys.argv[3] == '1');"
        "run_checked_sql(spark, 'SELECT predict_first(0.1D, 0.2D, 0.3D) AS p').collect();"
        "print('SECONDS', time.perf_counter() - t)"
    )
    env = {**os.environ, "LAKEGATE_STATE_DIR": str(state), "LAKEGATE_COMPILED_CACHE": str(verdicts)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(PROJECT_ROOT), uri, "1" if compiled else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("SECONDS")][-1]
    return float(line.split()[1])


FIRST_PATHS = ("udf", "compiled, first registration", "compiled, cached verdict")


def first_queries(uri: str, workdir: Path, rounds: int, name: str) -> dict[str, list[float]]:
    """Fresh processes, interleaved per round: UDF, compiled with no verdict, compiled cached.

    The cached path reads the verdict the first round's uncached process wrote.
    """
    state = workdir / "state"
    cached = workdir / f"verdicts-{name}-cached"
    times: dict[str, list[float]] = {path: [] for path in FIRST_PATHS}
    for round_number in range(rounds):
        fresh = workdir / f"verdicts-{name}-fresh-{round_number}"
        times["udf"].append(first_query(uri, state, False, fresh))
        times["compiled, first registration"].append(first_query(uri, state, True, fresh))
        if round_number == 0 and fresh.exists():
            fresh.rename(cached)
        times["compiled, cached verdict"].append(first_query(uri, state, True, cached))
        print(
            f"first query {name} round {round_number + 1}: "
            + ", ".join(f"{path} {t[-1]:.2f}" for path, t in times.items()),
            flush=True,
        )
    return times


def print_first(first: dict[str, dict[str, list[float]]], rounds: int, started_load: str) -> None:
    """The first-query medians per model and path, and the load averages."""
    print(
        "\nfirst prediction in a fresh process (session start, register, first row), "
        f"medians of {rounds} processes per path, s:"
    )
    for name, result in first.items():
        print(
            f"  {name}: "
            + ", ".join(
                f"{path} {statistics.median(t):.2f} ({' / '.join(f'{v:.2f}' for v in t)})"
                for path, t in result.items()
            )
        )
    print(f"\n{load_average()} (at the end; at the start: {started_load})")


def load_average() -> str:
    """`uptime`'s load averages (1, 5, 15 minutes)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def sweep(spark, settings, sizes: str, rows: int, x, y) -> list[dict]:
    """GB of growing size: compiled (bound lifted) vs UDF on `rows` rows."""
    from pyspark.sql import functions as F
    from sklearn.ensemble import GradientBoostingClassifier

    from udfs import register_model_function
    from udfs.compiled import compile_model_function
    from udfs.scoring import ScoringSpec

    spark.range(rows, numPartitions=4).select(
        "id", *[F.randn(seed=i).alias(n) for i, n in enumerate(FEATURES, 1)]
    ).createOrReplaceTempView("sweep_rows")
    results = []
    for size in [s for s in sizes.split(",") if s]:
        trees, depth = (int(v) for v in size.split("x"))
        model = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, random_state=0)
        model.fit(x.head(20_000), y[:20_000])
        uri = log_model(settings, f"sweep_{trees}x{depth}", model, x)
        udf_fn = register_model_function(
            spark,
            f"sweep_u_{trees}x{depth}",
            uri,
            tracking_uri=settings.tracking_uri,
            compiled=False,
        )
        plain = register_model_function(
            spark,
            f"sweep_c_{trees}x{depth}",
            uri,
            tracking_uri=settings.tracking_uri,
            compiled=False,
        )
        spec = ScoringSpec(
            plain.name, plain.input_names, tuple(i.numpy_dtype for i in plain.inputs)
        )
        compiled = compile_model_function(spark, plain, plain.udf, spec, max_tree_nodes=10**7)
        nodes = sum(e.tree_.node_count for e in model.estimators_.ravel())
        row = {"trees": trees, "depth": depth, "nodes": nodes, "path": compiled.path}
        for key, fn in (("compiled", compiled.name), ("udf", udf_fn.name)):
            query = f"SELECT id, {fn}(f1, f2, f3) AS p FROM sweep_rows"
            noop(spark, query + " WHERE id < 1000")
            row[key] = statistics.median(timed(lambda q=query: noop(spark, q)) for _ in range(2))
        plan = spark.sql(f"SELECT {compiled.name}(f1, f2, f3) FROM sweep_rows")
        physical = plan._jdf.queryExecution().executedPlan().toString()
        row["whole_stage"] = physical.lstrip().startswith("*")
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lakegate-bench-compiled-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(workdir / "state")
    os.environ["LAKEGATE_COMPILED_CACHE"] = str(workdir / "verdicts-main")
    started_load = load_average()
    print(started_load, flush=True)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    settings = load_settings("local")
    conf = {**settings.spark.conf, "spark.sql.execution.arrow.maxRecordsPerBatch": 100_000}
    settings = settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"conf": conf})}
    )
    wanted = [m for m in args.models.split(",") if m]
    print(f"workdir {workdir}; training ...", flush=True)
    models, (x, y) = make_models(args.train_rows)
    spark = get_session(settings, "lakegate-bench-compiled")
    import mlflow
    from pyspark.sql import functions as F

    from udfs import register_model_function

    uris = {name: log_model(settings, name, models[name], x) for name in wanted}
    first: dict[str, dict[str, list[float]]] = {}
    for name in wanted:  # session start -> first prediction, fresh processes, interleaved
        first[name] = first_queries(uris[name], workdir, args.first_rounds, name)
    if args.first_only:
        print_first(first, args.first_rounds, started_load)
        stop_session(spark)
        return 0

    data = workdir / "features.parquet"
    spark.range(args.rows, numPartitions=8).select(
        "id", *[F.randn(seed=i).alias(n) for i, n in enumerate(FEATURES, 1)]
    ).write.parquet(str(data))
    spark.read.parquet(str(data)).createOrReplaceTempView("features")

    runs: dict[str, str] = {}
    paths = {}
    for name in wanted:
        compiled = register_model_function(
            spark, f"c_{name}", uris[name], tracking_uri=settings.tracking_uri
        )
        register_model_function(
            spark, f"u_{name}", uris[name], tracking_uri=settings.tracking_uri, compiled=False
        )
        paths[name] = (compiled.path, compiled.fallback_reason)
        print(f"{name}: {paths[name]}", flush=True)
        runs[f"{name}/compiled"] = f"c_{name}"
        runs[f"{name}/udf"] = f"u_{name}"
        if not args.skip_mlflow:
            spark.udf.register(
                f"m_{name}",
                mlflow.pyfunc.spark_udf(spark, uris[name], result_type="long", env_manager="local"),
            )
            runs[f"{name}/mlflow"] = f"m_{name}"
    queries = {key: f"SELECT id, {fn}(f1, f2, f3) AS p FROM features" for key, fn in runs.items()}
    if args.unchecked:  # the same compiled query without udfs.check_model_calls' plan walk
        for name in wanted:
            queries[f"{name}/compiled{UNCHECKED}"] = queries[f"{name}/compiled"]
    sample = spark.sql(
        "SELECT "
        + ", ".join(f"{fn}(f1, f2, f3) AS `{k}`" for k, fn in runs.items())
        + " FROM features LIMIT 20000"
    ).toPandas()
    for name in wanted:
        base = sample[f"{name}/udf"]
        print(
            f"{name}: disagreements on 20,000 rows: "
            + ", ".join(
                f"{k} {int((sample[k] != base).sum())}" for k in runs if k.startswith(name)
            ),
            flush=True,
        )
    for query in queries.values():  # warm-up
        noop(spark, query + " WHERE id % 100000 = 0", checked=False)
    timings: dict[str, list[float]] = {key: [] for key in queries}
    for round_number in range(args.repeats):
        for key, query in queries.items():
            checked = not key.endswith(UNCHECKED)
            timings[key].append(timed(lambda q=query, c=checked: noop(spark, q, checked=c)))
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"{k} {t[-1]:.2f}" for k, t in timings.items()),
            flush=True,
        )
    medians = {key: statistics.median(times) for key, times in timings.items()}
    swept = sweep(spark, settings, args.sweep, args.sweep_rows, x, y) if args.sweep else []

    print(f"\n{args.rows:,} rows x 3 doubles, local[2], medians of {args.repeats}")
    print(
        "| model | path | compiled s | pandas UDF s | mlflow spark_udf s | mlflow / compiled "
        "| UDF / compiled |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in wanted:
        c, u = medians[f"{name}/compiled"], medians[f"{name}/udf"]
        m = medians.get(f"{name}/mlflow")
        path = paths[name][0] + (f" ({paths[name][1]})" if paths[name][1] else "")
        mtext = f"{m:.2f}" if m else "-"
        ratio = f"{m / c:.2f}x" if m else "-"
        print(f"| {name} | {path} | {c:.2f} | {u:.2f} | {mtext} | {ratio} | {u / c:.2f}x |")
        bare = medians.get(f"{name}/compiled{UNCHECKED}")
        if bare:
            versus = f"{m / bare:.2f}x" if m else "-"
            print(
                f"| {name} | compiled{UNCHECKED} | {bare:.2f} | {u:.2f} | {mtext} | {versus} "
                f"| {u / bare:.2f}x |"
            )
    print_first(first, args.first_rounds, started_load)
    if swept:
        print("\n| GB trees x depth | nodes | compiled s | UDF s | UDF / compiled | whole-stage |")
        print("|---|---:|---:|---:|---:|---|")
        for row in swept:
            print(
                f"| {row['trees']}x{row['depth']} | {row['nodes']} | {row['compiled']:.2f} | "
                f"{row['udf']:.2f} | {row['udf'] / row['compiled']:.2f}x | {row['whole_stage']} |"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "timings": timings,
                    "medians": medians,
                    "first": first,
                    "paths": paths,
                    "sweep": swept,
                },
                indent=2,
                default=str,
            )
        )
    stop_session(spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
