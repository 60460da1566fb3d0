"""approve: Airflow's own ApprovalOperator, wired to the city's approvers, report and guardrail policy."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowSkipException

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core import registry
from airflow_ml_provider.core.handoff import Registered
from airflow_ml_provider.core.ledger import decided
from airflow_ml_provider.core.report import with_link
from airflow_ml_provider.hooks.ledger import record
from airflow_ml_provider.hooks.mlflow import MlflowHook
from airflow_ml_provider.operators.base import handed, make_notifier

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context


class CityApprovalOperator(ApprovalOperator):
    """Ask the city's approvers in Airflow's Required Actions screen whether to promote the registered candidate.

    Silence never promotes: ``defaults="Reject"`` with ``response_timeout`` from ``approval.timeout_hours``.
    With ``on_guardrail_failure: block`` a failed guardrail asks no one (this task and ``promote`` are skipped);
    with ``ask`` the approver sees the failure and must give a reason to approve. Every answer is recorded on the
    model version, except a rejection or timeout about a version approved already (:func:`registry.recorded`); a
    rejection or a timeout also goes to the promotion ledger and takes ``challenger`` away. A notifier that fails is
    logged and does not stop the question. Returns :class:`~airflow_ml_provider.core.handoff.Decision`.

    :param registration: XCom of ``register``.
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
            subject=f"Promote {config.model_name} for {config.city}?",  # names the version once it is known
            body=body,
            defaults=registry.REJECT,
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
        registered = handed(Registered, self.registration)
        if not registered.needs_approval:
            raise AirflowSkipException(
                f"guardrails failed and {self.config.city} blocks on failure: nothing to approve, nothing promoted"
            )
        self.params = approval_form(guardrails_failed=registered.verdict != "pass")
        self.subject = f"Promote {registered.model_name} v{registered.version} for {self.config.city}?"
        if registered.version_url:  # the version exists only now: evaluate's report cannot link it
            self.body = with_link(
                self.body, f"MLflow model version {registered.model_name} v{registered.version}", registered.version_url
            )
        context["required_actions_url"] = required_actions_url(context)  # for the notifiers' messages
        self.notifiers = [LoggedNotifier(notifier) for notifier in self.notifiers]
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        registered = handed(Registered, self.registration)
        self.params = approval_form(guardrails_failed=registered.verdict != "pass")
        decision = registry.decision_of(
            registered,
            chosen=event.get("chosen_options") or [],
            responded_by=event.get("responded_by_user"),
            reason=(event.get("params_input") or {}).get("reason"),
            responded_at=_iso(event.get("responded_at")),
            timeout_hours=self.config.approval.timeout_hours,
        )
        # Recorded first: on Reject, ApprovalOperator skips downstream by raising, so nothing after it runs.
        MlflowHook(self.mlflow_conn_id).record_decision(decision)
        if decision.answer != registry.APPROVE_ANSWER:  # an approval reaches the ledger when promote moves champion
            record(self.config, decided(registered, decision, None, dag_id=self.dag_id, dag_run_id=context["run_id"]))
        self.log.info(
            "%s v%s: %s by %s (%s)",
            decision.model_name,
            decision.version,
            decision.answer[0] if decision.answer else "no answer",
            decision.decided_by,
            decision.reason or "no reason given",
        )
        # The approver's own answer goes to Airflow (a rejection that overrides an Approve still skips promote).
        super().execute_complete(context=context, event={**event, "chosen_options": list(decision.answer)})
        return decision.to_xcom()


class LoggedNotifier:
    """A notifier whose failure (mail server or Slack down) is logged and does not fail the approval: the request is
    in Required Actions either way, and failing would leave the version without a decision."""

    def __init__(self, notifier: BaseNotifier) -> None:
        self.notifier = notifier

    def __call__(self, context: Context) -> None:
        try:
            self.notifier(context)
        except Exception:
            self.notifier.log.exception("notifier %s failed; the approval request stands", type(self.notifier).__name__)


def approval_form(*, guardrails_failed: bool) -> ParamsDict:
    """The approver's form. Airflow merges the DAG's trigger params into every task's params; the approval screen
    must show only its own field, so the form is set explicitly on the worker.

    The reason is never required by the form's schema: Airflow validates the scheduler's timeout answer and a
    Reject against it too, and those must always be recorded. A reason is required to approve a candidate that
    failed its guardrails, which :func:`registry.decision_of` enforces."""
    if guardrails_failed:
        reason = Param(
            "",
            type="string",
            title=registry.REASON_REQUIRED_TITLE,
            description="This candidate failed its guardrails. Approving it needs a reason for the audit trail; "
            "an approval without one is recorded as a rejection.",
        )
    else:
        reason = Param("", type="string", title="Reason", description="Why you approve or reject (recorded).")
    return ParamsDict({"reason": reason})


def _iso(value: Any) -> str:
    """Airflow hands ``responded_at`` as a datetime; a resumed task may see its ISO text."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


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
    return [
        make_notifier(
            spec,
            subject=f"Approval needed: {config.model_name} for {config.city}",
            html=message,
            text=message,
            where=f"{config.city}.yaml: approval.notifiers",
        )
        for spec in config.approval.notifiers
    ]
