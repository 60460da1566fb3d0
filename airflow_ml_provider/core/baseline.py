"""The naive baseline every candidate must beat, and the reference of a city's first run when there is no champion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_ml_provider.config import CityConfig


def baseline_predictions(config: CityConfig, train: pd.DataFrame, eval: pd.DataFrame) -> np.ndarray:
    """Baseline predictions for the eval rows, per ``evaluation.baseline.strategy``.

    ``mean``/``median`` of the train target (for classification the mean is the positive rate, used as a probability),
    ``majority`` predicts the majority class with probability 1, ``column`` reads a heuristic prediction column of the
    eval rows (e.g. the ETA the app shows today).
    """
    strategy = config.evaluation.baseline
    if strategy.strategy == "column":
        column = strategy.column
        if column not in eval.columns:
            raise ValueError(
                f"evaluation.baseline.column: {column!r} is not in the eval data; add the heuristic prediction column "
                "to the data or choose strategy mean/median"
            )
        predictions = eval[column].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(predictions).any():
            raise ValueError(
                f"evaluation.baseline.column: {column!r} has {int(np.isnan(predictions).sum())} missing values in "
                "the eval rows; the baseline needs a prediction for every row"
            )
        return predictions
    target = train[config.target].to_numpy(dtype=np.float64, na_value=np.nan)
    target = target[~np.isnan(target)]
    if len(target) == 0:
        raise ValueError(f"the train rows have no values in the target column {config.target!r}")
    if strategy.strategy == "mean":
        value = target.mean()
    elif strategy.strategy == "median":
        value = np.median(target)
    else:
        value = 1.0 if target.mean() > 0.5 else 0.0
    return np.full(len(eval), float(value))
