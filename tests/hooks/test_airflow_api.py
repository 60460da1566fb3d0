"""AirflowApiHook: the API server's URL from an http connection, however it is written."""

from __future__ import annotations

import json

import pytest

from airflow_ml_provider.hooks.airflow_api import AirflowApiHook


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ({"conn_type": "http", "host": "http://airflow-apiserver:8080/"}, "http://airflow-apiserver:8080"),
        ({"conn_type": "http", "host": "airflow.example.com", "schema": "https"}, "https://airflow.example.com"),
        ({"conn_type": "http", "host": "127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
    ],
)
def test_base_url(monkeypatch: pytest.MonkeyPatch, connection: dict, url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(connection))
    assert AirflowApiHook().base_url == url


def test_a_connection_without_host_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_API_NOHOST", json.dumps({"conn_type": "http", "login": "digest"}))
    with pytest.raises(ValueError, match="'api_nohost' has no host; set it to the API server's URL"):
        _ = AirflowApiHook("api_nohost").base_url
