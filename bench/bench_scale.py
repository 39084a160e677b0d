"""Scale benchmark: validate and predict at 1M, 10M and 30M rows on this machine.

For each size it generates the `orders` table of bench_validate.py (not timed), then times
`spark_jobs.validate.run` with `checks/examples/bench_wide.yaml` and `spark_jobs.predict.run` with a
scaler + logistic regression registered in a throwaway MLflow store, and prints time, rows/s and
peak driver memory (JVM and Python RSS) per size, plus how far time is from linear (seconds per
million rows, relative to the smallest size). Target: time linear in rows (within 20%), driver
memory flat.

    .venv/bin/python bench/bench_scale.py                        # 1M, 10M, 30M
    .venv/bin/python bench/bench_scale.py --sizes 1000000 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WARM_UP_ROWS = 100_000
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lakegate-scale-"))
    os.environ["LAKEGATE_STATE_DIR"] = str(workdir / "state")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'state' / 'mlflow.db'}"

    import pandas as pd
    from bench_validate import MemorySampler, generate_table
    from pyspark.sql import functions as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from checks.suite_formats import load_suite
    from lakegate_config.settings import load_settings
    from spark_jobs import predict
    from spark_jobs.predict import PredictSpec
    from spark_jobs.services.session import get_session, stop_session
    from spark_jobs.services.training import INPUT_GATE_ARTIFACT  # noqa: F401  (the model has no gate)
    from spark_jobs.validate import ValidateSpec, run

    settings = load_settings("local")
    spark = get_session(settings, "lakegate-bench-scale")
    sampler = MemorySampler(0.2)
    sampler.start()
    suite = load_suite(PROJECT_ROOT / "checks" / "examples" / "bench_wide.yaml")

    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {
            "amount": rng.uniform(5, 500, 5000),
            "quantity": rng.integers(1, 100, 5000).astype("float64"),
            "score": rng.random(5000),
        }
    )
    labels = (train["amount"] / 500 + train["score"] > 1).astype("int64")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(train, labels)
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(train, model.predict(train)),
            registered_model_name="orders",
        )
    model_uri = "models:/orders/1"
    del info

    results = []
    for rows in [WARM_UP_ROWS, *args.sizes]:
        source = str(workdir / f"orders-{rows}.parquet")
        generate_table(spark, source, rows, seed=7)
        features = str(workdir / f"features-{rows}.parquet")
        spark.read.parquet(source).select(
            "id",
            F.col("amount").cast("double").alias("amount"),
            F.col("quantity").cast("double").alias("quantity"),
            "score",
        ).write.mode("overwrite").parquet(features)
        sampler.take()
        started = time.perf_counter()
        spec = ValidateSpec(
            suite=str(suite.path),
            input=source,
            output=str(workdir / f"out-{rows}"),
            keep_history=False,
        )
        run(spark, settings, spec, suite=suite)
        validate_s = time.perf_counter() - started
        validate_jvm, validate_py = sampler.take()
        started = time.perf_counter()
        predict.run(
            spark,
            settings,
            PredictSpec(
                model=model_uri, input=features, output=str(workdir / f"pred-{rows}"), key=["id"]
            ),
        )
        predict_s = time.perf_counter() - started
        predict_jvm, predict_py = sampler.take()
        results.append(
            {
                "rows": rows,
                "validate_seconds": round(validate_s, 2),
                "validate_rows_per_second": round(rows / validate_s),
                "validate_peak_jvm_mb": validate_jvm // 2**20,
                "validate_peak_python_mb": validate_py // 2**20,
                "predict_seconds": round(predict_s, 2),
                "predict_rows_per_second": round(rows / predict_s),
                "predict_peak_jvm_mb": predict_jvm // 2**20,
                "predict_peak_python_mb": predict_py // 2**20,
            }
        )
        if rows == WARM_UP_ROWS and len(results) == 1:
            results.clear()  # JIT, Python workers and the model are warm now; not reported
            continue
        print(json.dumps(results[-1]), flush=True)
    sampler.stop()
    stop_session(spark)

    base = results[0]
    header = ("rows", "validate s", "rows/s", "s/M vs 1st", "JVM MB", "Py MB")
    predict_header = ("predict s", *header[2:])
    print(
        "\n"
        + " ".join(f"{h:>11}" for h in header)
        + " |"
        + " ".join(f"{h:>11}" for h in predict_header)
    )
    for r in results:
        line = [f"{r['rows']:>11,}"]
        for job in ("validate", "predict"):
            per_row = (r[f"{job}_seconds"] / r["rows"]) / (base[f"{job}_seconds"] / base["rows"])
            r[f"{job}_per_row_vs_first"] = round(per_row, 2)
            line += [
                f"{r[f'{job}_seconds']:>11.1f}",
                f"{r[f'{job}_rows_per_second']:>11,}",
                f"{per_row:>11.2f}",
                f"{r[f'{job}_peak_jvm_mb']:>11}",
                f"{r[f'{job}_peak_python_mb']:>11}",
            ]
        print(" ".join(line[:6]) + " |" + " ".join(line[6:]))
    target = (
        args.json
        or PROJECT_ROOT / "bench" / "results" / f"scale-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"sizes": results}, indent=2) + "\n")
    print(f"\nresults: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
