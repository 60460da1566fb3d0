"""Fixtures of the tests that run the provider's steps for real: the test DAG folder parsed once, and S3 over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BUCKET = "rides"


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path, test_dags_folder: Path) -> Any:
    """The test DAG folder parsed once: the shipped cities, oslo (approval times out) and corpus (bad inputs)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(test_dags_folder))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with a bucket ``rides``, and ``aws_default`` pointing at it (``endpoint_url``),
    so the amazon provider's S3Hook talks HTTP to it as it would to S3."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()
