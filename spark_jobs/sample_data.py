"""`lakegate sample-data`: the bundled synthetic users table, generated deterministically.

The seeds' users (`user_id`, `feature_1`, `feature_2`, `target`) plus a plan `segment` and a
`sessions` count, with a few realistic defects injected so the quality gate has work to do:
missing features, an unknown segment, negative session counts and duplicated ids.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import click
import numpy as np
import pandas as pd

from spark_jobs.services.command import JobContext, lakegate_command

SEGMENTS = ("free", "pro", "team")


def synthetic_users(rows: int = 100_000, seed: int = 7) -> pd.DataFrame:
    """Return the users table; the same `rows` and `seed` always give the same table."""
    rng = np.random.default_rng(seed)
    namespace = uuid.UUID(int=seed)
    user_id = [str(uuid.uuid5(namespace, str(i))) for i in range(rows)]
    feature_1 = rng.normal(0.0, 1.0, rows)
    feature_2 = rng.normal(0.0, 1.0, rows)
    segment = rng.choice(SEGMENTS, rows, p=[0.6, 0.3, 0.1])
    sessions = rng.poisson(12, rows).astype("int64")
    logit = 1.5 * feature_1 - 1.0 * feature_2 + 0.8 * feature_1**2 - 0.6
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame = pd.DataFrame(
        {
            "user_id": user_id,
            "segment": segment,
            "sessions": sessions,
            "feature_1": feature_1,
            "feature_2": feature_2,
            "target": target,
        }
    )
    defects = rng.permutation(rows)
    n = max(rows // 1000, 1)
    frame.loc[defects[: n * 5], "feature_1"] = np.nan  # 0.5% missing feature_1
    frame.loc[defects[n * 5 : n * 8], "segment"] = "enterprise"  # 0.3% unknown category
    frame.loc[defects[n * 8 : n * 10], "sessions"] = -1  # 0.2% negative counts
    duplicated = defects[n * 10 : n * 11]
    originals = defects[n * 11 : n * 12]
    frame.loc[duplicated, "user_id"] = frame.loc[originals, "user_id"].to_numpy()  # 0.1% dup ids
    frame["feature_1"] = frame["feature_1"].astype("float64")
    return frame


def write_sample(path: Path, rows: int, seed: int) -> Path:
    """Write the users table to a parquet file at `path` (whole or not at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    synthetic_users(rows, seed).to_parquet(temporary, index=False)
    temporary.replace(path)
    return path


@lakegate_command("sample-data")
@click.option("--rows", default=100_000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--output", default="data/generated/users.parquet", show_default=True)
def command(job: JobContext, rows: int, seed: int, output: str) -> int:
    """Write the synthetic users table (parquet) used by the demo pipeline."""
    path = write_sample(Path(output), rows, seed)
    click.echo(f"Wrote {rows} users to {path}")
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("sample-data")
