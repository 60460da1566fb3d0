"""The fleet page's app inside Airflow's real API app: behind Airflow's login, rows from the real metadata DB and
MLflow store. The browser flow (approve two cities in one action) is tests/e2e/test_fleet.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(airflow_db: Path) -> Any:
    """Airflow's API app with the fleet app mounted before its catch-all UI route, as the plugin manager does it."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient
    from starlette.routing import Mount

    from airflow_ml_provider.plugins.fleet import URL_PREFIX, FleetPlugin, app

    root = create_app(apps="core")
    if not any(getattr(route, "path", None) == URL_PREFIX for route in root.router.routes):
        root.router.routes.insert(0, Mount(URL_PREFIX, app=app))
    assert FleetPlugin.fastapi_apps[0]["app"] is app
    with TestClient(root) as client:
        yield client


def _token(http: Any, user: str, password: str) -> dict[str, str]:
    response = http.post("/auth/token", json={"username": user, "password": password})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_needs_airflow_login(http: Any) -> None:
    assert http.get("/fleet/api/rows").status_code == 401
    assert http.get("/fleet/").status_code == 401


def test_one_row_per_configured_city(http: Any) -> None:
    headers = _token(http, "berlin_ops", "berlin_ops")
    page = http.get("/fleet/", headers=headers)
    assert page.status_code == 200 and "<h1>Model fleet</h1>" in page.text
    body = http.get("/fleet/api/rows", headers=headers).json()
    assert body["user"] == "berlin_ops"
    cities = {row["city"]: row for row in body["rows"]}
    assert {"berlin", "lisbon", "warsaw"} <= set(cities)
    assert "berlin_ops" in cities["berlin"]["approvers"] and cities["berlin"]["dag_id"] == "retrain_berlin"
    only_lisbon = http.get("/fleet/api/rows", params={"owner": cities["lisbon"]["owner"]}, headers=headers).json()
    assert "lisbon" in {row["city"] for row in only_lisbon["rows"]}
    assert http.get("/fleet/api/rows", params={"needs_me": True}, headers=headers).json()["rows"] == []


def test_is_a_valid_airflow_plugin() -> None:
    from airflow.plugins_manager import is_valid_plugin

    from airflow_ml_provider.plugins.fleet import FleetPlugin

    assert is_valid_plugin(FleetPlugin)
    assert FleetPlugin.external_views[0]["href"] == "/fleet/"
