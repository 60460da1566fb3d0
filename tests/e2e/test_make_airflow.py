"""`make airflow` on a fresh clone: `airflow-ml standalone` started the way the Makefile starts it (the virtualenv's
bin not on PATH), from a folder holding only this project's dags/. It must come up healthy with the MLflow UI, create
the pool the cities train in, write demo data, and carry a triggered city to its approval and to a champion.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_ml_provider.core import registry
from airflow_ml_provider.tools import embedded

from .servers import BIN, STARTUP_TIMEOUT, Stack, project_copy

pytestmark = pytest.mark.e2e

API_URL = f"http://localhost:{embedded.API_PORT}"
MLFLOW_URL = f"http://localhost:{embedded.MLFLOW_PORT}"
DAG_ID = "retrain_warsaw"


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def standalone() -> Iterator[Stack]:
    busy = [port for port in (embedded.API_PORT, embedded.MLFLOW_PORT) if _in_use(port)]
    if busy:
        pytest.fail(f"ports {busy} are in use (is `make airflow` running?); `make airflow` needs them")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)

    def environment(root: Path) -> dict[str, str]:
        """What `airflow-ml standalone` sets for itself, for this side's helpers (task logs, URLs); BIN off PATH."""
        home = str(root / ".airflow-ml" / "airflow")
        return {
            "PATH": path,
            "AIRFLOW_HOME": home,
            "AIRFLOW__API__BASE_URL": API_URL,
            "MLFLOW_TRACKING_URI": MLFLOW_URL,
        }

    with project_copy("standalone", environment) as stack:
        stack.start("standalone", [str(BIN / "airflow-ml"), "standalone"])
        yield stack


@pytest.mark.timeout(900, method="thread")
def test_make_airflow_serves_the_cities_and_carries_a_run_to_its_champion(standalone: Stack) -> None:
    def healthy() -> bool:
        health = standalone.http.get("/api/v2/monitor/health").json()
        return all(health[c]["status"] == "healthy" for c in ("metadatabase", "scheduler", "dag_processor"))

    standalone.wait_until(healthy, STARTUP_TIMEOUT, "Airflow standalone's health")
    standalone.wait_until(lambda: httpx.get(f"{MLFLOW_URL}/health").status_code == 200, 120, "the MLflow UI")
    standalone.wait_until(lambda: standalone.rest("GET", f"/api/v2/dags/{DAG_ID}").status_code == 200, 120, "DAGs")
    assert (standalone.root / ".airflow-ml" / "data" / "warsaw" / "rides.parquet").exists()  # demo data written
    pool = standalone.get_json("/api/v2/pools/ml_training")
    assert pool["slots"] == embedded.POOL_SLOTS

    # warsaw is manual-only: unpausing a city on a cron would also start its latest scheduled run first.
    # Unpause, then trigger: what the trigger form does for a paused DAG ("Unpause retrain_warsaw on trigger").
    standalone.rest("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    run_id = standalone.api("admin").trigger(DAG_ID, {"estimator_params": {"max_iter": 50}})
    request = standalone.wait_for_approval(DAG_ID, run_id, timeout=600)
    assert request["subject"] == "Promote eta_warsaw v1 for warsaw?"
    standalone.api("warsaw_ops").answer(DAG_ID, run_id, "Approve", "looked around")

    standalone.wait_for_run_end(DAG_ID, run_id)
    champion = standalone.mlflow().get_model_version_by_alias("eta_warsaw", registry.CHAMPION)
    assert champion.version == "1" and champion.tags[registry.DECIDED_BY_TAG] == "warsaw_ops"
