"""The production topology of docker-compose.yaml without Docker (tests/stack/celery_stack.py: Postgres, Redis, moto
S3, MLflow behind basic authentication, Airflow with the CeleryExecutor and a separate Celery worker that preloads the
steps' libraries as the compose stack's do). One retrain of berlin runs end to end and is approved over REST; a user
who may only read cannot move the champion. Prints each task's duration (Airflow's start to end).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from celery_stack import (
    DATA_BUCKET,
    MLFLOW_ADMIN,
    MLFLOW_AIRFLOW,
    MLFLOW_BUCKET,
    PRELOAD_LOG_LINE,
    missing_requirements,
    mlflow_user,
    running,
    wait,
    write_dag_folder,
)

# A guard, not a speed check: on a busy 2-core machine starting eight servers takes minutes.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(2000, method="signal")]

CITY = "berlin"
DAG_ID = f"retrain_{CITY}"
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
TASKS = ("validate_data", "train", "evaluate", "register", "approve", "promote")


@pytest.fixture
def stack_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="airflow-ml-stack-"))
    yield root
    if not os.environ.get("AIRFLOW_ML_KEEP_STACK"):  # set it to keep the logs for a post-mortem
        shutil.rmtree(root, ignore_errors=True)


def _seconds(ti: dict) -> float:
    start, end = (datetime.fromisoformat(ti[key].replace("Z", "+00:00")) for key in ("start_date", "end_date"))
    return (end - start).total_seconds()


def test_retrain_on_celery_postgres_redis_mlflow_s3(stack_root: Path) -> None:
    started = time.monotonic()
    if reason := missing_requirements():
        pytest.skip(reason)
    from airflow_ml_provider.core.demo_data import make_city_data
    from airflow_ml_provider.core.storage import run_uri
    from airflow_ml_provider.hooks.api_client import AirflowApi
    from airflow_ml_provider.tools import embedded

    dags = write_dag_folder(stack_root, [CITY])
    with running(stack_root, dags) as stack:
        procs, http, admin, s3, mlflow_url = stack.procs, stack.http, stack.admin, stack.s3, stack.mlflow_url
        headers = admin._headers
        # the worker's main process imports the steps' libraries before forking its pool; the scheduler never does
        print(wait("the worker's preload", lambda: [line for line in procs.log("celery-worker").splitlines()
                                                      if PRELOAD_LOG_LINE in line], 300, procs)[0])  # fmt: skip
        assert PRELOAD_LOG_LINE not in procs.log("scheduler")
        stack.put_city_data(CITY, make_city_data(CITY, end=END.date()))
        stack.unpause([DAG_ID])

        # ----- the run: trigger, approve as berlin_ops, success -----
        conf = {"reason": "stack test", "estimator_params": {"max_iter": 50}}
        run_id = admin.trigger(DAG_ID, conf=conf, logical_date=END.isoformat())
        pending = wait("the approval request", lambda: admin.pending_approvals(DAG_ID), 1200, procs)
        assert pending[0]["task_instance"]["dag_run_id"] == run_id
        approver = AirflowApi(http, "berlin_ops", embedded.password("berlin_ops"))
        approver.answer(DAG_ID, run_id, "Approve", "stack test approved")

        def finished() -> str | None:
            state = admin.dag_run(DAG_ID, run_id)["state"]
            return state if state in ("success", "failed") else None

        assert wait("the run to finish", finished, 300, procs) == "success"

        # ----- where the tasks ran: the Celery worker -----
        tis = http.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", headers=headers).json()
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        assert all(states[t] == "success" for t in TASKS), states
        for ti in tis["task_instances"]:
            assert ti["queue"] == "default" and ti["hostname"], ti
        worker_log = procs.log("celery-worker")
        ran_on_worker = [t for t in TASKS if t != "approve" and f"task_id='{t}'" in worker_log]
        # approve defers to the triggerer and resumes on the worker; every task went through Celery
        assert set(ran_on_worker) == set(TASKS) - {"approve"}, worker_log[-4000:]
        assert "task_id='approve'" in worker_log
        assert "LocalExecutor" not in procs.log("scheduler")

        # ----- MLflow: champion is the version of this run, registered by the airflow user -----
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth.client import AuthServiceClient

        from airflow_ml_provider.core import registry

        client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        with mlflow_user(MLFLOW_AIRFLOW):
            champion = client.get_model_version_by_alias(f"eta_{CITY}", registry.CHAMPION)
        assert champion.version == "1"
        assert champion.tags[registry.DECISION_TAG] == "approved"
        assert champion.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
        assert run_id in champion.tags.values()
        assert champion.user_id in (None, "", MLFLOW_AIRFLOW[0])

        # ----- a logged-in user who may only read (default_permission READ) cannot move the champion -----
        with mlflow_user(MLFLOW_ADMIN):
            AuthServiceClient(mlflow_url).create_user("viewer", "stack-test-viewer-password")
        with mlflow_user(("viewer", "stack-test-viewer-password")):
            assert client.get_model_version_by_alias(f"eta_{CITY}", registry.CHAMPION).version == "1"
            with pytest.raises(MlflowException, match=r"403|Permission denied"):
                client.set_registered_model_alias(f"eta_{CITY}", registry.CHAMPION, "1")

        # ----- S3: the run's snapshot and model, and MLflow's model artifacts -----
        def keys(bucket: str, prefix: str = "") -> set[str]:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

        run_prefix = run_uri(f"s3://{DATA_BUCKET}/runs", CITY, run_id, "")[len(f"s3://{DATA_BUCKET}/") :]
        run_keys = keys(DATA_BUCKET, run_prefix)
        # Named by their sha256: snapshots/<sha256>.parquet and models/<sha256>.pkl
        assert any(k.startswith(run_prefix + "snapshots/") and k.endswith(".parquet") for k in run_keys), run_keys
        assert any(k.startswith(run_prefix + "models/") and k.endswith(".pkl") for k in run_keys), run_keys
        mlflow_keys = keys(MLFLOW_BUCKET)
        assert any(k.endswith("/MLmodel") for k in mlflow_keys), sorted(mlflow_keys)[:50]
        assert any(k.endswith("model.pkl") or k.endswith(".pkl") for k in mlflow_keys), sorted(mlflow_keys)[:50]
        print("task seconds on the Celery worker: " + ", ".join(
            f"{ti['task_id']} {_seconds(ti):.1f}" for ti in tis["task_instances"] if ti["task_id"] != "approve"
        ))  # fmt: skip
    print(f"stack test wall time: {time.monotonic() - started:.1f} s (logs were in {stack_root / 'logs'})")
