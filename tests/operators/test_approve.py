"""The approval gate's notifiers: Airflow's own SMTP and Slack notifiers, carrying the link to Required Actions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from airflow_ml_provider.config import CityConfig, ConfigError, NotifierConfig, load_city_config
from airflow_ml_provider.operators.approve import build_notifiers

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"
LINK = "http://airflow.example.com/dags/retrain_berlin/runs/scheduled__2026-06-01/tasks/approve/required_actions"


def _with_notifiers(*notifiers: NotifierConfig) -> CityConfig:
    config = load_city_config("berlin", CONFIGS)
    return config.model_copy(update={"approval": config.approval.model_copy(update={"notifiers": list(notifiers)})})


def test_smtp_notifier_mails_the_approvers_list_with_the_link() -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    [notifier] = build_notifiers(_with_notifiers(NotifierConfig(kind="smtp", to=["ops@example.com"], conn_id="mail")))
    assert isinstance(notifier, SmtpNotifier)
    assert notifier.to == ["ops@example.com"] and notifier.smtp_conn_id == "mail"
    assert notifier.subject == "Approval needed: eta_berlin for berlin"
    notifier.render_template_fields({"required_actions_url": LINK})  # what the approval task's context carries
    assert LINK in notifier.html_content


def test_slack_notifier_posts_to_the_channel_with_the_link() -> None:
    from airflow.providers.slack.notifications.slack import SlackNotifier

    [notifier] = build_notifiers(_with_notifiers(NotifierConfig(kind="slack", channel="#berlin-ml")))
    assert isinstance(notifier, SlackNotifier) and notifier.channel == "#berlin-ml"
    notifier.render_template_fields({"required_actions_url": LINK})
    assert LINK in notifier.text and "eta_berlin" in notifier.text


def test_slack_without_its_provider_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.slack.notifications.slack", None)  # import fails
    with pytest.raises(ConfigError, match=r"berlin.yaml: approval.notifiers: .*airflow-ml-provider\[slack\]"):
        build_notifiers(_with_notifiers(NotifierConfig(kind="slack", channel="#berlin-ml")))


def test_the_registry_rules_speak_the_approval_operators_answers() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from airflow_ml_provider.core import registry

    assert registry.APPROVE_ANSWER == (ApprovalOperator.APPROVE,)
    assert registry.REJECT_ANSWER == (ApprovalOperator.REJECT,)


def test_the_form_accepts_the_timeout_answer_and_a_reject_without_a_reason() -> None:
    """Airflow validates the scheduler's default answer and every Reject against the form: no minLength there."""
    from airflow_ml_provider.operators.approve import approval_form

    for failed in (True, False):
        form = approval_form(guardrails_failed=failed)
        form["reason"] = ""  # raises ParamValidationError if the schema demanded a reason


def test_a_failing_notifier_is_logged_and_does_not_fail_the_approval(capfd: pytest.CaptureFixture[str]) -> None:
    from airflow_ml_provider.operators.approve import LoggedNotifier

    [notifier] = build_notifiers(_with_notifiers(NotifierConfig(kind="smtp", to=["ops@example.com"], conn_id="nomail")))
    LoggedNotifier(notifier)({"required_actions_url": LINK})  # no connection "nomail": the SMTP notifier raises
    logged = "".join(capfd.readouterr())  # Airflow's task logger writes to the console here
    assert "SmtpNotifier failed; the approval request stands" in logged and "SMTP connection is not found" in logged
