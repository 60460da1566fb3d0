"""Faults injected into real processes while cities retrain, and what must hold after each: ``airflow-ml audit``
passes, a DAG run never holds two versions of the same model bits, ``champion`` holds only bits a listed approver
approved, and the city's next run succeeds.

Every scenario has a city of its own and all of them run at once on one shared stack (see conftest.py), so an MLflow
outage meant for one city also hits the others' tasks: as in production, where MLflow is shared. Each test waits for
its scenario and reports its outcome.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from airflow_ml_provider.core import registry

from .harness import CITIES, OWN_MLFLOW, Faults, city_data

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(1500, method="thread")]

SCENARIOS: dict[str, Callable[[Faults], dict[str, Any]]] = {}
SCENARIO_TIMEOUT = 1200  # seconds, all scenarios together, servers' start-up included


def scenario(run: Callable[[Faults], dict[str, Any]]) -> Callable[[Faults], dict[str, Any]]:
    SCENARIOS[run.__name__] = run
    return run


@pytest.fixture(scope="module")
def outcomes(faults: Faults) -> Iterator[dict[str, Future]]:
    """Every scenario started at once, each in a thread of its own; a test waits for its own."""
    with ThreadPoolExecutor(len(SCENARIOS), thread_name_prefix="fault") as pool:
        yield {name: pool.submit(run, faults) for name, run in SCENARIOS.items()}


def kill_when_running(faults: Faults, city: str, run_id: str, task_id: str, after: float = 0.0) -> dict[str, Any]:
    """SIGKILL the task's process (the one Airflow's supervisor forked; ``pid`` of the task instance) ``after``
    seconds into its run, as the kernel's OOM killer or a lost node would."""
    ti = faults.wait_task(city, run_id, task_id, {"running"}, every=0.2)
    while ti["pid"] is None:  # the supervisor reports the pid right after the state
        ti = faults.task(city, run_id, task_id)
    time.sleep(after)
    try:
        os.kill(ti["pid"], signal.SIGKILL)
    except ProcessLookupError:
        faults.fail(city, run_id, f"{task_id} ended before it could be killed ({after} s after it started)")
    return ti


def tries(faults: Faults, city: str, run_id: str) -> dict[str, int]:
    tis = faults.stack.get_json(f"/api/v2/dags/{faults.dag(city)}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti["try_number"] for ti in tis}


# ----- scenarios ------------------------------------------------------------------------------------------------------


@scenario
def mlflow_restarts(faults: Faults) -> dict[str, Any]:
    """The MLflow server stopped and started again after each step, and once while register runs."""
    city = "fault_mlflow"
    run_id = faults.trigger(city)
    for task_id in ("validate_data", "train", "evaluate"):
        faults.wait_task(city, run_id, task_id, {"success"}, every=0.2)
        faults.bounce_mlflow(f"after {task_id}")
    faults.wait_task(city, run_id, "register", {"running"}, every=0.2)
    time.sleep(1.5)
    faults.bounce_mlflow("during register")
    faults.wait_task(city, run_id, "register", {"success"})
    faults.bounce_mlflow("after register")
    faults.approve(city, run_id)
    faults.wait_task(city, run_id, "approve", {"success"})
    faults.bounce_mlflow("after approve")
    faults.finish(city, run_id)
    faults.assert_invariants(city, [run_id])
    next_run = faults.run_to_champion(city)
    faults.assert_invariants(city, [run_id, next_run])
    return {"bounces": list(faults.mlflow_bounces), "tries": tries(faults, city, run_id)}


@scenario
def s3_outage(faults: Faults) -> dict[str, Any]:
    """moto's S3 server, which holds the city's data, is down while validate_data runs; it comes back later."""
    city = "fault_s3"
    faults.s3.stop()
    run_id = faults.trigger(city)
    try:
        failed = faults.wait_task(city, run_id, "validate_data", {"up_for_retry"})
    finally:
        faults.s3.start()
    faults.wait_task(city, run_id, "validate_data", {"success"})
    faults.approve(city, run_id)
    faults.finish(city, run_id)
    faults.assert_invariants(city, [run_id])
    next_run = faults.run_to_champion(city)
    faults.assert_invariants(city, [run_id, next_run])
    return {"failed_try": failed["try_number"], "tries": tries(faults, city, run_id)}


@scenario
def killed_task_processes(faults: Faults) -> dict[str, Any]:
    """The task process of register, then of promote, SIGKILLed while it runs."""
    city = "fault_kill"
    run_id = faults.trigger(city)
    register = kill_when_running(faults, city, run_id, "register", after=1.0)
    faults.approve(city, run_id)
    promote = kill_when_running(faults, city, run_id, "promote")
    faults.finish(city, run_id)
    done = tries(faults, city, run_id)
    assert done["register"] > register["try_number"] and done["promote"] > promote["try_number"], done
    faults.assert_invariants(city, [run_id])
    next_run = faults.run_to_champion(city)
    faults.assert_invariants(city, [run_id, next_run])
    return {"killed": {"register": register["pid"], "promote": promote["pid"]}, "tries": done}


@scenario
def smtp_down(faults: Faults) -> dict[str, Any]:
    """The city's approval notifier is an SMTP server on a closed port: the approval still waits for an answer."""
    city = "fault_smtp"
    run_id = faults.trigger(city)
    faults.approve(city, run_id)
    faults.finish(city, run_id)
    faults.assert_invariants(city, [run_id])
    next_run = faults.run_to_champion(city)
    faults.assert_invariants(city, [run_id, next_run])
    return {"tries": tries(faults, city, run_id)}


@scenario
def clear_and_rerun(faults: Faults) -> dict[str, Any]:
    """validate_data cleared with downstream while the approval waits: with unchanged data the rerun keeps its
    version; after the data changed upstream it registers the new bits as a new version and the old one is
    superseded; the approval then promotes exactly the new bits."""
    city = "fault_rerun"
    client = faults.mlflow(city)
    model = f"eta_{city}"
    run_id = faults.trigger(city)
    faults.wait_task(city, run_id, "approve", {"awaiting_input"})
    first = faults.xcom(city, run_id, "register")

    faults.clear_from_validate_data(city, run_id)  # unchanged data
    same = _rerun_registration(faults, city, run_id)
    assert str(same["version"]) == str(first["version"]), (first, same)
    assert len(client.search_model_versions(f"name = '{model}'")) == 1

    (faults.stack.root / "data" / city / "rides.parquet").write_bytes(city_data(city, seed=1))  # fixed upstream
    faults.clear_from_validate_data(city, run_id)
    changed = _rerun_registration(faults, city, run_id)
    assert str(changed["version"]) != str(first["version"]), (first, changed)
    assert changed["model_sha256"] != first["model_sha256"]
    old = client.get_model_version(model, str(first["version"]))
    assert old.tags[registry.DECISION_TAG] == registry.SUPERSEDED, old.tags
    assert old.tags[registry.SUPERSEDED_BY_TAG] == str(changed["version"]), old.tags
    assert client.get_model_version_by_alias(model, registry.CHALLENGER).version == str(changed["version"])

    faults.approve(city, run_id)
    faults.finish(city, run_id)
    faults.assert_invariants(city, [run_id])
    next_run = faults.run_to_champion(city)
    faults.assert_invariants(city, [run_id, next_run])
    return {"versions": [first["version"], same["version"], changed["version"]]}


def _rerun_registration(faults: Faults, city: str, run_id: str) -> dict[str, Any]:
    """register's result once the cleared run registered again and waits for approval anew."""
    before = faults.task(city, run_id, "register")["try_number"]
    faults.stack.wait_until(
        lambda: faults.task(city, run_id, "register")["try_number"] > before, 120, f"{city} {run_id} to rerun"
    )
    faults.wait_task(city, run_id, "approve", {"awaiting_input"})
    return faults.xcom(city, run_id, "register")


@scenario
def two_triggers_at_once(faults: Faults) -> dict[str, Any]:
    """Two manual triggers of one city within a second: both run (one after the other), both are approved, the
    second's bits end up champion with the first's as previous_champion."""
    city = "fault_twice"
    first, second = faults.trigger(city, "first"), faults.trigger(city, "second")
    for run_id in (first, second):
        faults.approve(city, run_id)
        faults.finish(city, run_id)
    faults.assert_invariants(city, [first, second])
    client = faults.mlflow(city)
    previous = client.get_model_version_by_alias(f"eta_{city}", registry.PREVIOUS_CHAMPION)
    assert previous.version == str(faults.xcom(city, first, "register")["version"])
    return {"runs": [first, second]}


# ----- tests ----------------------------------------------------------------------------------------------------------


def test_mlflow_server_restarted_at_every_step_boundary_and_during_register(outcomes: dict[str, Future]) -> None:
    outcome = outcomes["mlflow_restarts"].result(timeout=SCENARIO_TIMEOUT)
    assert len(outcome["bounces"]) >= 6


def test_s3_down_during_validate_data(outcomes: dict[str, Future]) -> None:
    outcome = outcomes["s3_outage"].result(timeout=SCENARIO_TIMEOUT)
    assert outcome["tries"]["validate_data"] > outcome["failed_try"]


def test_task_process_killed_during_register_and_during_promote(outcomes: dict[str, Future]) -> None:
    outcomes["killed_task_processes"].result(timeout=SCENARIO_TIMEOUT)


def test_smtp_notifier_on_a_closed_port(outcomes: dict[str, Future]) -> None:
    outcomes["smtp_down"].result(timeout=SCENARIO_TIMEOUT)


def test_clear_and_rerun_with_unchanged_and_with_changed_data(outcomes: dict[str, Future]) -> None:
    outcomes["clear_and_rerun"].result(timeout=SCENARIO_TIMEOUT)


def test_two_manual_triggers_of_one_city_at_once(outcomes: dict[str, Future]) -> None:
    outcomes["two_triggers_at_once"].result(timeout=SCENARIO_TIMEOUT)


def test_audit_passes_for_every_city_after_every_fault(faults: Faults, outcomes: dict[str, Future]) -> None:
    for future in outcomes.values():
        future.exception(timeout=SCENARIO_TIMEOUT)  # ended, however
    for cities in ([c for c in CITIES if c not in OWN_MLFLOW], list(OWN_MLFLOW)):
        code, output = faults.audit(*cities)
        print(output)
        assert code == 0, output
