"""The approval digest: pending requests grouped per approver, one message each, with what to decide and where."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_ml_provider.core.digest import (
    by_approver,
    digest_messages,
    is_city_approval,
    run_url,
    waiting_approval,
)

NOW = datetime(2026, 6, 3, 7, 0, tzinfo=timezone.utc)
BASE = "http://airflow.example.com"


def _request(dag_id: str, run_id: str, created: datetime, *assigned: str, task_id: str = "approve") -> dict[str, Any]:
    """An item of ``GET /api/v2/dags/~/dagRuns/~/hitlDetails``, as much of it as the digest reads."""
    return {
        "task_instance": {"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id},
        "subject": f"Promote something for {dag_id}?",
        "assigned_users": [{"id": user, "name": user} for user in assigned],
        "created_at": created.isoformat(),
    }


def _waiting(city: str, hours_ago: int, *assigned: str, verdict: str = "pass", version: str = "3") -> Any:
    request = _request(f"retrain_{city}", f"manual__{city}", NOW - timedelta(hours=hours_ago), *assigned)
    registration = {"model_name": f"eta_{city}", "version": version, "verdict": verdict}
    return waiting_approval(request, registration, city_approvers=("yaml_ops",), model_name=None, base_url=BASE)


def test_only_the_approve_step_of_retraining_dags_counts() -> None:
    assert is_city_approval(_request("retrain_berlin", "r", NOW))
    assert not is_city_approval(_request("retrain_berlin", "r", NOW, task_id="other_question"))
    assert not is_city_approval(_request("someone_elses_dag", "r", NOW))


def test_a_request_shows_city_version_verdict_and_links() -> None:
    run_id = "manual__2026-06-01T00:00:00+00:00"
    request = _request("retrain_berlin", run_id, NOW - timedelta(days=2), "berlin_ops")
    item = waiting_approval(
        request,
        {"model_name": "eta_berlin", "version": 4, "verdict": "fail"},
        city_approvers=("ops_lead",),
        model_name="eta_berlin",
        base_url=BASE + "/",
    )
    assert (item.city, item.model_name, item.version, item.verdict) == ("berlin", "eta_berlin", "4", "fail")
    assert item.approvers == ("berlin_ops",)  # whom Airflow lets answer, not the YAML of today
    assert item.waiting_since == NOW - timedelta(days=2)
    quoted = "manual__2026-06-01T00%3A00%3A00%2B00%3A00"
    assert item.report_url == f"{BASE}/dags/retrain_berlin/runs/{quoted}/tasks/evaluate/xcom"
    assert item.required_actions_url == f"{BASE}/dags/retrain_berlin/runs/{quoted}/tasks/approve/required_actions"
    # The run's own page (evaluate's report links it) is quoted alike.
    assert run_url(BASE + "/", "retrain_berlin", run_id) == f"{BASE}/dags/retrain_berlin/runs/{quoted}"


def test_without_assigned_users_or_registration_the_yaml_fills_in() -> None:
    item = waiting_approval(
        _request("retrain_oslo", "r1", NOW), None, city_approvers=("ops_lead",), model_name="eta_oslo", base_url=BASE
    )
    assert item.approvers == ("ops_lead",)
    assert (item.model_name, item.version, item.verdict) == ("eta_oslo", None, None)


def test_grouped_per_approver_oldest_first_and_nobody_with_nothing() -> None:
    berlin = _waiting("berlin", 5, "berlin_ops", "ops_lead")
    potsdam = _waiting("potsdam", 30, "berlin_ops")
    oslo = _waiting("oslo", 1, "ops_lead", "ops_lead")
    grouped = by_approver([berlin, potsdam, oslo])
    assert list(grouped) == ["berlin_ops", "ops_lead"]
    assert [i.city for i in grouped["berlin_ops"]] == ["potsdam", "berlin"]
    assert [i.city for i in grouped["ops_lead"]] == ["berlin", "oslo"]  # listed twice, told once
    assert by_approver([]) == {}


def test_one_message_per_approver_with_everything_to_decide() -> None:
    berlin = _waiting("berlin", 50, "berlin_ops", "ops_lead", verdict="fail")
    oslo = _waiting("oslo", 3, "ops_lead", version="7")
    messages = {m.approver: m for m in digest_messages([berlin, oslo], now=NOW)}
    assert set(messages) == {"berlin_ops", "ops_lead"}

    lead = messages["ops_lead"]
    assert lead.cities == ("berlin", "oslo")
    assert lead.subject == "2 model approvals waiting for you: berlin, oslo"
    parts = ["eta_berlin v3", "eta_oslo v7", "fail (approving needs a reason)", "pass", "2026-06-03 04:00 UTC (3 h)"]
    for part in [*parts, "2026-06-01 05:00 UTC (2 d 2 h)", berlin.report_url, oslo.required_actions_url]:
        assert part in lead.html and part in lead.text
    assert messages["berlin_ops"].subject == "1 model approval waiting for you: berlin"
    assert "oslo" not in messages["berlin_ops"].html


def test_names_are_escaped_for_mail_and_slack() -> None:
    item = _waiting("berlin", 1, "<b>ops</b> & co")
    [message] = digest_messages([item], now=NOW)
    assert "&lt;b&gt;ops&lt;/b&gt; &amp; co" in message.html and "<b>ops" not in message.html
    assert "&lt;b&gt;ops&lt;/b&gt; &amp; co" in message.text
    # A name can neither start a new line in either message nor reorder the text around it.
    [message] = digest_messages([_waiting("berlin", 1, "ops\n*everyone*\u202e")], now=NOW)
    assert "ops\\n*everyone*\\u202e" in message.html and "ops\\n*everyone*\\u202e" in message.text
