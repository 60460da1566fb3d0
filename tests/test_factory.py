"""The DAG factory: structure, params, schedules, isolation of a bad city, and cheap parsing."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_ml_provider.config import load_city_config
from airflow_ml_provider.factory import RETRAIN_TASK_IDS, build_retrain_dag, cron_schedule

PROJECT = Path(__file__).resolve().parents[1]
DAGS = PROJECT / "dags"


@pytest.fixture(autouse=True)
def configs_next_to_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaders read configs/ beside them unless AIRFLOW_ML_CONFIG_DIR says otherwise (the session sets it)."""
    monkeypatch.delenv("AIRFLOW_ML_CONFIG_DIR", raising=False)


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AIRFLOW_ML_CONFIG_DIR", raising=False)
        return DagBag(str(DAGS))


def test_one_retrain_and_rollback_dag_per_city(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    cities = sorted(p.stem for p in (DAGS / "configs").glob("[!_]*.yaml"))
    assert sorted(dagbag.dag_ids) == sorted([f"retrain_{c}" for c in cities] + [f"rollback_{c}" for c in cities])


def test_retrain_dag_structure(dagbag: DagBag) -> None:
    dag = dagbag.dags["retrain_berlin"]
    assert [t.task_id for t in dag.topological_sort()] == list(RETRAIN_TASK_IDS)
    for upstream, downstream in itertools.pairwise(RETRAIN_TASK_IDS):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.tags) == {"retraining", "berlin", "marketplace-ml"}
    assert "validate_data" in dag.doc_md and "Required Actions" in dag.doc_md
    train = dag.get_task("train")
    assert train.retries == 2 and train.retry_exponential_backoff
    assert train.pool == "ml_training"
    assert dag.get_task("approve").retries == 0


def test_schedules_come_from_yaml(dagbag: DagBag) -> None:
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert dagbag.dags["retrain_berlin"].timetable.expression == "0 2 * * 1"
    assert dagbag.dags["retrain_lisbon"].timetable.expression == "30 2 * * 1"
    assert isinstance(dagbag.dags["retrain_warsaw"].timetable, NullTimetable)  # schedule: null = manual only
    assert isinstance(dagbag.dags["rollback_berlin"].timetable, NullTimetable)


def test_any_logical_date_gets_tasks_and_the_schedule_does_not_backfill(dagbag: DagBag) -> None:
    """No start_date (Airflow would create no task instances for a run before it: a silent success); the first
    scheduled run is the most recent cron time and the next one follows the cron, as the scheduler computes it."""
    from datetime import datetime, timezone

    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    for dag in (dagbag.dags["retrain_berlin"], dagbag.dags["rollback_berlin"]):
        assert dag.start_date is None and dag.catchup is False
        assert all(task.start_date is None for task in dag.tasks)
    timetable = decode_timetable(encode_timetable(dagbag.dags["retrain_berlin"].timetable))
    no_catchup = TimeRestriction(earliest=None, latest=None, catchup=False)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=no_catchup)
    assert first is not None
    now = datetime.now(timezone.utc)
    assert first.run_after <= now and (now - first.run_after).days < 7  # berlin: Mondays 02:00, the latest one
    assert (first.run_after.weekday(), first.run_after.hour, first.run_after.minute) == (0, 2, 0)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval, restriction=no_catchup)
    assert second is not None and (second.run_after - first.run_after).days == 7


def test_trigger_form_params_are_typed_with_yaml_defaults(dagbag: DagBag) -> None:
    params = dagbag.dags["retrain_warsaw"].params
    assert params["train_window_days"] == 60  # warsaw.yaml overrides the default 90
    assert params["eval_window_days"] == 14
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["train_window_days"]["type"] == "integer"
    assert schema["estimator_params"]["type"] == "object"
    assert schema["guardrail_tolerance"]["type"] == ["null", "number"]
    assert schema["dry_run"]["type"] == "boolean"
    assert schema["reason"]["type"] == ["null", "string"]  # optional in the form: scheduled runs have no reason
    assert all(schema[name].get("title") for name in schema)


def test_bad_param_is_rejected_before_any_task(dagbag: DagBag) -> None:
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dict(dagbag.dags["retrain_berlin"].params.items()))
    with pytest.raises(ParamValidationError, match="train_window_days: 'ninety' is not of type 'integer'"):
        params.update({"train_window_days": "ninety"})


def test_approval_gate_is_airflows_approval_operator(dagbag: DagBag) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    approve = dagbag.dags["retrain_berlin"].get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"]
    assert approve.response_timeout.total_seconds() == 72 * 3600
    assert approve.assigned_users == [
        {"id": "berlin_ops", "name": "berlin_ops"},
        {"id": "ops_lead", "name": "ops_lead"},
    ]
    assert approve.subject == "Promote eta_berlin for berlin?"  # the version is named once register has run
    warsaw = dagbag.dags["retrain_warsaw"].get_task("approve")
    assert warsaw.response_timeout.total_seconds() == 24 * 3600


def test_start_spread_shifts_minute_stably(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    shutil.copytree(DAGS / "configs", folder)
    with (folder / "lisbon.yaml").open("a") as handle:
        handle.write("resources: {start_spread_minutes: 20}\n")
    config = load_city_config("lisbon", folder)
    schedule = cron_schedule(config)
    minute, rest = schedule.split(maxsplit=1)
    assert rest == "2 * * 1" and 30 <= int(minute) < 50
    assert cron_schedule(config) == schedule


def test_cpu_and_memory_become_a_pod_override_for_the_heavy_steps(tmp_path: Path) -> None:
    """KubernetesExecutor pod requests and the pool for train and evaluate; the light steps keep the defaults."""
    from airflow.serialization.serialized_objects import DagSerialization

    folder = tmp_path / "configs"
    shutil.copytree(DAGS / "configs", folder)
    with (folder / "lisbon.yaml").open("a") as handle:
        handle.write("resources: {cpu: '2', memory: 4Gi, pool_slots: 2}\n")
    dag = build_retrain_dag(load_city_config("lisbon", folder))
    # What the scheduler and executor see: the DAG after the DAG processor serialized it.
    scheduled = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    for task_id in ("train", "evaluate"):
        task = scheduled.get_task(task_id)
        (container,) = task.executor_config["pod_override"].spec.containers
        assert container.name == "base" and container.resources.requests == {"cpu": "2", "memory": "4Gi"}
        assert (task.pool, task.pool_slots) == ("ml_training", 2)
    for task_id in ("validate_data", "register", "promote"):
        assert not scheduled.get_task(task_id).executor_config
        assert scheduled.get_task(task_id).pool == "default_pool"


def test_bad_city_is_an_import_error_of_its_own_file_only(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    shutil.copytree(DAGS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    berlin = folder / "configs" / "berlin.yaml"
    berlin.write_text(
        berlin.read_text() + "evaluation:\n  guardrails:\n    - {metric: mae, max_relative_regression: -0.5}\n"
    )
    bag = DagBag(str(folder))
    assert len(bag.import_errors) == 1 and next(iter(bag.import_errors)).endswith("berlin.py")
    (error,) = bag.import_errors.values()
    assert "berlin.yaml: evaluation.guardrails[0].max_relative_regression: must be >= 0, got -0.5" in error
    assert sorted(bag.dag_ids) == ["retrain_lisbon", "retrain_warsaw", "rollback_lisbon", "rollback_warsaw"]


def test_parsing_imports_no_heavy_libraries() -> None:
    """In a fresh interpreter, as the DAG processor would: no pandas, numpy, sklearn, GE or MLflow."""
    code = textwrap.dedent(
        f"""
        import sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(DAGS)!r})
        assert not bag.import_errors, bag.import_errors
        assert len(bag.dag_ids) == 6
        heavy = sorted(m for m in ("pandas", "numpy", "sklearn", "great_expectations", "mlflow", "scipy")
                       if m in sys.modules)
        print("HEAVY=" + ",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY=\n" in result.stdout


def test_task_run_builds_only_its_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    from airflow_ml_provider.factory import city_dags

    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "rollback_lisbon")
    assert list(city_dags(str(DAGS / "lisbon.py"))) == ["rollback_lisbon"]
