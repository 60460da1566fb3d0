"""A run's files changed after the step that wrote them (the validated snapshot, the candidate model): the steps
reading them fail at once, without Airflow's retries (a retry reads the same bytes), saying which step to clear."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.config import CityConfig, load_city_config
from airflow_ml_provider.core.demo_data import make_city_data
from airflow_ml_provider.core.handoff import Evaluated, Trained, Validated
from airflow_ml_provider.core.snapshot import to_parquet_bytes
from airflow_ml_provider.core.storage import sha256_hex
from airflow_ml_provider.core.windows import Windows
from airflow_ml_provider.operators.evaluate import EvaluateModelOperator
from airflow_ml_provider.operators.register import RegisterModelOperator
from airflow_ml_provider.operators.train import TrainModelOperator

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
CONTEXT: dict[str, Any] = {"params": {}, "run_id": "manual__2026-06-01"}


def _stored(path: Path, data: bytes) -> tuple[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path), sha256_hex(data)


@pytest.fixture
def config() -> CityConfig:
    return load_city_config("berlin", CONFIGS)


@pytest.fixture
def validated(tmp_path: Path) -> Validated:
    uri, sha256 = _stored(tmp_path / "snapshot.parquet", to_parquet_bytes(make_city_data("berlin", end=END.date())))
    return Validated(
        data_uri="rides.parquet",
        snapshot_uri=uri,
        snapshot_sha256=sha256,
        windows=Windows.ending_at(END, 90, 14),
        mlflow_run_id="run",
        summary={},
    )


@pytest.fixture
def trained(tmp_path: Path) -> Trained:
    uri, sha256 = _stored(tmp_path / "model.pkl", pickle.dumps({"a": "model"}))
    return Trained(model_uri=uri, model_sha256=sha256, train_rows=1, estimator_params={}, mlflow_run_id="attempt")


def _evaluated(trained: Trained) -> Evaluated:
    return Evaluated(
        model_sha256=trained.model_sha256,
        verdict="pass",
        champion_version=None,
        report_sha256="0" * 64,
        eval_rows=1,
        summary={},
        schema_changed=False,
    )


def test_train_on_a_snapshot_changed_since_validation_fails_for_good(config: CityConfig, validated: Validated) -> None:
    Path(validated.snapshot_uri).write_bytes(b"PAR1 not the validated rows")
    task = TrainModelOperator(task_id="train", config=config, validation=validated.to_xcom())
    with pytest.raises(AirflowFailException) as failure:
        task.execute(CONTEXT)  # type: ignore[arg-type]
    message = str(failure.value)
    assert message.startswith(f"{validated.snapshot_uri}: sha256 is ")
    assert f"but validate_data recorded {validated.snapshot_sha256}: the file changed after validate_data" in message
    assert message.endswith("clear validate_data and its downstream tasks in this DAG run to write it again.")


@pytest.mark.parametrize("step", ["evaluate", "register"])
def test_a_model_changed_since_training_fails_for_good(
    step: str, config: CityConfig, validated: Validated, trained: Trained
) -> None:
    Path(trained.model_uri).write_bytes(pickle.dumps({"another": "model"}))
    inputs = {"validation": validated.to_xcom(), "training": trained.to_xcom()}
    task = (
        EvaluateModelOperator(task_id=step, config=config, **inputs)
        if step == "evaluate"
        else RegisterModelOperator(task_id=step, config=config, evaluation=_evaluated(trained).to_xcom(), **inputs)
    )
    with pytest.raises(AirflowFailException) as failure:
        task.execute(CONTEXT)  # type: ignore[arg-type]
    message = str(failure.value)
    assert message.startswith(f"{trained.model_uri}: sha256 is ")
    assert f"but train recorded {trained.model_sha256}: the file changed after train wrote it" in message
    assert "clear train and its downstream tasks in this DAG run" in message
