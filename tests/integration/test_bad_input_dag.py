"""Every bad input of the corpus (tests/bad_inputs.py) through a whole ``retrain_corpus`` run with ``dag.test()``:
real Airflow metadata DB, real MLflow store, S3 over HTTP from moto's server. validate_data fails with the corpus's
message, no later step runs, no snapshot is written, no model version is registered and the champion stays.

The test city ``corpus`` reads the file its run's conf names (``data.uri: "{{ dag_run.conf['data_uri'] }}"``).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import bad_inputs
import pytest
import records
from bad_inputs import CORPUS, DATA_END, BadInput

from airflow_ml_provider.config import load_city_config
from airflow_ml_provider.core import registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="thread")]

CITY = "corpus"
LATER_STEPS = ("train", "evaluate", "register", "approve", "promote")


@pytest.fixture(scope="module")
def config(test_dags_folder: Path) -> Any:
    return load_city_config(CITY, test_dags_folder / "configs")


@pytest.fixture(scope="module")
def clean_rides() -> Any:
    return bad_inputs.clean_rides()


@pytest.fixture(scope="module")
def champion(dagbag: Any, config: Any, clean_rides: Any) -> str:
    """A promoted version of eta_corpus, registered and promoted through the same hook calls register and promote
    make, so there is a champion that must not move."""
    from airflow_ml_provider.core.training import feature_frame, fit
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    model = fit(config, clean_rides, config.model.params)
    payload = pickle.dumps(model)
    sha256, report_sha256 = hashlib.sha256(payload).hexdigest(), "0" * 64
    run_id = hook.dag_run_run_id(config.model_name, f"retrain_{CITY}", "seed", tags={"city": CITY})
    version, _ = hook.register_candidate(
        model_name=config.model_name,
        run_id=run_id,
        model=model,
        input_example=feature_frame(config, clean_rides.head(5)),
        tags={"city": CITY, registry.MODEL_SHA_TAG: sha256, registry.REPORT_SHA_TAG: report_sha256},
        dag_run_id="seed",
        needs_approval=True,
    )
    registered = records.registered(
        model_name=config.model_name, version=version.version, mlflow_run_id=run_id, model_sha256=sha256,
        report_sha256=report_sha256,
    )  # fmt: skip
    decision = registry.decision_of(
        registered,
        chosen=registry.APPROVE_ANSWER,
        responded_by={"name": "ops_lead"},
        reason="seed",
        responded_at="2026-06-01T00:00:00+00:00",
        timeout_hours=1,
    )
    hook.record_decision(decision)
    hook.promote(registered, decision, approvers=config.approval.approvers)
    return version.version


@pytest.mark.parametrize("bad_input", [c for c in CORPUS if c.is_bad], ids=[c.name for c in CORPUS if c.is_bad])
def test_bad_input_fails_the_run_and_changes_nothing(
    dagbag: Any,
    s3_endpoint: str,
    config: Any,
    clean_rides: Any,
    champion: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    bad_input: BadInput,
) -> None:
    from airflow_ml_provider.core.storage import run_uri
    from airflow_ml_provider.hooks.dataset import DatasetHook
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    versions_before = [v.version for v in hook.versions(config.model_name)]
    uri = bad_inputs.write(bad_input, clean_rides, tmp_path, DatasetHook().write_bytes)

    dag_run = dagbag.dags[f"retrain_{CITY}"].test(logical_date=DATA_END, run_conf={"data_uri": uri})

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["validate_data"] == "failed"
    assert {states[step] for step in LATER_STEPS} == {"upstream_failed"}, states
    task_log = "".join(capfd.readouterr())  # dag.test() logs the tasks to the console
    for text in bad_input.texts:
        assert text in task_log, f"{text!r} is not in the task's failure"
    assert [v.version for v in hook.versions(config.model_name)] == versions_before
    assert hook.version_by_alias(config.model_name, registry.CHAMPION).version == champion
    assert hook.version_by_alias(config.model_name, registry.CHALLENGER) is None
    assert not DatasetHook().exists(run_uri(config.storage.base_uri, CITY, dag_run.run_id, "snapshots/"))
