"""Whole city DAGs with ``dag.test()``: real Airflow metadata DB, real MLflow store, real Great Expectations, and
approvals answered through Airflow's own REST route by named users (or by the scheduler's timeout sweep).

``dag.test()`` waits for ever on an unanswered approval, so every test here has a hard timeout.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from approvals import Approver, answer_as

from airflow_ml_provider.core import ledger, registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="thread")]

END = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module", autouse=True)
def demo_data(airflow_db: Path) -> None:
    """berlin's and oslo's demo rides up to END, where their runs' data windows end."""
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    for city in ("berlin", "oslo"):
        write_city_data(make_city_data(city, end=END.date()), airflow_db / "data" / city / "rides.parquet")


@pytest.fixture(scope="module")
def api_app(dagbag: Any) -> Any:
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


@pytest.fixture(scope="module")
def mlflow_hook(dagbag: Any) -> Any:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook()


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def ledger_events(city: str) -> list[Any]:
    """The city's promotion ledger as the DAG runs wrote it (beside its runs under storage.base_uri)."""
    from airflow_ml_provider.config import load_city_config
    from airflow_ml_provider.hooks.ledger import city_ledger

    return city_ledger(load_city_config(city)).events()


def test_approve_promotes_and_records_who_when_why(dagbag: Any, api_app: Any, mlflow_hook: Any) -> None:
    refused: list[int] = []

    def analyst_then_berlin_ops(http: Any, request: dict[str, Any]) -> None:
        from airflow_ml_provider.hooks.api_client import AirflowApi, AirflowApiError

        ti = request["task_instance"]
        try:
            AirflowApi(http, "analyst", "analyst").answer(ti["dag_id"], ti["dag_run_id"], "Approve", "not mine")
        except AirflowApiError as exc:
            refused.append(exc.status_code)
        answer_as("berlin_ops", "Approve", "report reviewed")(http, request)

    conf = {"train_window_days": 60, "estimator_params": {"max_iter": 50}, "reason": "weekly retrain test"}
    with Approver(api_app, "retrain_berlin", analyst_then_berlin_ops) as approver:
        dag_run = dagbag.dags["retrain_berlin"].test(logical_date=END, run_conf=conf)
    assert approver.error is None, approver.error
    assert refused == [403], "a user who is not an approver must be refused"
    assert str(dag_run.state) == "success", states(dag_run)
    assert set(states(dag_run).values()) == {"success"}

    request = approver.request
    assert request["subject"] == "Promote eta_berlin v1 for berlin?"
    assert "| slice" in request["body"].lower() or "slice" in request["body"].lower()
    assert {u["name"] for u in request["assigned_users"]} == {"berlin_ops", "ops_lead"}

    champion = mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION)
    assert champion is not None and champion.version == "1"
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHALLENGER) is None
    tags = champion.tags
    assert tags[registry.DECISION_TAG] == "approved"
    assert tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert tags[registry.DECISION_REASON_TAG] == "report reviewed"
    assert tags[registry.DECIDED_AT_TAG].startswith(str(datetime.now(timezone.utc).year))
    assert tags[registry.TAG_PREFIX + "run_reason"] == "weekly retrain test"  # the trigger form reached the tasks
    assert len(tags[registry.TAG_PREFIX + "snapshot_sha256"]) == 64
    assert len(tags[registry.TAG_PREFIX + "config_sha256"]) == 64
    assert tags[registry.EVALUATED_AGAINST_TAG] == "none"
    # 60 training days (param) of ~400 rides a day, not the YAML's 90
    assert int(tags[registry.TAG_PREFIX + "train_rows"]) < 61 * 700
    assert registry.CODE_COMMIT_TAG not in tags  # the test DAG folder is not a git checkout

    # The training attempt's MLflow run says what the model was trained with (trigger values, effective estimator
    # parameters); the DAG run's run above it keeps the resolved config and the trigger form's values.
    run = mlflow_hook.client.get_run(champion.run_id)
    assert run.data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert run.data.params["estimator.max_iter"] == "50"  # the trigger form's override of the YAML's 200
    assert run.data.params["estimator.random_state"] == "0"  # seeded: a retrain gives the same model
    assert run.data.params["train_window_days"] == "60"
    dag_run_mlflow_run = run.data.tags["mlflow.parentRunId"]
    artifacts = {a.path for a in mlflow_hook.client.list_artifacts(dag_run_mlflow_run, "config")}
    assert artifacts == {"config/resolved_config.yaml", "config/run_settings.json"}

    # The promotion is in berlin's ledger: who, when, why, champion before -> after, the bits, the DAG run.
    [event] = ledger_events("berlin")
    assert (event.sequence, event.kind, event.version, event.from_version, event.to_version) == (
        1,
        "promote",
        "1",
        None,
        "1",
    )
    assert (event.who, event.why, event.model_name) == ("berlin_ops", "report reviewed", "eta_berlin")
    assert (event.report_sha256, event.model_sha256) == (tags[registry.REPORT_SHA_TAG], tags[registry.MODEL_SHA_TAG])
    assert (event.dag_id, event.dag_run_id) == ("retrain_berlin", dag_run.run_id)
    assert dag_run.start_date <= event.at_datetime <= datetime.now(timezone.utc)
    assert event.previous_sha256 == ledger.GENESIS


def test_reject_leaves_champion_and_tags_version(dagbag: Any, api_app: Any, mlflow_hook: Any) -> None:
    with Approver(api_app, "retrain_berlin", answer_as("berlin_ops", "Reject", "numbers look off")) as approver:
        dag_run = dagbag.dags["retrain_berlin"].test(logical_date=END - timedelta(days=1))
    assert approver.error is None, approver.error
    task_states = states(dag_run)
    assert task_states["approve"] == "success" and task_states["promote"] == "skipped"
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION).version == "1"
    rejected = mlflow_hook.get_version("eta_berlin", "2")
    assert rejected.tags[registry.DECISION_TAG] == "rejected"
    assert rejected.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert rejected.tags[registry.EVALUATED_AGAINST_TAG] == "1"
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHALLENGER) is None


def test_timeout_is_a_rejection_by_the_schedulers_sweep(dagbag: Any, api_app: Any, mlflow_hook: Any) -> None:
    """oslo's approval times out after about a second; Airflow's own sweep applies the default answer."""

    def let_it_time_out(http: Any, request: dict[str, Any]) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.utils.session import create_session

        time.sleep(3)
        with create_session() as session:
            SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts(session=session)

    with Approver(api_app, "retrain_oslo", let_it_time_out) as approver:
        dag_run = dagbag.dags["retrain_oslo"].test(logical_date=END)
    assert approver.error is None, approver.error
    assert states(dag_run)["promote"] == "skipped"
    assert mlflow_hook.version_by_alias("eta_oslo", registry.CHAMPION) is None
    version = mlflow_hook.get_version("eta_oslo", "1")
    assert version.tags[registry.DECISION_TAG] == "rejected"
    assert version.tags[registry.DECIDED_BY_TAG] == "timeout"
    [event] = ledger_events("oslo")
    assert (event.kind, event.version, event.who, event.from_version, event.to_version) == (
        "timeout",
        "1",
        "timeout",
        None,
        None,
    )
    assert event.dag_run_id == dag_run.run_id


def test_dry_run_registers_nothing(dagbag: Any, mlflow_hook: Any) -> None:
    dag_run = dagbag.dags["retrain_berlin"].test(logical_date=END - timedelta(days=2), run_conf={"dry_run": True})
    task_states = states(dag_run)
    assert task_states["evaluate"] == "success"
    assert task_states["register"] == task_states["approve"] == task_states["promote"] == "skipped"
    assert mlflow_hook.version_of_dag_run("eta_berlin", dag_run.run_id) is None


def test_clear_and_rerun_after_the_data_changed_promotes_exactly_the_new_bits(
    dagbag: Any, api_app: Any, mlflow_hook: Any, airflow_db: Path
) -> None:
    """One DAG run, run twice: ``dag.test`` with the same logical date and ``run_after`` replaces the run under the
    same run id, as clearing it from validate_data with downstream does. The first pass registers v3 and leaves it
    waiting (approve and promote marked success); then the source data changes upstream and the run goes again."""
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data
    from airflow_ml_provider.core.storage import sha256_hex
    from airflow_ml_provider.hooks.dataset import DatasetHook

    logical_date, run_after = END - timedelta(days=3), END - timedelta(days=3) + timedelta(hours=1)
    dag = dagbag.dags["retrain_berlin"]
    conf = {"dry_run": False, "reason": "upstream fix"}  # in one process dag.test() keeps the last run's conf
    first = dag.test(
        logical_date=logical_date, run_after=run_after, run_conf=conf, mark_success_pattern="^(approve|promote)$"
    )
    assert states(first)["register"] == "success", states(first)
    [v3] = mlflow_hook.versions_of_dag_run("eta_berlin", first.run_id)
    assert v3.version == "3"

    rides = make_city_data("berlin", end=END.date())
    rides["eta_seconds"] = rides["eta_seconds"] * 1.2  # the upstream fix: ETAs were under-reported by a sixth
    write_city_data(rides, airflow_db / "data" / "berlin" / "rides.parquet")
    with Approver(api_app, "retrain_berlin", answer_as("berlin_ops", "Approve", "fixed ETAs reviewed")) as approver:
        second = dag.test(logical_date=logical_date, run_after=run_after, run_conf=conf)
    assert approver.error is None, approver.error
    assert second.run_id == first.run_id
    assert str(second.state) == "success", states(second)
    assert approver.request["subject"] == "Promote eta_berlin v4 for berlin?"

    # A new version for the new bits; the pending one of the same run is superseded and no challenger any more.
    v4 = mlflow_hook.get_version("eta_berlin", "4")
    assert [v.version for v in mlflow_hook.versions_of_dag_run("eta_berlin", first.run_id)] == ["4", "3"]
    old = mlflow_hook.get_version("eta_berlin", "3").tags
    assert (old[registry.DECISION_TAG], old[registry.SUPERSEDED_BY_TAG]) == (registry.SUPERSEDED, "4")
    assert old[registry.MODEL_SHA_TAG] != v4.tags[registry.MODEL_SHA_TAG]
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHALLENGER) is None

    # The bits promoted are the bits train wrote and evaluate scored, approved with the report they were judged by.
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION).version == "4"
    assert mlflow_hook.version_by_alias("eta_berlin", registry.PREVIOUS_CHAMPION).version == "1"
    ti = {t.task_id: t for t in second.get_task_instances()}
    trained, promoted = ti["train"].xcom_pull(task_ids="train"), ti["promote"].xcom_pull(task_ids="promote")
    model_file = DatasetHook().read_bytes(trained["model_uri"])
    assert sha256_hex(model_file) == trained["model_sha256"] == v4.tags[registry.MODEL_SHA_TAG]
    assert promoted["model_sha256"] == trained["model_sha256"] and promoted["champion"] == "4"
    assert v4.tags[registry.MODEL_ARTIFACT_SHA_TAG] == mlflow_hook.artifact_sha256("eta_berlin", "4")
    assert (v4.tags[registry.DECISION_TAG], v4.tags[registry.DECIDED_BY_TAG]) == ("approved", "berlin_ops")
    report = mlflow_hook.client.download_artifacts(v4.run_id, "evaluation/report.json")
    assert sha256_hex(Path(report).read_bytes()) == v4.tags[registry.REPORT_SHA_TAG]
    assert "slice" in approver.request["body"].lower()


def test_rollback_dag_needs_a_reason_refuses_rejected_versions_and_restores_with_audit(
    dagbag: Any, mlflow_hook: Any
) -> None:
    """After the tests above berlin has v1 (approved), v2 (rejected), v3 (superseded) and v4 (champion)."""
    from airflow.sdk.exceptions import ParamValidationError

    rollback = dagbag.dags["rollback_berlin"]
    with pytest.raises(ParamValidationError, match="reason"):
        rollback.test(run_conf={"to_version": "2"})

    # Every param given: in one process dag.test() leaves a run's conf in the DAG's Param objects for the next run.
    for version, force in (("2", False), ("2", True), ("3", True)):
        refused = rollback.test(run_conf={"to_version": version, "reason": "try it", "force": force})
        assert states(refused) == {"rollback": "failed"}
        assert mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION).version == "4"

    back = rollback.test(
        run_conf={"to_version": "previous_champion", "reason": "incident 42: v4 times out", "force": False}
    )
    assert states(back) == {"rollback": "success"}
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION).version == "1"
    assert mlflow_hook.version_by_alias("eta_berlin", registry.PREVIOUS_CHAMPION).version == "4"
    restored = mlflow_hook.get_version("eta_berlin", "1")
    assert restored.tags[registry.ROLLBACK_REASON_TAG] == "incident 42: v4 times out"
    assert restored.tags[registry.ROLLBACK_FROM_TAG] == "4"
    assert restored.tags[registry.PROMOTED_BY_TAG] == back.triggering_user_name  # who triggered the rollback

    # Forward again is a promotion in disguise: the test user is not one of berlin's approvers.
    forward = rollback.test(run_conf={"to_version": "4", "reason": "incident 42 resolved", "force": False})
    assert states(forward) == {"rollback": "failed"}
    assert mlflow_hook.version_by_alias("eta_berlin", registry.CHAMPION).version == "1"


def test_the_ledger_tells_berlins_story_and_history_verifies_it(
    mlflow_hook: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the runs above: v1 promoted, v2 rejected, v4 promoted over v1 (v3 was superseded, never decided), then
    rolled back to v1. One event per decision, chained, in the order they happened; the refused rollbacks left none."""
    from airflow_ml_provider.tools.cli import main

    events = ledger_events("berlin")
    assert [(e.kind, e.version, e.from_version, e.to_version, e.who) for e in events] == [
        ("promote", "1", None, "1", "berlin_ops"),
        ("reject", "2", "1", "1", "berlin_ops"),
        ("promote", "4", "1", "4", "berlin_ops"),
        ("rollback", "1", "4", "1", mlflow_hook.get_version("eta_berlin", "1").tags[registry.PROMOTED_BY_TAG]),
    ]
    assert [e.why for e in events] == ["report reviewed", "numbers look off", "fixed ETAs reviewed",
                                       "incident 42: v4 times out"]  # fmt: skip
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    v4 = mlflow_hook.get_version("eta_berlin", "4").tags
    assert (events[2].model_sha256, events[2].report_sha256) == (
        v4[registry.MODEL_SHA_TAG],
        v4[registry.REPORT_SHA_TAG],
    )
    assert all(e.dag_id in ("retrain_berlin", "rollback_berlin") and e.dag_run_id for e in events)

    assert main(["history", "berlin", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "berlin (eta_berlin): 4 event(s)" in out
    assert "v1 -> v4" in out and "v4 -> v1" in out
    assert f"retrain_berlin/{events[0].dag_run_id}" in out and "fixed ETAs reviewed" in out
    assert "berlin: chain of 4 event(s) intact; agrees with the registry" in out
