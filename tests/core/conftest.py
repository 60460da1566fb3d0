"""Configs and synthetic eval data for the core tests: rides with districts, vehicle types and pickup hours.

The helpers are handed to tests as fixtures (``make_config``, ``rides``, ...) so no test imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.config import CityConfig, deep_merge

BASE_CONFIG: dict[str, Any] = {
    "city": "berlin",
    "data": {"uri": "rides.parquet", "timestamp_column": "requested_at"},
    "task": "regression",
    "target": "eta_seconds",
    "features": {"numeric": ["distance_km", "pickup_hour"], "categorical": ["district", "vehicle_type"]},
    "model": {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor"},
    "approval": {"approvers": ["ops_lead"]},
    "evaluation": {
        "primary_metric": "mae",
        "slices": [
            {"column": "district"},
            {"column": "vehicle_type"},
            {"name": "rush_hour", "where": {"pickup_hour": {"in": [7, 8, 9, 17, 18, 19]}}},
            {
                "bins": {
                    "column": "pickup_hour",
                    "edges": [0, 6, 10, 16, 20, 24],
                    "labels": ["night", "morning", "midday", "evening", "late"],
                }
            },
        ],
        "min_slice_rows": 200,
        "guardrails": [{"metric": "mae", "max_relative_regression": 0.02}],
    },
}


def _make_config(task: str = "regression", **evaluation: Any) -> CityConfig:
    """A city config; keyword arguments replace keys of ``evaluation``."""
    raw = deep_merge(BASE_CONFIG, {"evaluation": evaluation})
    if task == "classification":
        raw = deep_merge(
            raw,
            {
                "task": "classification",
                "target": "late",
                "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
                "evaluation": {
                    "primary_metric": evaluation.get("primary_metric", "roc_auc"),
                    "guardrails": evaluation.get(
                        "guardrails", [{"metric": "roc_auc", "max_relative_regression": 0.02}]
                    ),
                },
            },
        )
    return CityConfig.model_validate(raw)


def _rides(n_districts: int = 20, rows_per_district: int = 400, seed: int = 0) -> pd.DataFrame:
    """Eval rows with slice columns only; districts are equally sized, ``d00`` .. ``dNN``."""
    rng = np.random.default_rng(seed)
    n = n_districts * rows_per_district
    return pd.DataFrame(
        {
            "district": np.repeat([f"d{i:02d}" for i in range(n_districts)], rows_per_district),
            "vehicle_type": rng.choice(["bike", "car", "van"], n),
            "pickup_hour": rng.integers(0, 24, n),
        }
    )


def _regression_predictions(
    frame: pd.DataFrame, rng: np.random.Generator, candidate_scale: np.ndarray | float = 1.0, model_noise: float = 50.0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Target = signal + shared noise (sd 100); each model = signal + its own noise (sd ``model_noise``).

    ``candidate_scale`` multiplies the candidate's errors per row (1.25 on a slice: 25% worse mae there).
    """
    n = len(frame)
    signal = 600 + 300 * rng.random(n)
    shared = rng.normal(0, 100, n)
    y = signal + shared
    champion = signal + rng.normal(0, model_noise, n)
    candidate = y - candidate_scale * (shared - rng.normal(0, model_noise, n))
    return frame.assign(eta_seconds=y), candidate, champion


def _classification_data(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Binary labels with two informative, correlated scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    frame = _rides(n_districts=6, rows_per_district=n // 6, seed=seed)
    latent = rng.normal(0, 1, len(frame))
    late = (latent + rng.normal(0, 1, len(frame)) > 0.8).astype(int)
    champion = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.7, len(frame)))))
    candidate = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.7, len(frame)))))
    return frame.assign(late=late), np.round(candidate, 3), np.round(champion, 3)


@pytest.fixture
def make_config():
    return _make_config


@pytest.fixture
def rides():
    return _rides


@pytest.fixture
def regression_predictions():
    return _regression_predictions


@pytest.fixture
def classification_data():
    return _classification_data
