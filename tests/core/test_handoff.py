"""The step contract: every handoff survives XCom's JSON, and a result from another release fails clearly."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_ml_provider.core import handoff
from airflow_ml_provider.core.windows import Windows

END = datetime(2026, 6, 1, tzinfo=timezone.utc)
SHA = "ab" * 32

EXAMPLES = [
    handoff.Validated(
        data_uri="s3://rides/berlin/",
        snapshot_uri="/runs/berlin/manual__1/snapshot.parquet",
        snapshot_sha256=SHA,
        windows=Windows.ending_at(END, 90, 14),
        mlflow_run_id="r1",
        summary={"rows": 10, "failed": []},
    ),
    handoff.Trained(
        model_uri="/runs/berlin/manual__1/model.pkl",
        model_sha256=SHA,
        train_rows=900,
        estimator_params={"max_iter": 50},
        mlflow_run_id="r2",
    ),
    handoff.Evaluated(
        model_sha256=SHA,
        verdict="pass",
        champion_version=None,
        report_sha256="cd" * 32,
        eval_rows=100,
        summary={"mae": 1.5},
        schema_changed=False,
    ),
    handoff.Registered(
        model_name="eta_berlin",
        version="3",
        mlflow_run_id="r2",
        model_sha256=SHA,
        report_sha256="cd" * 32,
        verdict="fail",
        needs_approval=True,
        champion_version="2",
        version_url=None,
        reused=False,
    ),
    handoff.Decision(
        model_name="eta_berlin",
        version="3",
        model_sha256=SHA,
        report_sha256="cd" * 32,
        answer=("Approve",),
        decided_by="berlin_ops",
        reason="reviewed",
        decided_at="2026-06-01T10:00:00+00:00",
    ),
    handoff.Promoted(
        model_name="eta_berlin",
        champion="3",
        previous_champion="2",
        approved_by="berlin_ops",
        model_sha256=SHA,
        already_done=False,
    ),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_handoff_round_trips_through_json(value: handoff.Handoff) -> None:
    data = json.loads(json.dumps(value.to_xcom()))
    assert data[handoff.STEP_KEY] == value.STEP and data[handoff.SCHEMA_KEY] == handoff.SCHEMA_VERSION
    assert type(value).from_xcom(data) == value


def test_templates_keep_reading_flat_keys() -> None:
    """The approval's subject reads ``ti.xcom_pull(task_ids='register')['version']``."""
    assert EXAMPLES[3].to_xcom()["version"] == "3"


def test_a_result_from_before_the_typed_contract_says_to_clear_the_run() -> None:
    old = {"model_uri": "/m.pkl", "model_sha256": SHA, "train_rows": 1, "estimator_params": {}}
    with pytest.raises(
        handoff.HandoffError,
        match=r"train step's result was written by another version.*untyped.*"
        r"Clear the DAG run from validate_data",
    ):
        handoff.Trained.from_xcom(old)


def test_a_result_of_another_schema_names_both_versions() -> None:
    data = {**EXAMPLES[1].to_xcom(), handoff.SCHEMA_KEY: 99}
    with pytest.raises(
        handoff.HandoffError, match=f"handoff schema 99; this worker reads schema {handoff.SCHEMA_VERSION}"
    ):
        handoff.Trained.from_xcom(data)


def test_the_wrong_step_or_nothing_at_all_is_named() -> None:
    with pytest.raises(handoff.HandoffError, match="expected the result of the train step, got that of 'evaluate'"):
        handoff.Trained.from_xcom(EXAMPLES[2].to_xcom())
    with pytest.raises(handoff.HandoffError, match="the register step handed over NoneType"):
        handoff.Registered.from_xcom(None)


def test_a_missing_field_is_named() -> None:
    data = EXAMPLES[0].to_xcom()
    del data["snapshot_sha256"]
    with pytest.raises(handoff.HandoffError, match="lacks snapshot_sha256"):
        handoff.Validated.from_xcom(data)


def test_handoffs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        EXAMPLES[1].model_sha256 = "x"  # type: ignore[misc]
