"""The real ``validate_data`` operator reading from S3 over HTTP (moto's server on 127.0.0.1) through the amazon
provider's S3Hook and an Airflow AWS connection with ``endpoint_url``, writing its snapshot back to S3 and its
reports to the DAG run's MLflow run. Bad input fails with a clear message and writes no snapshot."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_ml_provider.config import load_city_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600, method="thread")]

END = datetime(2026, 6, 1, tzinfo=timezone.utc)
BUCKET = "rides"


@pytest.fixture(scope="module")
def s3_city(s3_endpoint: str, test_dags_folder: Any) -> Any:
    """berlin's config with data and run storage on S3."""
    from airflow_ml_provider.config import CityConfig

    config = load_city_config("berlin", test_dags_folder / "configs")
    data = config.data.model_copy(update={"uri": f"s3://{BUCKET}/berlin/{{{{ ds }}}}/"})
    storage = config.storage.model_copy(update={"base_uri": f"s3://{BUCKET}/runs"})
    return CityConfig.model_validate(config.model_copy(update={"data": data, "storage": storage}).model_dump())


class RecordingTaskInstance:
    """The task instance of a context built by hand: keeps what the operator pushes to XCom."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _run_validate(config: Any, data_uri: str, run_id: str, ti: RecordingTaskInstance | None = None) -> dict[str, Any]:
    from airflow_ml_provider.operators.validate import ValidateDataOperator

    operator = ValidateDataOperator(task_id="validate_data", config=config, data_uri=data_uri)
    context = {
        "ti": ti or RecordingTaskInstance(),
        "params": {},
        "run_id": run_id,
        "logical_date": END,
        "dag": SimpleNamespace(dag_id="retrain_berlin"),
        "dag_run": SimpleNamespace(run_after=END),
    }
    return operator.execute(context)


def _put(key: str, body: bytes) -> None:
    from airflow_ml_provider.hooks.dataset import DatasetHook

    DatasetHook().write_bytes(f"s3://{BUCKET}/{key}", body)


def test_validates_a_prefix_of_files_and_writes_the_snapshot_to_s3(s3_city: Any) -> None:
    import io

    import pandas as pd

    from airflow_ml_provider.core.demo_data import make_city_data
    from airflow_ml_provider.core.snapshot import to_parquet_bytes
    from airflow_ml_provider.core.storage import verified
    from airflow_ml_provider.hooks.dataset import DatasetHook

    frame = make_city_data("berlin", end=END.date())
    half = len(frame) // 2
    _put("berlin/2026-06-01/part-0.parquet", to_parquet_bytes(frame.iloc[:half]))
    _put("berlin/2026-06-01/part-1.parquet", to_parquet_bytes(frame.iloc[half:]))

    result = _run_validate(s3_city, f"s3://{BUCKET}/berlin/2026-06-01/", "manual__s3_ok")
    sha256 = result["snapshot_sha256"]
    assert result["snapshot_uri"] == f"s3://{BUCKET}/runs/berlin/manual__s3_ok/snapshots/{sha256}.parquet"
    data = verified(DatasetHook().read_bytes(result["snapshot_uri"]), sha256, "snapshot", written_by="validate_data")
    snapshot = pd.read_parquet(io.BytesIO(data))
    assert (
        result["summary"]["success"]
        and len(snapshot) == result["summary"]["train_rows"] + result["summary"]["eval_rows"]
    )


@pytest.mark.parametrize(
    ("key", "body", "retried", "message"),
    [
        ("missing/", None, True, "s3://rides/missing/: no objects under this prefix"),
        ("zero/rides.parquet", b"", False, "s3://rides/zero/rides.parquet: is empty"),
        ("corrupt/rides.parquet", b"PAR1 not really parquet", False, "corrupt/rides.parquet: not a valid Parquet file"),
    ],
)
def test_bad_s3_input_fails_with_the_uri_and_writes_nothing(
    s3_city: Any, key: str, body: bytes | None, retried: bool, message: str
) -> None:
    """A missing object may still land, so the task raises for a retry; a broken one fails at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.hooks.dataset import DatasetError, DatasetHook

    if body is not None:
        _put(key, body)
    with pytest.raises(DatasetError if retried else AirflowFailException, match=message):
        _run_validate(s3_city, f"s3://{BUCKET}/{key}", f"manual__bad_{key.split('/')[0]}")
    assert not DatasetHook().exists(f"s3://{BUCKET}/runs/berlin/manual__bad_{key.split('/')[0]}/snapshots/")


def test_failed_expectation_names_column_and_expectation(s3_city: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.core.demo_data import make_city_data
    from airflow_ml_provider.core.snapshot import to_parquet_bytes

    _put("faulty/rides.parquet", to_parquet_bytes(make_city_data("berlin", end=END.date(), fault="null_target")))
    ti = RecordingTaskInstance()
    with pytest.raises(AirflowFailException) as caught:
        _run_validate(s3_city, f"s3://{BUCKET}/faulty/rides.parquet", "manual__s3_fault", ti)
    assert "expect_column_values_to_not_be_null(column=eta_seconds)" in str(caught.value)
    assert "Data validation failed for berlin" in str(caught.value)
    assert ti.xcom == {"failure": str(caught.value)}  # for failure notifiers
