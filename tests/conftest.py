"""Test session setup. Airflow reads its configuration once, on first import, so the environment is set here,
before any test module imports it: a throwaway AIRFLOW_HOME (SQLite), MLflow on SQLite, and a DAG folder holding
copies of the example cities with absolute paths, because ``dag.test()`` only runs DAGs of the configured folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airflow_ml_provider.tools import embedded

PROJECT = Path(__file__).resolve().parents[1]
SESSION_ROOT = Path(tempfile.mkdtemp(prefix="airflow-ml-tests-"))
TEST_DAGS = SESSION_ROOT / "dags"


def _write_test_dag_folder() -> None:
    """The shipped cities, with data and run storage under the session folder."""
    shutil.copytree(PROJECT / "dags", TEST_DAGS, ignore=shutil.ignore_patterns("__pycache__"))
    defaults_path = TEST_DAGS / "configs" / "_defaults.yaml"
    defaults = yaml.safe_load(defaults_path.read_text())
    defaults["storage"]["base_uri"] = str(SESSION_ROOT / "runs")
    defaults["data"]["uri"] = str(SESSION_ROOT / "data" / "{city}" / "rides.parquet")
    defaults_path.write_text(yaml.safe_dump(defaults, sort_keys=False))
    # A test-only city whose approval times out after about two seconds.
    (TEST_DAGS / "configs" / "oslo.yaml").write_text(
        "city: oslo\nschedule: null\napproval: {approvers: [ops_lead], timeout_hours: 0.0005}\n"
    )
    shutil.copy(TEST_DAGS / "berlin.py", TEST_DAGS / "oslo.py")
    # A test-only city that reads the file its run's conf names: the bad-input corpus runs through it. No retries:
    # a missing file is retried with backoff for minutes, which dag.test() would sit through.
    (TEST_DAGS / "configs" / "corpus.yaml").write_text(
        "city: corpus\nschedule: null\nretries: 0\ndata: {uri: \"{{ dag_run.conf['data_uri'] }}\"}\n"
        "approval: {approvers: [ops_lead]}\n"
    )
    shutil.copy(TEST_DAGS / "berlin.py", TEST_DAGS / "corpus.py")


_write_test_dag_folder()
os.environ.update(embedded.environment(SESSION_ROOT, TEST_DAGS))
os.environ["AIRFLOW_ML_CONFIG_DIR"] = str(TEST_DAGS / "configs")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def session_root() -> Path:
    return SESSION_ROOT


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB and the simple auth manager's users, once per session."""
    embedded.apply(SESSION_ROOT, TEST_DAGS)
    embedded.migrate_databases()
    return SESSION_ROOT


@pytest.fixture(scope="session")
def test_dags_folder() -> Path:
    return TEST_DAGS


@pytest.fixture(scope="module")
def mocked_s3() -> Iterator[str]:
    """moto's in-process S3 with a bucket ``rides``, reached through the aws_default connection as in production."""
    import boto3
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env, mock_aws():
        env.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3").create_bucket(Bucket="rides")
        yield "rides"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fast tests first, then those that run Airflow/MLflow for real, then the fault injection, then servers, then the
    Celery stack."""
    order = {"slow": 1, "faults": 2, "e2e": 3, "stack": 4}
    items.sort(key=lambda item: max((order[m.name] for m in item.iter_markers() if m.name in order), default=0))
