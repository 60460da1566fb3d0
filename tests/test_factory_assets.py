"""Retrain when data lands: ``retrain_on`` becomes an Asset schedule, alone or with the cron, as the scheduler sees
it after serialization. The running-scheduler test (an upstream DAG's outlet starts the city's run) is
tests/e2e/test_fleet.py::test_upstream_asset_starts_the_citys_run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.config import ConfigError, load_city_config
from airflow_ml_provider.factory import build_retrain_dag

DAGS = Path(__file__).resolve().parents[1] / "dags"


def _scheduled(tmp_path: Path, city: str, extra: str):
    from airflow.serialization.serialized_objects import DagSerialization

    folder = tmp_path / "configs"
    shutil.copytree(DAGS / "configs", folder, dirs_exist_ok=True)
    with (folder / f"{city}.yaml").open("a") as handle:
        handle.write(extra)
    dag = build_retrain_dag(load_city_config(city, folder))
    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def test_data_uri_alone_replaces_the_cron(tmp_path: Path) -> None:
    from airflow.timetables.simple import AssetTriggeredTimetable

    dag = _scheduled(
        tmp_path, "lisbon", "schedule: null\ndata: {uri: 's3://lake/{city}/rides.parquet'}\nretrain_on: {data: true}\n"
    )
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert [a.uri for _, a in dag.timetable.asset_condition.iter_assets()] == ["s3://lake/lisbon/rides.parquet"]


def test_assets_with_the_cron(tmp_path: Path) -> None:
    from airflow.timetables.assets import AssetOrTimeSchedule

    dag = _scheduled(
        tmp_path,
        "berlin",
        "data: {uri: 's3://lake/berlin/rides/'}\n"
        "retrain_on: {data: true, assets: ['rides_export_{city}', 's3://lake/weather/'], mode: all}\n",
    )
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.summary == "0 2 * * 1"  # berlin's cron still runs
    condition = dag.timetable.asset_condition
    assert type(condition).__name__.endswith("AssetAll")
    uris = sorted(a.uri for _, a in condition.iter_assets())
    assert uris == ["rides_export_berlin", "s3://lake/berlin/rides", "s3://lake/weather"]


def test_no_retrain_on_keeps_the_cron(tmp_path: Path) -> None:
    assert _scheduled(tmp_path, "warsaw", "").timetable.summary != "Asset"


def test_templated_data_uri_cannot_be_an_asset(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    shutil.copytree(DAGS / "configs", folder)
    with (folder / "lisbon.yaml").open("a") as handle:
        handle.write("data: {uri: 's3://lake/lisbon/{{ ds }}.parquet'}\nretrain_on: {data: true}\n")
    with pytest.raises(ConfigError, match=r"retrain_on\.data: data\.uri has Airflow templates"):
        load_city_config("lisbon", folder)
