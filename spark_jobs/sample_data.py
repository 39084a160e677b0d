"""`lakegate sample-data`: the bundled synthetic users table, generated deterministically.

The seeds' users (`user_id`, `feature_1`, `feature_2`, `target`) plus a plan `segment` and a
`sessions` count, with a few realistic defects injected so the quality gate has work to do:
missing features, an unknown segment, negative session counts and duplicated ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

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


class SampleDataSpec(BaseModel):
    """How many users, from which seed, into which parquet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = 100_000
    seed: int = 7
    output: str = "data/generated/users.parquet"


@dataclass(frozen=True)
class SampleDataResult:
    """The parquet file written and its row count."""

    path: Path
    rows: int


def run(spec: SampleDataSpec) -> SampleDataResult:
    """Write the synthetic users table `spec` describes (no Spark)."""
    return SampleDataResult(write_sample(Path(spec.output), spec.rows, spec.seed), spec.rows)


def render(result: SampleDataResult, spec: SampleDataSpec) -> int:
    """Print what was written."""
    click.echo(f"Wrote {result.rows} users to {result.path}")
    return 0


@lakegate_command("sample-data", spec=SampleDataSpec, render=render)
@click.option("--rows", default=100_000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--output", default="data/generated/users.parquet", show_default=True)
def command(job: JobContext, spec: SampleDataSpec) -> SampleDataResult:
    """Write the synthetic users table (parquet) used by the demo pipeline."""
    return run(spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("sample-data")
