"""The fleet against running servers: the fleet page inside the Airflow UI, batch decisions from it and from the CLI
(answered through Airflow's HITL API as the logged-in user, refused per city for a non-approver), and a city that
retrains when an upstream DAG publishes its data as an Airflow Asset.

berlin_ops approves two cities here: berlin and potsdam (a test-only city). analyst approves none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ml_provider.core import registry
from airflow_ml_provider.tools.cli import main

from .servers import ARTIFACTS, CRON_CITY, DATA_END, PROJECT, Stack, running_stack, write_dags_copy

pytestmark = pytest.mark.e2e

CITIES = ("berlin", "potsdam")  # both approved by berlin_ops
ASSET_CITY = "hamburg"  # retrain_on: {data: true}
EXPORT_DAG = "export_rides_hamburg"
SCREENSHOTS = PROJECT / "docs" / "screenshots"
# Two cities train at once here, on a machine that may be busy with other test sessions.
APPROVAL_TIMEOUT = 1200

EXPORT_DAG_FILE = '''"""Upstream of hamburg: the export that publishes its rides as an Airflow Asset (test DAG)."""
from airflow.sdk import DAG, Asset
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None):
    EmptyOperator(task_id="export", outlets=[Asset("{uri}")])
'''


def _write_dags(root: Path) -> Path:
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    dags = write_dags_copy(root)
    configs = dags / "configs"
    for path in (dags / f"{CRON_CITY}.py", configs / f"{CRON_CITY}.yaml"):  # its every-minute runs only cost time here
        path.unlink()
    (configs / "potsdam.yaml").write_text("city: potsdam\napproval: {approvers: [berlin_ops]}\n")
    data_uri = str(root / "data" / ASSET_CITY / "rides.parquet")
    (configs / f"{ASSET_CITY}.yaml").write_text(
        yaml.safe_dump(
            {
                "city": ASSET_CITY,
                "schedule": None,
                "retries": 0,
                "retrain_on": {"data": True},
                "approval": {"approvers": ["ops_lead"]},
            }
        )
    )
    loader = (dags / "berlin.py").read_text()
    for city in ("potsdam", ASSET_CITY):
        (dags / f"{city}.py").write_text(loader)
    (dags / f"{EXPORT_DAG}.py").write_text(EXPORT_DAG_FILE.format(dag_id=EXPORT_DAG, uri=data_uri))
    for city in CITIES:
        write_city_data(make_city_data(city, end=DATA_END.date()), root / "data" / city / "rides.parquet")
    return dags


@pytest.fixture(scope="module")
def stack() -> Any:
    with running_stack(
        write_dags=_write_dags,
        dag_ids=[*(f"retrain_{c}" for c in (*CITIES, ASSET_CITY)), EXPORT_DAG],
        artifacts=ARTIFACTS / "fleet",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def runs(stack: Stack) -> dict[str, str]:
    admin = stack.api("admin")
    conf = {"reason": "e2e fleet", "train_window_days": 30}  # a short window: two cities train at once
    return {city: admin.trigger(f"retrain_{city}", conf, DATA_END.isoformat()) for city in CITIES}


def _cli(stack: Stack, capsys: pytest.CaptureFixture[str], user: str, *args: str) -> tuple[int, str]:
    code = main([*args, "--url", stack.api_url, "--user", user, "--password", user])
    return code, capsys.readouterr().out


@pytest.mark.timeout(900, method="thread")  # includes starting the servers
def test_upstream_asset_starts_the_citys_run(stack: Stack, runs: dict[str, str]) -> None:
    """hamburg has no cron: the export DAG's success (its task's outlet is hamburg's data.uri) starts its run."""
    admin = stack.api("admin")
    assert stack.get_json(f"/api/v2/dags/retrain_{ASSET_CITY}/dagRuns")["total_entries"] == 0
    export = admin.trigger(EXPORT_DAG)
    stack.wait_for_run_end(EXPORT_DAG, export)

    def asset_run() -> dict[str, Any] | None:
        found = stack.get_json(f"/api/v2/dags/retrain_{ASSET_CITY}/dagRuns")["dag_runs"]
        return found[0] if found else None

    run = stack.wait_until(asset_run, 180, f"a run of retrain_{ASSET_CITY} after the asset update", every=2)
    assert run["run_type"] == "asset_triggered"
    # No data was written for hamburg: stop its run so it does not compete with the trained cities.
    url = f"/api/v2/dags/retrain_{ASSET_CITY}/dagRuns/{run['dag_run_id']}"
    stack.rest("PATCH", url, json={"state": "failed"})


@pytest.mark.timeout(APPROVAL_TIMEOUT + 300, method="thread")
def test_cli_lists_both_and_refuses_a_non_approver_per_city(
    stack: Stack, runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for city, run_id in runs.items():
        stack.wait_for_approval(f"retrain_{city}", run_id, timeout=APPROVAL_TIMEOUT)
    code, out = _cli(stack, capsys, "berlin_ops", "approvals")
    # Oldest request first; the two runs ask within the same second, so either order is right.
    mine = re.search(r"^2 waiting; 2 for you \(berlin_ops\): (.+)$", out, re.MULTILINE)
    assert code == 0 and mine and sorted(mine[1].split()) == sorted(CITIES), out
    code, out = _cli(stack, capsys, "analyst", "decide", "--approve", *CITIES, "--reason", "looks fine to me")
    assert code == 1
    for city in CITIES:
        assert f"{city}: refused: analyst is not an approver of {city}" in out, out
    assert len(stack.api("admin").pending_approvals()) >= 2  # nothing was answered


def _fleet_rows(browser: Any) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    return {row.get_attribute("data-city"): row for row in browser.find_elements(By.CSS_SELECTOR, "#rows tr")}


def _decide_in_page(browser: Any, option: str, reason: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: {"berlin", "potsdam"} <= set(_fleet_rows(d)))
    for city in CITIES:
        _fleet_rows(browser)[city].find_element(By.CSS_SELECTOR, "input.pick").click()
    browser.find_element(By.ID, "reason").send_keys(reason)
    wait.until(ec.element_to_be_clickable((By.ID, option))).click()
    wait.until(
        lambda d: all(_fleet_rows(d)[c].find_element(By.CSS_SELECTOR, "td.result").text for c in CITIES),
        "no result per city",
    )


@pytest.mark.timeout(APPROVAL_TIMEOUT + 600, method="thread")
def test_fleet_page_batch_approval(stack: Stack, runs: dict[str, str], browser: Any) -> None:
    """analyst's batch approval is refused city by city; berlin_ops sees both cities waiting for them, approves
    both in one action with a reason, and both champions move."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from .test_running_airflow import log_in, wait_for_text

    for city, run_id in runs.items():
        stack.wait_for_approval(f"retrain_{city}", run_id, timeout=APPROVAL_TIMEOUT)

    log_in(browser, stack, "analyst", "analyst")
    browser.get(f"{stack.api_url}/fleet/")
    _decide_in_page(browser, "approve", "looks fine to me")
    for city in CITIES:
        result = _fleet_rows(browser)[city].find_element(By.CSS_SELECTOR, "td.result").text
        assert result == f"refused: analyst is not an approver of {city}", result
    _save(browser, "fleet-refused")
    assert {p["task_instance"]["dag_id"] for p in stack.api("admin").pending_approvals()} >= {
        f"retrain_{c}" for c in CITIES
    }

    browser.delete_all_cookies()
    log_in(browser, stack, "berlin_ops", "berlin_ops")
    browser.get(f"{stack.api_url}/plugin/model-fleet")  # the page inside the Airflow UI, from its navigation
    wait_for_text(browser, "Model fleet")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    wait_for_text(browser, "2 waiting for a decision, 2 for you (berlin_ops)")
    browser.find_element(By.ID, "needs-me").click()
    WebDriverWait(browser, 30).until(lambda d: set(_fleet_rows(d)) == set(CITIES))
    browser.switch_to.default_content()
    _save(browser, "fleet-page")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    _decide_in_page(browser, "approve", "both reports reviewed: every slice within tolerance")
    for city in CITIES:
        result = _fleet_rows(browser)[city].find_element(By.CSS_SELECTOR, "td.result").text
        assert result == "approved by berlin_ops", result
    browser.switch_to.default_content()
    _save(browser, "fleet-approved")

    for city, run_id in runs.items():
        stack.wait_for_run_end(f"retrain_{city}", run_id)
        version = stack.mlflow().get_model_version_by_alias(f"eta_{city}", registry.CHAMPION)
        assert str(version.version) == "1"
        assert version.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
        assert version.tags[registry.DECISION_REASON_TAG] == "both reports reviewed: every slice within tolerance"


def _save(browser: Any, name: str) -> None:
    """Into the test artifacts, and into docs/screenshots for the README and the runbooks."""
    for folder in (ARTIFACTS / "fleet", SCREENSHOTS):
        folder.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(folder / f"{name}.png"))
