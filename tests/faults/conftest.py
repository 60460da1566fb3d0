"""Fixtures of the fault-injection suite: the stack every scenario shares (see harness.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest
from e2e.servers import STARTUP_TIMEOUT, Stack, free_port, running_stack

from .harness import (
    BUCKET,
    CITIES,
    FAULT_ARTIFACTS,
    OWN_MLFLOW_SERVER,
    PRELOAD,
    Faults,
    MotoS3,
    city_data,
    closed_port,
    write_fault_dags,
)  # fmt: skip


def start_own_mlflow(stack: Stack, url: str) -> None:
    """A second MLflow server like the stack's (own SQLite store and artifacts), for the cities in OWN_MLFLOW."""
    shared = next(server for server in stack.servers if server.name == "mlflow")
    args = list(shared.args)
    for flag, value in (
        ("--backend-store-uri", f"sqlite:///{stack.root / 'mlflow-faults.db'}"),
        ("--default-artifact-root", str(stack.root / "mlartifacts-faults")),
        ("--port", url.rsplit(":", 1)[1]),
    ):
        args[args.index(flag) + 1] = value
    stack.start(OWN_MLFLOW_SERVER, args)
    with httpx.Client(base_url=url, timeout=10) as http:
        stack.wait_until(lambda: http.get("/health").status_code == 200, STARTUP_TIMEOUT, "the second MLflow server")


@pytest.fixture(scope="package")
def faults() -> Iterator[Faults]:
    s3 = MotoS3()
    s3.start()
    s3.client().create_bucket(Bucket=BUCKET)
    s3.client().put_object(Bucket=BUCKET, Key="fault_s3/rides.parquet", Body=city_data("fault_s3"))
    aws = {
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3.endpoint, "region_name": "us-east-1"},
    }  # fmt: skip
    own_mlflow_url = f"http://127.0.0.1:{free_port()}"
    extra_env = {
        "AIRFLOW_CONN_MOTO_S3": json.dumps(aws),
        "AIRFLOW_CONN_MLFLOW_FAULTS": json.dumps({"conn_type": "mlflow", "host": own_mlflow_url}),
        "AIRFLOW_CONN_SMTP_CLOSED": json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": closed_port(), "extra": {"disable_ssl": True}}
        ),
        # A try rides out a few seconds of outage (1 + 2 + 4 s of back-off), then fails and Airflow retries it.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "GX_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",  # six cities' tasks share two cores: no thread pool per task on top
        "AIRFLOW__CORE__PARALLELISM": "6",
    }
    dag_ids = [Faults.dag(city) for city in CITIES]
    scheduler = (sys.executable, "-c", PRELOAD)
    try:
        with running_stack(write_fault_dags, dag_ids, extra_env, scheduler, FAULT_ARTIFACTS) as stack:
            start_own_mlflow(stack, own_mlflow_url)
            yield Faults(stack, s3, stack.dags / "configs", own_mlflow_url)
    finally:
        s3.stop()
