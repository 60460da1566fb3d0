"""The training pipeline: one scikit-learn Pipeline holds preprocessing and the estimator, so the object that is
evaluated, registered and served applies exactly the feature path it was trained with."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from airflow_ml_provider.config import CityConfig

# The seed of estimators that draw random numbers (e.g. HistGradientBoosting's early-stopping split) when the YAML sets
# no random_state: the same data and config train the same model, a year later too.
SEED = 0
# The eval rows MLflow logs with a candidate as its input example; evaluate infers the candidate's schema from as many.
INPUT_EXAMPLE_ROWS = 5


def estimator_class(path: str, allowed_prefixes: list[str]) -> type[BaseEstimator]:
    """Import an estimator class from its dotted path, only from the allowed module prefixes."""
    if not any(path.startswith(prefix) for prefix in allowed_prefixes):
        raise ValueError(f"model.estimator: {path!r} is not under an allowed prefix {allowed_prefixes}")
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model.estimator: cannot import {path!r}: {exc}") from None
    if not (isinstance(cls, type) and hasattr(cls, "fit")):
        raise ValueError(f"model.estimator: {path!r} is not an estimator class")
    return cls


def estimator_params(cls: type[BaseEstimator], params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the estimator is built with: ``params``, seeded with ``SEED`` when it takes a random_state."""
    if "random_state" in inspect.signature(cls.__init__).parameters and "random_state" not in params:
        return {**params, "random_state": SEED}
    return params


def build_pipeline(config: CityConfig, params: dict[str, Any]) -> Pipeline:
    """Preprocessing (impute + scale numeric, impute + one-hot categorical) followed by the configured estimator."""
    cls = estimator_class(config.model.estimator, config.model.allowed_estimator_prefixes)
    params = estimator_params(cls, params)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ValueError(f"model.params for {config.model.estimator}: {exc}") from None
    transformers = []
    if config.features.numeric:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, list(config.features.numeric)))
    if config.features.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, list(config.features.categorical)))
    return Pipeline([("features", ColumnTransformer(transformers)), ("estimator", estimator)])


def feature_frame(config: CityConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns in a fixed order: numeric as float64 (so a missing value at serving time fits the
    signature), categorical as strings so one-hot sees one dtype."""
    features = frame[config.features.all].copy()
    for column in config.features.numeric:
        features[column] = features[column].astype("float64")
    for column in config.features.categorical:
        features[column] = features[column].astype("string").astype(object)
    return features


def training_columns(config: CityConfig) -> list[str]:
    """The columns fitting reads: the features and the target."""
    return [*config.features.all, config.target]


def fit(config: CityConfig, train: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    pipeline = build_pipeline(config, params)
    pipeline.fit(feature_frame(config, train), train[config.target])
    return pipeline


def predict(config: CityConfig, model: Any, frame: pd.DataFrame) -> Any:
    """Point predictions for regression, P(positive class) for classification."""
    features = feature_frame(config, frame)
    if config.task == "classification":
        return model.predict_proba(features)[:, 1]
    return model.predict(features)


def training_params(config: CityConfig, model: Pipeline, *, train_rows: int, windows_days: tuple[int, int]) -> dict:
    """What a training attempt logs as MLflow params: the estimator, its effective parameters and the data size."""
    return {
        "estimator": config.model.estimator,
        "train_window_days": windows_days[0],
        "eval_window_days": windows_days[1],
        "train_rows": train_rows,
        **{f"estimator.{name}": value for name, value in model.named_steps["estimator"].get_params().items()},
    }
