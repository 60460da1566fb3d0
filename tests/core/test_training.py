"""The training pipeline: allowlisted estimators, one feature path for training and serving, reproducible fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from airflow_ml_provider.core.demo_data import make_city_data
from airflow_ml_provider.core.training import SEED, build_pipeline, estimator_class, feature_frame, fit, predict


@pytest.fixture(scope="module")
def rides() -> pd.DataFrame:
    """About 15k rides: above the 10k rows where HistGradientBoosting starts early stopping on a random split."""
    return make_city_data("berlin", end=pd.Timestamp("2025-06-02").date(), days=40)


@pytest.fixture
def config(make_config):
    config = make_config()
    return config.model_copy(update={"model": config.model.model_copy(update={"params": {"max_iter": 30}})})


def test_estimators_come_only_from_allowed_modules() -> None:
    assert estimator_class("sklearn.linear_model.Ridge", ["sklearn."]).__name__ == "Ridge"
    with pytest.raises(ValueError, match=r"'os\.system' is not under an allowed prefix"):
        estimator_class("os.system", ["sklearn."])
    with pytest.raises(ValueError, match=r"cannot import 'sklearn\.linear_model\.Nope'"):
        estimator_class("sklearn.linear_model.Nope", ["sklearn."])


def test_unknown_estimator_parameter_names_the_yaml_field(config) -> None:
    with pytest.raises(
        ValueError, match=r"model.params for sklearn.ensemble.HistGradientBoostingRegressor: .*max_iterz"
    ):
        build_pipeline(config, {"max_iterz": 3})


def test_estimators_are_seeded_unless_the_yaml_says_otherwise(config) -> None:
    assert build_pipeline(config, {}).named_steps["estimator"].random_state == SEED
    assert build_pipeline(config, {"random_state": 7}).named_steps["estimator"].random_state == 7
    linear = config.model_copy(
        update={"model": config.model.model_copy(update={"estimator": "sklearn.linear_model.LinearRegression"})}
    )
    assert isinstance(build_pipeline(linear, {}).named_steps["estimator"], LinearRegression)  # takes no seed


def test_the_same_data_and_config_train_the_same_model(config, rides: pd.DataFrame) -> None:
    first, second = fit(config, rides, {"max_iter": 30}), fit(config, rides, {"max_iter": 30})
    assert isinstance(first.named_steps["estimator"], HistGradientBoostingRegressor)
    assert first.named_steps["estimator"].do_early_stopping_  # the random validation split is in play
    np.testing.assert_array_equal(predict(config, first, rides), predict(config, second, rides))


def test_serving_input_has_fixed_columns_and_types_and_unseen_categories_are_ignored(config, rides) -> None:
    features = feature_frame(config, rides.head(3))
    assert list(features.columns) == [*config.features.numeric, *config.features.categorical]
    assert all(features[c].dtype == "float64" for c in config.features.numeric)
    assert all(features[c].dtype == object for c in config.features.categorical)
    model = fit(config, rides, {"max_iter": 30})
    unseen = rides.head(3).assign(district="a_new_district", pickup_hour=[7, None, 9])
    assert np.isfinite(predict(config, model, unseen)).all()
