from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.core.demo_data import (
    FAULT_DAYS,
    FAULTS,
    SLICE_REGRESSION_CLEAN_DAYS,
    VEHICLES,
    WEATHER,
    city_districts,
    make_city_data,
    write_city_data,
)

END = date(2025, 6, 2)
COLUMNS = [
    "ride_id",
    "requested_at",
    "district",
    "pickup_hour",
    "weather",
    "vehicle_type",
    "distance_km",
    "traffic_index",
    "eta_seconds",
]


@pytest.fixture(scope="module")
def berlin() -> pd.DataFrame:
    return make_city_data("berlin", end=END)


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def test_shape_columns_and_ranges(berlin: pd.DataFrame) -> None:
    assert list(berlin.columns) == COLUMNS
    assert 300 * 180 <= len(berlin) <= 600 * 180
    assert str(berlin["requested_at"].dt.tz) == "UTC"
    assert berlin["requested_at"].min() >= _utc(END - timedelta(days=180))
    assert berlin["requested_at"].max() < _utc(END)
    assert berlin["requested_at"].is_monotonic_increasing
    assert berlin["ride_id"].is_unique
    assert (berlin["pickup_hour"] == berlin["requested_at"].dt.hour).all()
    assert set(berlin["district"]) == set(city_districts("berlin"))
    assert "tegel_airport" in set(berlin["district"])
    assert set(berlin["weather"]) <= set(WEATHER)
    assert set(berlin["vehicle_type"]) == set(VEHICLES)
    assert (berlin["distance_km"] > 0).all()
    assert berlin["traffic_index"].between(0, 1).all()
    # The default expectations in _defaults.yaml must hold for clean data.
    assert berlin["eta_seconds"].between(30, 14400).all()
    assert berlin.notna().all().all()


def test_rush_hours_have_more_rides_and_traffic(berlin: pd.DataFrame) -> None:
    by_hour = berlin.groupby("pickup_hour")
    assert by_hour.size()[8] > 3 * by_hour.size()[3]
    assert by_hour["traffic_index"].mean()[8] > by_hour["traffic_index"].mean()[3] + 0.3


def test_eta_depends_on_distance_traffic_and_district(berlin: pd.DataFrame) -> None:
    cars = berlin[berlin["vehicle_type"] == "car"]
    assert np.corrcoef(cars["distance_km"], cars["eta_seconds"])[0, 1] > 0.7
    short = cars[cars["distance_km"].between(3, 5)]
    assert (
        short.loc[short["traffic_index"] > 0.7, "eta_seconds"].median()
        > short.loc[short["traffic_index"] < 0.3, "eta_seconds"].median()
    )
    by_district = berlin.groupby("district")["distance_km"].median()
    assert by_district.idxmax() == "tegel_airport"


def test_same_city_is_reproducible_and_seed_or_city_change_it(berlin: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(make_city_data("berlin", end=END), berlin)
    other_seed = make_city_data("berlin", end=END, seed=7)
    assert not other_seed["eta_seconds"].head(100).equals(berlin["eta_seconds"].head(100))
    lisbon = make_city_data("lisbon", end=END, days=30)
    assert set(lisbon["district"]).isdisjoint(set(berlin["district"]))


@pytest.mark.parametrize("city", ["lisbon", "warsaw", "some_new_city"])
def test_every_city_has_8_to_12_districts_with_an_airport(city: str) -> None:
    districts = city_districts(city)
    assert 8 <= len(districts) <= 12
    assert any("airport" in d for d in districts)


def test_days_controls_the_span() -> None:
    frame = make_city_data("warsaw", end=END, days=10)
    assert frame["requested_at"].dt.date.nunique() == 10
    assert 300 * 10 <= len(frame) <= 700 * 10


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_only_touch_the_most_recent_days(fault: str, berlin: pd.DataFrame) -> None:
    broken = make_city_data("berlin", end=END, fault=fault)
    recent = _utc(END - timedelta(days=FAULT_DAYS))
    old_broken = broken[broken["requested_at"] < recent].reset_index(drop=True)
    pd.testing.assert_frame_equal(old_broken, berlin[berlin["requested_at"] < recent].reset_index(drop=True))
    new = broken[broken["requested_at"] >= recent]
    problem = {
        "null_target": new["eta_seconds"].isna().sum(),
        "negative_distance": (new["distance_km"] < 0).sum(),
        "duplicate_rows": new.duplicated().sum(),
        "traffic_in_percent": (new["traffic_index"] > 1).sum(),
    }[fault]
    assert problem > 10


def test_unknown_fault_or_district_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault 'typo'"):
        make_city_data("berlin", end=END, fault="typo")
    with pytest.raises(ValueError, match="'atlantis' is not a district of berlin"):
        make_city_data("berlin", end=END, slice_regression="atlantis")


def test_slice_regression_corrupts_only_that_district_before_the_eval_window(berlin: pd.DataFrame) -> None:
    corrupted = make_city_data("berlin", end=END, slice_regression="tegel_airport")
    changed = corrupted["eta_seconds"] != berlin["eta_seconds"]
    cutoff = _utc(END - timedelta(days=SLICE_REGRESSION_CLEAN_DAYS))
    assert not changed[berlin["district"] != "tegel_airport"].any()
    assert not changed[berlin["requested_at"] >= cutoff].any()
    hit = (berlin["district"] == "tegel_airport") & (berlin["requested_at"] < cutoff)
    ratio = (corrupted.loc[hit, "eta_seconds"] / berlin.loc[hit, "eta_seconds"]).median()
    assert 1.05 < ratio < 1.2  # SLICE_REGRESSION_FACTOR, with noise
    assert corrupted["eta_seconds"].max() <= 14400  # still passes the default expectations


@pytest.mark.parametrize("name", ["rides.parquet", "nested/rides.csv"])
def test_write_city_data_round_trips(name: str, tmp_path) -> None:
    frame = make_city_data("lisbon", end=END, days=3)
    path = write_city_data(frame, tmp_path / name)
    back = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path, parse_dates=["requested_at"])
    assert len(back) == len(frame)
    assert back["requested_at"].iloc[0] == frame["requested_at"].iloc[0]
    assert back["eta_seconds"].tolist() == frame["eta_seconds"].tolist()


def test_write_city_data_points_s3_users_to_the_hook() -> None:
    with pytest.raises(ValueError, match="DatasetHook"):
        write_city_data(pd.DataFrame(), "s3://bucket/rides.parquet")
