"""send_digest's wiring: each approver's message through every notifier, ``{approver}`` filled in, a failed send
reported without stopping the others. Airflow's REST API and the notifiers' servers are stood in for here; the real
ones (metadata DB, API server, SMTP server) are in tests/integration/test_approval_digest.py."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.config.fleet import ApprovalDigestConfig

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"


class FakeApi:
    def pending_approvals(self) -> list[dict[str, Any]]:
        def request(dag_id: str, task_id: str, *assigned: str) -> dict[str, Any]:
            return {
                "task_instance": {"dag_id": dag_id, "dag_run_id": f"manual__{dag_id}", "task_id": task_id},
                "assigned_users": [{"id": u, "name": u} for u in assigned],
                "created_at": datetime(2026, 6, 1, tzinfo=timezone.utc).isoformat(),
            }

        return [
            request("retrain_berlin", "approve", "berlin_ops", "ops_lead"),
            request("retrain_lisbon", "approve"),  # none assigned: lisbon.yaml's approvers
            request("someone_elses_dag", "question", "ops_lead"),
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        return {"model_name": "eta_berlin", "version": "2", "verdict": "pass"} if dag_id == "retrain_berlin" else None


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    from airflow.providers.slack.notifications.slack import SlackNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from airflow_ml_provider.hooks.airflow_api import AirflowApiHook

    calls: list[tuple[str, Any]] = []

    def smtp(notifier: SmtpNotifier, context: Any) -> None:
        if notifier.to == ["lisbon_ops@example.com"]:
            raise ConnectionRefusedError("mail server down")
        calls.append(("smtp", notifier))

    monkeypatch.setattr(AirflowApiHook, "get_conn", lambda self: FakeApi())
    monkeypatch.setattr(AirflowApiHook, "base_url", "http://api:8080")
    monkeypatch.setattr(SmtpNotifier, "notify", smtp)
    monkeypatch.setattr(SlackNotifier, "notify", lambda notifier, context: calls.append(("slack", notifier)))
    return calls


def test_every_approver_through_every_notifier_and_a_failure_named(sent: list[tuple[str, Any]]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.operators.digest import ApprovalDigestOperator

    digest = ApprovalDigestConfig.model_validate(
        {"notifiers": [{"kind": "smtp", "to": ["{approver}@example.com"]}, {"kind": "slack", "channel": "@{approver}"}]}
    )
    operator = ApprovalDigestOperator(task_id="send_digest", digest=digest, config_dir=str(CONFIGS))
    with pytest.raises(AirflowFailException, match="the digest did not reach lisbon_ops; see the log above"):
        operator.execute({})
    smtp = {tuple(n.to): n for kind, n in sent if kind == "smtp"}
    slack = {n.channel: n for kind, n in sent if kind == "slack"}
    assert set(smtp) == {("berlin_ops@example.com",), ("ops_lead@example.com",)}
    assert set(slack) == {"@berlin_ops", "@ops_lead", "@lisbon_ops"}  # lisbon_ops' Slack message still went
    assert smtp[("ops_lead@example.com",)].subject == "1 model approval waiting for you: berlin"
    assert "eta_berlin v2" in smtp[("ops_lead@example.com",)].html_content
    assert "eta_lisbon (version unknown)" in slack["@lisbon_ops"].text
    assert (
        "{{" not in slack["@ops_lead"].text and "http://localhost:8080/dags/retrain_berlin/" in slack["@ops_lead"].text
    )
