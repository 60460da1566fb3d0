"""The retraining flows against running servers: Airflow's api-server, scheduler and dag-processor with the
LocalExecutor, and an MLflow tracking server, driven over REST and through the Airflow UI in headless Chromium.

tests/integration runs the same flows in-process with ``dag.test()``; here the scheduler schedules, the executor
runs every task in its own process, the scheduler's sweep times approvals out, and people answer through the API
server's real routes and screens. One server set-up is shared by the module, so the tests run in file order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_ml_provider.core import registry
from airflow_ml_provider.hooks.api_client import AirflowApiError

from .servers import ARTIFACTS, CRON_CITY, DATA_END, RUN_TIMEOUT, TIMEOUT_CITY, Stack

pytestmark = pytest.mark.e2e

BERLIN = "retrain_berlin"
OSLO = f"retrain_{TIMEOUT_CITY}"
CRON_DAG = f"retrain_{CRON_CITY}"


@dataclass(frozen=True)
class Runs:
    approve: str  # berlin, becomes v1: approved over REST
    reject: str  # berlin, v2: rejected over REST
    browser: str  # berlin, v3: approved in the UI
    timeout: str  # oslo, v1: nobody answers


@pytest.fixture(scope="module")
def runs(stack: Stack) -> Runs:
    """Every run is triggered up front: berlin's three queue behind each other (max_active_runs=1, in trigger order)
    and each starts as soon as the one before finishes, while oslo trains alongside berlin's first."""
    admin = stack.api("admin")
    return Runs(
        approve=admin.trigger(BERLIN, {"train_window_days": 60, "reason": "e2e"}, DATA_END.isoformat()),
        timeout=admin.trigger(OSLO, {"reason": "e2e timeout"}, DATA_END.isoformat()),
        reject=admin.trigger(BERLIN, {"reason": "e2e reject"}, (DATA_END - timedelta(days=1)).isoformat()),
        browser=admin.trigger(BERLIN, {"reason": "e2e browser"}, (DATA_END - timedelta(days=2)).isoformat()),
    )


# ----- helpers -----------------------------------------------------------------------------------------------------


def xcom(stack: Stack, dag_id: str, run_id: str, task_id: str) -> Any:
    url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return stack.get_json(url)["value"]


def champion(stack: Stack, model_name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return stack.mlflow().get_model_version_by_alias(model_name, registry.CHAMPION)
    except MlflowException:
        return None


# ----- REST --------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(1200, method="thread")  # includes starting the servers and the first training
def test_trigger_conf_and_logical_date_reach_the_tasks(stack: Stack, runs: Runs) -> None:
    """The REST trigger's conf and logical date are what the tasks computed their windows and tags from."""
    run = stack.api("admin").dag_run(BERLIN, runs.approve)
    assert run["conf"] == {"train_window_days": 60, "reason": "e2e"}
    assert datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00")) == DATA_END
    assert run["run_type"] == "manual"

    stack.wait_for_approval(BERLIN, runs.approve)
    validated = xcom(stack, BERLIN, runs.approve, "validate_data")
    windows = {name: datetime.fromisoformat(value) for name, value in validated["windows"].items()}
    assert windows["end"] == DATA_END
    assert windows["eval_start"] == DATA_END - timedelta(days=14)  # eval_window_days of the YAML
    assert windows["train_start"] == windows["eval_start"] - timedelta(days=60)  # train_window_days of the trigger

    import pandas as pd

    rides = pd.read_parquet(stack.root / "data" / "berlin" / "rides.parquet", columns=["requested_at"])["requested_at"]
    in_train_window = int(((rides >= windows["train_start"]) & (rides < windows["eval_start"])).sum())
    registered = xcom(stack, BERLIN, runs.approve, "register")
    tags = stack.mlflow().get_model_version(registered["model_name"], registered["version"]).tags
    assert tags[registry.TAG_PREFIX + "run_reason"] == "e2e"
    assert int(tags[registry.TAG_PREFIX + "train_rows"]) == in_train_window


@pytest.mark.timeout(600, method="thread")
def test_only_an_approver_can_approve_and_approval_promotes(stack: Stack, runs: Runs) -> None:
    """berlin's approval shows the guardrail report; analyst is refused; berlin_ops' Approve moves the champion."""
    request = stack.wait_for_approval(BERLIN, runs.approve)
    assert request["subject"] == "Promote eta_berlin v1 for berlin?"
    assert {user["name"] for user in request["assigned_users"]} == {"berlin_ops", "ops_lead"}
    body = request["body"]
    assert "## Guardrail: mae on every slice" in body
    assert re.search(r"^\| Slice \| Rows \| .* \| Verdict \|$", body, re.MULTILINE), body
    # Data values are escaped Markdown in the body (``_`` -> ``\_``); the Required Actions screen renders them as text.
    assert re.search(r"^\| district=tegel\\_airport \| .* \| pass \|$", body, re.MULTILINE), body
    assert f"- [MLflow model version eta\\_berlin v1]({stack.mlflow_url}/#/models/eta_berlin/versions/1)" in body
    # Run ids hold ":" and "+": quoted, as Airflow's own task log links quote them.
    assert f"- [Airflow run]({stack.api_url}/dags/{BERLIN}/runs/{quote(runs.approve, safe='')})" in body

    with pytest.raises(AirflowApiError) as refused:
        stack.api("analyst").answer(BERLIN, runs.approve, "Approve", "not my city")
    assert refused.value.status_code == 403
    stack.api("berlin_ops").answer(BERLIN, runs.approve, "Approve", "report reviewed")

    stack.wait_for_run_end(BERLIN, runs.approve)
    assert set(stack.task_states(BERLIN, runs.approve).values()) == {"success"}
    promoted = champion(stack, "eta_berlin")
    assert promoted is not None and str(promoted.version) == "1"
    assert promoted.tags[registry.DECISION_TAG] == registry.APPROVED
    assert promoted.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert promoted.tags[registry.DECISION_REASON_TAG] == "report reviewed"
    assert promoted.tags[registry.PROMOTED_BY_TAG] == "berlin_ops"


@pytest.mark.timeout(RUN_TIMEOUT + 300, method="thread")
def test_reject_keeps_the_champion_and_tags_the_version(stack: Stack, runs: Runs) -> None:
    """A rejected candidate is recorded on its version and promote is skipped: the champion stays."""
    request = stack.wait_for_approval(BERLIN, runs.reject)
    assert request["subject"] == "Promote eta_berlin v2 for berlin?"
    before = champion(stack, "eta_berlin")
    stack.api("berlin_ops").answer(BERLIN, runs.reject, "Reject", "numbers look off")

    stack.wait_for_run_end(BERLIN, runs.reject)
    states = stack.task_states(BERLIN, runs.reject)
    assert states["approve"] == "success" and states["promote"] == "skipped"
    after = champion(stack, "eta_berlin")
    assert before is not None and after is not None and after.version == before.version
    rejected = stack.mlflow().get_model_version("eta_berlin", "2")
    assert rejected.tags[registry.DECISION_TAG] == registry.REJECTED
    assert rejected.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert rejected.tags[registry.DECISION_REASON_TAG] == "numbers look off"
    assert rejected.tags[registry.EVALUATED_AGAINST_TAG] == str(before.version)
    assert registry.CHAMPION not in rejected.aliases and registry.CHALLENGER not in rejected.aliases


@pytest.mark.timeout(RUN_TIMEOUT, method="thread")
def test_unanswered_approval_is_rejected_by_the_schedulers_timeout(stack: Stack, runs: Runs) -> None:
    """Nobody answers oslo: the scheduler's own sweep applies the default (Reject) when the timeout passes."""
    stack.wait_for_run_end(OSLO, runs.timeout, timeout=RUN_TIMEOUT)
    states = stack.task_states(OSLO, runs.timeout)
    assert states["approve"] == "success" and states["promote"] == "skipped"
    answer = stack.get_json(f"/api/v2/dags/{OSLO}/dagRuns/{runs.timeout}/taskInstances/approve/-1/hitlDetails")
    assert answer["chosen_options"] == ["Reject"] and answer["responded_by_user"] is None

    assert champion(stack, "eta_oslo") is None
    version = stack.mlflow().get_model_version("eta_oslo", "1")
    assert version.tags[registry.DECISION_TAG] == registry.REJECTED
    assert version.tags[registry.DECIDED_BY_TAG] == "timeout"


@pytest.mark.timeout(300, method="thread")
def test_cron_city_runs_without_anyone_triggering_it(stack: Stack) -> None:
    """A city on a 1-minute cron gets a run from the scheduler alone, at most about 2.5 minutes after start-up."""
    url = f"/api/v2/dags/{CRON_DAG}/dagRuns"
    waited = (datetime.now(timezone.utc) - stack.started_at).total_seconds()
    try:
        found = stack.wait_until(
            lambda: stack.get_json(url, params={"run_type": "scheduled"})["dag_runs"],
            max(150 - waited, 5), f"a scheduled run of {CRON_DAG}", every=3,
        )  # fmt: skip
        run = found[0]
        assert run["run_type"] == "scheduled"
        assert run["triggered_by"] == "timetable" and run["triggering_user_name"] is None
        logical_date = datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
        assert logical_date.second == 0 and logical_date.microsecond == 0  # a cron tick
        assert logical_date >= stack.started_at - timedelta(minutes=1)  # ticked after the city appeared
    finally:  # no more runs, and none left running
        stack.rest("PATCH", f"/api/v2/dags/{CRON_DAG}", json={"is_paused": True}).raise_for_status()
        for run in stack.get_json(url)["dag_runs"]:
            if run["state"] in ("queued", "running"):
                stack.rest("PATCH", f"{url}/{run['dag_run_id']}", json={"state": "failed"}).raise_for_status()


# ----- browser -----------------------------------------------------------------------------------------------------


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for_text(driver: Any, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text, f"{text!r} not on {driver.current_url}"
    )


def open_section(driver: Any, dialog: str, title: str) -> None:
    """Expand one section (accordion item) of the trigger form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    button = (By.XPATH, f"{dialog}//button[normalize-space()='{title}']")
    element = WebDriverWait(driver, 30).until(ec.element_to_be_clickable(button))
    if element.get_attribute("aria-expanded") != "true":  # a click on an open section closes it
        element.click()
    WebDriverWait(driver, 30).until(lambda d: d.find_element(*button).get_attribute("aria-expanded") == "true")


def log_in(driver: Any, stack: Stack, user: str, password: str) -> None:
    """The simple auth manager's login page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60)
    driver.get(f"{stack.api_url}/auth/login")
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    wait.until(lambda d: "/auth/login" not in d.current_url)


@pytest.mark.timeout(RUN_TIMEOUT + 300, method="thread")
def test_berlin_ops_approves_in_the_airflow_ui(stack: Stack, runs: Runs, browser: Any) -> None:
    """What an approver sees: the typed trigger form, the guardrail report on Required Actions, Approve, success."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    log_in(browser, stack, "berlin_ops", "berlin_ops")

    # The trigger form: the YAML's values as typed, titled parameters in sections (one section open at a time).
    dialog = "//*[@role='dialog'][.//*[contains(., 'Trigger Dag')]]"
    browser.get(f"{stack.api_url}/dags/{BERLIN}")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))).click()
    wait_for_text(browser, f"Trigger Dag - {BERLIN}")
    trigger = (By.XPATH, f"{dialog}//button[normalize-space()='Trigger']")
    wait.until(ec.element_to_be_clickable(trigger))  # the YAML's defaults alone make a valid form: reason is optional
    open_section(browser, dialog, "Run Parameters")
    wait.until(ec.visibility_of_element_located((By.XPATH, f"{dialog}//*[@id='element_reason']"))).send_keys("weekly")
    open_section(browser, dialog, "Data")
    wait_for_text(browser, "Training window (days)")
    form = browser.find_element(By.XPATH, dialog).text
    for text in ("Evaluation window (days)", "Days of data before the eval window to train on.", "Model", "Guardrails"):
        assert text in form
    shown = [field.get_attribute("value") for field in browser.find_elements(By.XPATH, f"{dialog}//input")]
    assert "90" in shown and "14" in shown  # train_window_days and eval_window_days of the YAML
    wait.until(ec.element_to_be_clickable(trigger))
    screenshot(browser, "trigger-form")  # not submitted: the runs of this module are triggered over REST

    # The approval: the report rendered as tables, the reason, Approve.
    request = stack.wait_for_approval(BERLIN, runs.browser)
    assert request["subject"] == "Promote eta_berlin v3 for berlin?"
    run_url = f"{stack.api_url}/dags/{BERLIN}/runs/{quote(runs.browser, safe='')}"
    browser.get(f"{run_url}/tasks/approve/required_actions")
    wait_for_text(browser, "Promote eta_berlin v3 for berlin?")
    wait_for_text(browser, "Guardrail: mae on every slice")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table th")]
    assert {"Slice", "Rows", "Candidate", "Verdict"} <= set(headers), headers
    assert browser.find_elements(By.XPATH, "//td[normalize-space()='district=tegel_airport']")
    screenshot(browser, "required-action")
    wait.until(ec.presence_of_element_located((By.ID, "element_reason"))).send_keys("approved in the browser")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=hitl-option-Approve]"))).click()
    wait_for_text(browser, "response successful")

    stack.wait_for_run_end(BERLIN, runs.browser)
    browser.get(run_url)
    wait_for_text(browser, "Success")
    wait_for_text(browser, "6 Task Instances")
    screenshot(browser, "finished-run")

    promoted = champion(stack, "eta_berlin")
    assert promoted is not None and str(promoted.version) == "3"
    assert promoted.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert promoted.tags[registry.DECISION_REASON_TAG] == "approved in the browser"
    assert str(stack.mlflow().get_model_version_by_alias("eta_berlin", registry.PREVIOUS_CHAMPION).version) == "1"
