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
    parser.add_argument("--skip", default="", help="comma-separated methods to skip (a,b,c,d)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser.parse_args()


def train_model(settings, train_rows: int = 100_000) -> str:
    import numpy as np
    import pandas as pd

    from spark_jobs.training import TrainConfig, train_model

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

    from spark_jobs.session import get_session, stop_session
    from spark_jobs.settings import load_settings

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
    first = run_checked_sql(spark, "SELECT predict_bench(0.1D, 0.2D, 0.3D) AS p").collect()[0]["p"]
    cold_start = time.perf_counter() - session_started
    print(
        f"cold start (session start -> first prediction): {cold_start:.1f} s "
        f"(session {session_ready - session_started:.1f} s), first prediction {first}",
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

    results = {}
    for key, (label, expression) in methods.items():
        if key in skip:
            continue
        query = f"SELECT id, {expression} AS p FROM features"
        run_checked_sql(spark, query + " WHERE id % 100000 = 0").write.format("noop").mode(
            "overwrite"
        ).save()  # warm-up: every Python worker starts and loads its model
        times = [
            timed(
                lambda q=query: (
                    run_checked_sql(spark, q).write.format("noop").mode("overwrite").save()
                )
            )
            for _ in range(args.repeats)
        ]
        median = statistics.median(times)
        results[key] = {"label": label, "times": times, "median": median}
        print(f"({key}) {label}: median {median:.2f} s of {times}", flush=True)

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
    print(f"\ncold start, session start -> first prediction with (a): {cold_start:.1f} s")
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
