"""Small synthetic users data and models trained through lakegate's own training code."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakegate_config.settings import Settings
from spark_jobs.services.training import TrainConfig, TrainResult, train_model


def users_frame(rows: int = 200, seed: int = 7) -> pd.DataFrame:
    """Users with two raw features, feature_3 = feature_1**2, a class and a numeric target."""
    rng = np.random.default_rng(seed)
    feature_1 = rng.normal(size=rows)
    feature_2 = rng.normal(size=rows)
    feature_3 = feature_1**2
    signal = 1.5 * feature_1 - 2.0 * feature_2 + 0.5 * feature_3
    return pd.DataFrame(
        {
            "user_id": np.arange(1, rows + 1, dtype="int64"),
            "feature_1": feature_1,
            "feature_2": feature_2,
            "feature_3": feature_3,
            "target": (signal + rng.normal(scale=0.5, size=rows) > 0.5).astype("int64"),
            "spend": signal + rng.normal(scale=0.1, size=rows),
        }
    )


def train_config(model_name: str, task: str = "classification", **overrides: object) -> TrainConfig:
    """A config for a scaler + linear model on the users features."""
    estimator = (
        {"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 1.0}}
        if task == "classification"
        else {"class": "sklearn.linear_model.LinearRegression"}
    )
    data = {
        "model_name": model_name,
        "input": "memory",
        "features": ["feature_1", "feature_2", "feature_3"],
        "target": "target" if task == "classification" else "spend",
        "task": task,
        "estimator": estimator,
        "preprocessing": [{"class": "sklearn.preprocessing.StandardScaler"}],
        "test_fraction": 0.25,
        "seed": 42,
    }
    data.update(overrides)
    return TrainConfig.model_validate(data)


def train(
    settings: Settings, model_name: str, task: str = "classification", **overrides: object
) -> TrainResult:
    """Train and register one model in the test MLflow store."""
    return train_model(
        users_frame(), train_config(model_name, task, **overrides), settings, source="memory"
    )
