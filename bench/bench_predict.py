"""Benchmark: scoring a feature table in Spark SQL four ways, side by side in one run.

    .venv/bin/python bench/bench_predict.py --rows 10000000 --repeats 3

(a) `predict_<name>` from `udfs` (iterator pandas UDF, model loaded once per worker process),
(b) `mlflow.pyfunc.spark_udf` registered for SQL, (c) the same linear model as a native Spark SQL
expression, (d) a row-at-a-time Python UDF computing the same linear model in plain Python.
Each is timed as a full materialisation (`write.format("noop")`), after one warm-up run on a few
rows; medians of `--repeats` runs are reported with rows/second and the ratio to (a). Everything
(MLflow store, data) lives in a throwaway temporary folder.
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
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from anywhere

FEATURES = ["feature_1", "feature_2", "feature_3"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--arrow-batch",
        type=int,
        default=100_000,
        help="spark.sql.execution.arrow.maxRecordsPerBatch",
    )
    parser.add_argument("--partitions", type=int, default=8, help="files in the feature table")
    parser.add_argument("--skip", default="", help="comma-separated methods to skip (a,b,c,d,e)")
    parser.add_argument(
        "--batch-sweep",
        default="10000,100000,500000",
        help="Arrow batch sizes to time (a) with, besides --arrow-batch ('' to skip)",
    )
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=20_000,
        help="rows for (e), a row-at-a-time UDF calling the model's predict per row (slow)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser.parse_args()


def train_model(settings, train_rows: int = 100_000) -> str:
    import numpy as np
    import pandas as pd

    from spark_jobs.services.training import TrainConfig, train_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(train_rows, 3))
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["target"] = (x @ np.array([1.5, -2.0, 0.5]) + rng.normal(size=train_rows) > 0).astype(
        "int64"
    )
    config = TrainConfig.model_validate(
        {
            "model_name": "bench",
            "input": "generated",
            "features": FEATURES,
            "target": "target",
            "task": "classification",
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            "preprocessing": [{"class": "sklearn.preprocessing.StandardScaler"}],
        }
    )
    result = train_model(frame, config, settings, source="generated")
    return f"models:/bench/{result.version}"


def native_expression(pipeline) -> str:
    """The pipeline as Spark SQL: sigmoid of the scaled dot product, thresholded to a class."""
    scaler, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    terms = [
        f"({estimator.coef_[0][i]!r}D * (({name} - {scaler.mean_[i]!r}D) / {scaler.scale_[i]!r}D))"
        for i, name in enumerate(FEATURES)
    ]
    z = f"({estimator.intercept_[0]!r}D + {' + '.join(terms)})"
    classes = [int(c) for c in estimator.classes_]
    return f"CASE WHEN 1D / (1D + exp(-{z})) > 0.5D THEN {classes[1]}L ELSE {classes[0]}L END"


def row_at_a_time_udf(pipeline):
    """The same model as a plain Python function called once per row."""
    import math

    from pyspark.sql.functions import udf

    scaler, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    mean = [float(v) for v in scaler.mean_]
    scale = [float(v) for v in scaler.scale_]
    coef = [float(v) for v in estimator.coef_[0]]
    intercept = float(estimator.intercept_[0])
    low, high = (int(c) for c in estimator.classes_)

    def predict_row(f1: float, f2: float, f3: float) -> int | None:
        if f1 is None or f2 is None or f3 is None:
            return None
        z = intercept
        for value, m, s, w in zip((f1, f2, f3), mean, scale, coef, strict=True):
            z += w * ((value - m) / s)
        return high if 1.0 / (1.0 + math.exp(-z)) > 0.5 else low

    return udf(predict_row, "long")


def naive_model_udf(pipeline):
    """The common naive pattern: call the model's own predict on each row."""
    import pandas as pd
    from pyspark.sql.functions import udf

    def predict_row(f1: float, f2: float, f3: float) -> int | None:
        if f1 is None or f2 is None or f3 is None:
            return None
        return int(pipeline.predict(pd.DataFrame([[f1, f2, f3]], columns=FEATURES))[0])

    return udf(predict_row, "long")


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    args = parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    workdir = Path(tempfile.mkdtemp(prefix="lakegate-bench-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(workdir / "state")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )

    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import get_session, stop_session

    settings = load_settings("local")
    conf = {
        **settings.spark.conf,
        "spark.sql.execution.arrow.maxRecordsPerBatch": args.arrow_batch,
        "spark.sql.shuffle.partitions": 4,
    }
    settings = settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"conf": conf})}
    )
    print(f"workdir {workdir}; training the model ...", flush=True)
    model_uri = train_model(settings)

    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    pipeline = mlflow.sklearn.load_model(model_uri)

    # Cold start: session start -> model function registered -> first prediction on the driver.
    session_started = time.perf_counter()
    spark = get_session(settings, "lakegate-bench-predict")
    session_ready = time.perf_counter()
    from pyspark.sql import functions as F

    from udfs import register_model_function, run_checked_sql

    register_model_function(spark, "predict_bench", model_uri, tracking_uri=settings.tracking_uri)
    registered = time.perf_counter()
    first = run_checked_sql(spark, "SELECT predict_bench(0.1D, 0.2D, 0.3D) AS p").collect()[0]["p"]
    cold_start = time.perf_counter() - session_started
    first_batch = cold_start - (registered - session_started)
    register_seconds = registered - session_ready
    print(
        f"cold start (session start -> first prediction): {cold_start:.1f} s "
        f"(session {session_ready - session_started:.1f} s, register "
        f"{registered - session_ready:.1f} s, first batch incl. worker start and model load "
        f"{first_batch:.1f} s), first prediction {first}",
        flush=True,
    )

    data_path = workdir / "features.parquet"
    generated = timed(
        lambda: (
            spark.range(args.rows, numPartitions=args.partitions)
            .select(
                "id",
                *[F.randn(seed=i).alias(name) for i, name in enumerate(FEATURES, start=1)],
            )
            .write.parquet(str(data_path))
        )
    )
    print(f"generated {args.rows:,} rows in {generated:.1f} s", flush=True)
    spark.read.parquet(str(data_path)).createOrReplaceTempView("features")

    mlflow_first_use_started = time.perf_counter()
    mlflow_udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="long", env_manager="local")
    spark.udf.register("mlflow_bench", mlflow_udf)
    spark.udf.register("row_bench", row_at_a_time_udf(pipeline))
    spark.sql("SELECT mlflow_bench(0.1D, 0.2D, 0.3D) AS p").collect()
    mlflow_first_use = time.perf_counter() - mlflow_first_use_started

    args_sql = ", ".join(FEATURES)
    methods = {
        "a": ("predict_bench (udfs, iterator pandas UDF)", f"predict_bench({args_sql})"),
        "b": ("mlflow.pyfunc.spark_udf in SQL", f"mlflow_bench({args_sql})"),
        "c": ("native Spark SQL expression", native_expression(pipeline)),
        "d": ("row-at-a-time Python UDF", f"row_bench({args_sql})"),
    }
    # The four agree before they are timed.
    sample = spark.sql(
        "SELECT "
        + ", ".join(f"{expr} AS {key}" for key, (_, expr) in methods.items())
        + " FROM features LIMIT 20000"
    ).toPandas()
    disagreements = {key: int((sample[key] != sample["a"]).sum()) for key in methods}
    print(f"disagreements with (a) on 20,000 rows: {disagreements}", flush=True)

    # Runs are timed round-robin (a, b, c, d, a, b, ...) so that a busy machine slows every
    # method alike instead of whichever happened to run at the busy moment.
    runs = {
        key: (label, f"SELECT id, {expression} AS p FROM features", args.arrow_batch)
        for key, (label, expression) in methods.items()
        if key not in skip
    }
    if "a" in runs:
        for size in [int(v) for v in args.batch_sweep.split(",") if v.strip()]:
            if size != args.arrow_batch:
                runs[f"a@{size}"] = (f"(a) with Arrow batch {size:,}", runs["a"][1], size)

    def run_once(query: str, batch: int) -> float:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
        return timed(
            lambda: run_checked_sql(spark, query).write.format("noop").mode("overwrite").save()
        )

    for _label, query, batch in runs.values():  # warm-up: Python workers start, models load
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
        run_checked_sql(spark, query + " WHERE id % 100000 = 0").write.format("noop").mode(
            "overwrite"
        ).save()
    timings: dict[str, list[float]] = {key: [] for key in runs}
    for round_number in range(args.repeats):
        for key, (_label, query, batch) in runs.items():
            timings[key].append(run_once(query, batch))
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"{key} {times[-1]:.2f} s" for key, times in timings.items()),
            flush=True,
        )
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.arrow_batch))
    results = {
        key: {"label": runs[key][0], "times": times, "median": statistics.median(times)}
        for key, times in timings.items()
        if "@" not in key
    }
    sweep = {
        runs[key][2]: statistics.median(times)
        for key, times in timings.items()
        if key == "a" or key.startswith("a@")
    }
    sweep = {size: sweep[size] for size in sorted(sweep)}

    naive = {}
    if "e" not in skip and args.naive_rows:
        sample_path = workdir / "sample.parquet"
        spark.table("features").limit(args.naive_rows).write.parquet(str(sample_path))
        spark.read.parquet(str(sample_path)).createOrReplaceTempView("sample")
        spark.udf.register("naive_bench", naive_model_udf(pipeline))
        for key, expression in (("a", methods["a"][1]), ("e", f"naive_bench({args_sql})")):
            query = f"SELECT id, {expression} AS p FROM sample"
            times = [
                timed(lambda q=query: spark.sql(q).write.format("noop").mode("overwrite").save())
                for _ in range(args.repeats)
            ]
            naive[key] = statistics.median(times)
        print(
            f"on {args.naive_rows:,} rows: (a) {naive['a']:.2f} s, (e) row-at-a-time UDF calling "
            f"the model's predict per row {naive['e']:.2f} s ({naive['e'] / naive['a']:.0f}x)"
        )

    base = results.get("a", {}).get("median")
    print()
    print(
        f"{args.rows:,} rows x 3 doubles, local[2], arrow batch {args.arrow_batch:,}, "
        f"{args.repeats} repeats"
    )
    print("| method | median s | rows/s | time vs (a) |")
    print("|---|---:|---:|---:|")
    for key, result in results.items():
        ratio = f"{result['median'] / base:.2f}x" if base else "-"
        rate = args.rows / result["median"]
        print(f"| ({key}) {result['label']} | {result['median']:.2f} | {rate:,.0f} | {ratio} |")
    if naive:
        rate = args.naive_rows / naive["e"]
        print(
            f"| (e) row-at-a-time UDF calling model.predict per row, on {args.naive_rows:,} rows "
            f"| {naive['e']:.2f} | {rate:,.0f} | {naive['e'] / naive['a']:.0f}x (vs (a) on the "
            "same rows) |"
        )
    print(
        "(a) by Arrow batch size: "
        + ", ".join(f"{size:,}: {median:.2f} s" for size, median in sweep.items())
    )
    print(f"\ncold start, session start -> first prediction with (a): {cold_start:.1f} s")
    print(f"  of which registration {register_seconds:.1f} s, first batch {first_batch:.1f} s")
    print(f"first use of mlflow spark_udf (create + first prediction): {mlflow_first_use:.1f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "arrow_batch": args.arrow_batch,
                    "repeats": args.repeats,
                    "results": results,
                    "cold_start_seconds": cold_start,
                    "register_seconds": register_seconds,
                    "first_batch_seconds": first_batch,
                    "arrow_batch_sweep": sweep,
                    "naive_rows": args.naive_rows,
                    "naive_seconds": naive,
                    "mlflow_first_use_seconds": mlflow_first_use,
                    "disagreements": disagreements,
                },
                indent=2,
            )
        )
    stop_session(spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
