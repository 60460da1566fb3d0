"""approve: Airflow's own ApprovalOperator, wired to the city's approvers, report and guardrail policy."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_ml_provider.config import CityConfig, ConfigError
from airflow_ml_provider.core.ledger import REJECT, TIMEOUT
from airflow_ml_provider.core.report import with_link
from airflow_ml_provider.hooks.ledger import record
from airflow_ml_provider.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

TIMEOUT_DECIDER = "timeout"


class CityApprovalOperator(ApprovalOperator):
    """Ask the city's approvers in Airflow's Required Actions screen whether to promote the registered candidate.

    Silence never promotes: ``defaults="Reject"`` with ``response_timeout`` from ``approval.timeout_hours``.
    With ``on_guardrail_failure: block`` a failed guardrail asks no one (this task and ``promote`` are skipped);
    with ``ask`` the approver sees the failure and must give a reason to approve. A rejection or a timeout is
    recorded on the model version.

    :param registration: XCom of ``register`` (model name, version, verdict).
    """

    template_fields = (*ApprovalOperator.template_fields, "registration")

    def __init__(
        self,
        *,
        config: CityConfig,
        registration: Any,
        body: str,
        notifiers: list[BaseNotifier] | None = None,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        approval = config.approval
        kwargs.pop("params", None)  # the DAG's trigger params: not part of the approval form (see approval_form)
        super().__init__(
            subject=f"Promote {config.model_name} v{{{{ ti.xcom_pull(task_ids='register')['version'] }}}} "
            f"for {config.city}?",
            body=body,
            defaults="Reject",
            response_timeout=timedelta(hours=approval.timeout_hours),
            assigned_users=[{"id": user, "name": user} for user in approval.approvers],
            params=approval_form(guardrails_failed=False),
            notifiers=notifiers,
            retries=0,  # a retry would ask the approvers a second time
            **kwargs,
        )
        self.config = config
        self.registration = registration
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> Any:
        if not self.registration["needs_approval"]:
            raise AirflowSkipException(
                f"guardrails failed and {self.config.city} blocks on failure: nothing to approve, nothing promoted"
            )
        self.params = approval_form(guardrails_failed=self.registration["verdict"] != "pass")
        if self.registration.get("version_url"):  # the version exists only now: evaluate's report cannot link it
            model, version = self.registration["model_name"], self.registration["version"]
            self.body = with_link(
                self.body, f"MLflow model version {model} v{version}", self.registration["version_url"]
            )
        context["required_actions_url"] = required_actions_url(context)  # for the notifiers' messages
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        self.params = approval_form(guardrails_failed=self.registration["verdict"] != "pass")
        if event.get("chosen_options") == [self.REJECT]:
            # Recorded first: on Reject, ApprovalOperator skips downstream by raising, so nothing after it runs.
            self._record_rejection(event, context)
        answer = super().execute_complete(context=context, event=event)
        reason = (answer.get("params_input") or {}).get("reason") or ""
        if self.registration["verdict"] != "pass" and not reason.strip():
            raise AirflowFailException(
                f"{decider(answer)} approved a candidate that failed its guardrails without a reason; nothing promoted"
            )
        return answer

    def _record_rejection(self, event: dict[str, Any], context: Context) -> None:
        decided_by = decider(event)
        reason = (event.get("params_input") or {}).get("reason") or ""
        if decided_by == TIMEOUT_DECIDER:
            reason = reason or f"no answer within {self.config.approval.timeout_hours} h"
        MlflowHook(self.mlflow_conn_id).reject(
            self.registration["model_name"],
            self.registration["version"],
            decided_by=decided_by,
            reason=reason,
            report_sha256=self.registration["report_sha256"],
        )
        record(
            self.config,
            TIMEOUT if decided_by == TIMEOUT_DECIDER else REJECT,
            version=self.registration["version"],
            from_version=self.registration["champion_version"],
            to_version=self.registration["champion_version"],
            who=decided_by,
            why=reason,
            report_sha256=self.registration["report_sha256"],
            model_sha256=self.registration.get("model_sha256"),
            dag_id=self.dag_id,
            dag_run_id=context["run_id"],
        )
        self.log.info(
            "%s v%s rejected by %s", self.registration["model_name"], self.registration["version"], decided_by
        )


def approval_form(*, guardrails_failed: bool) -> ParamsDict:
    """The approver's form. Airflow merges the DAG's trigger params into every task's params; the approval screen
    must show only its own field, so the form is set explicitly on the worker."""
    if guardrails_failed:
        reason = Param(
            "",
            type="string",
            minLength=1,
            title="Reason (required: guardrails failed)",
            description="This candidate failed its guardrails. Approving it needs a reason for the audit trail.",
        )
    else:
        reason = Param("", type="string", title="Reason", description="Why you approve or reject (recorded).")
    return ParamsDict({"reason": reason})


def decider(answer: dict[str, Any]) -> str:
    """Who answered: the user's name, or ``timeout`` when the scheduler applied the default answer."""
    user = answer.get("responded_by_user") or {}
    return user.get("name") or user.get("id") or TIMEOUT_DECIDER


def required_actions_url(context: Context) -> str:
    try:
        return ApprovalOperator.generate_link_to_ui_from_context(context=context)
    except ValueError:  # no [api] base_url configured
        return "(set [api] base_url to get a link) Browse > Required Actions in the Airflow UI"


def build_notifiers(config: CityConfig) -> list[BaseNotifier]:
    """Airflow's SMTP and Slack notifiers from ``approval.notifiers``; messages carry the Required Actions link."""
    message = (
        f"{config.model_name}: a retrained model for {config.city} is waiting for your approval. "
        "Review the guardrail report and answer here: {{ required_actions_url }}"
    )
    notifiers: list[BaseNotifier] = []
    for spec in config.approval.notifiers:
        if spec.kind == "smtp":
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            notifiers.append(
                SmtpNotifier(
                    to=spec.to or [],
                    subject=f"Approval needed: {config.model_name} for {config.city}",
                    html_content=message,
                    **({"smtp_conn_id": spec.conn_id} if spec.conn_id else {}),
                )
            )
        else:
            try:
                from airflow.providers.slack.notifications.slack import SlackNotifier
            except ImportError:
                raise ConfigError(
                    [
                        f"{config.city}.yaml: approval.notifiers: kind slack needs the Slack provider; "
                        "pip install 'airflow-ml-provider[slack]'"
                    ]
                ) from None
            notifiers.append(
                SlackNotifier(
                    text=message,
                    channel=spec.channel or "#general",
                    **({"slack_conn_id": spec.conn_id} if spec.conn_id else {}),
                )
            )
    return notifiers
