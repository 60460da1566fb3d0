"""promote and rollback: move the ``champion`` alias, with compare-and-set and an audit trail on the version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.core.handoff import Decision, Registered
from airflow_ml_provider.core.ledger import decided
from airflow_ml_provider.core.registry import PREVIOUS_CHAMPION, PromotionRefused, StaleChampionError
from airflow_ml_provider.core.rollback import RollbackRefused
from airflow_ml_provider.hooks.ledger import record, roll_back
from airflow_ml_provider.operators.base import CityOperator, failing_for_good, handed

if TYPE_CHECKING:
    from airflow.sdk import Context


class PromoteModelOperator(CityOperator):
    """Point ``champion`` at the approved candidate if it still points where evaluation saw it; a retry is a no-op.

    Checks the decision itself first (the answer, an approver of the city, the version's recorded decision, report
    and model sha256, the model file MLflow serves). A refusal or a moved champion fails for good; an MLflow error
    is retried. :param registration: XCom of ``register``. :param decision: XCom of ``approve``.
    Returns :class:`~airflow_ml_provider.core.handoff.Promoted`.
    """

    template_fields = ("registration", "decision")

    def __init__(self, *, registration: Any, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registration = registration
        self.decision = decision

    def execute(self, context: Context) -> dict[str, Any]:
        registered, decision = handed(Registered, self.registration), handed(Decision, self.decision)
        with failing_for_good(PromotionRefused, StaleChampionError):
            promoted = self.mlflow_hook().promote(registered, decision, approvers=self.config.approval.approvers)
        record(self.config, decided(registered, decision, promoted, dag_id=self.dag_id, dag_run_id=context["run_id"]))
        self.log.info(
            "%s v%s is champion (approved by %s); previous champion: %s",
            registered.model_name,
            registered.version,
            decision.decided_by,
            promoted.previous_champion,
        )
        return promoted.to_xcom()


class RollbackModelOperator(CityOperator):
    """Move ``champion`` back in one step; records who (the user who triggered the run), when and why.

    Never to a rejected, blocked or superseded version; to a version nobody approved only with ``force``; to a
    version newer than the champion only when an approver of the city triggered the run.

    :param to_version: version to restore, or ``previous_champion`` (templated).
    :param reason: why (templated, required).
    """

    template_fields = ("to_version", "reason", "force")

    def __init__(self, *, to_version: str, reason: str, force: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to_version = to_version
        self.reason = reason
        self.force = force

    def execute(self, context: Context) -> dict[str, Any]:
        if not str(self.reason).strip():
            raise AirflowFailException("a rollback needs a reason; trigger it again with the reason filled in")
        target = None if self.to_version in ("", PREVIOUS_CHAMPION, None) else str(self.to_version)
        user = context["dag_run"].triggering_user_name or "unknown"
        with failing_for_good(RollbackRefused, ValueError):
            plan = roll_back(
                self.config,
                self.mlflow_hook(),
                to_version=target,
                who=user,
                why=str(self.reason),
                force=str(self.force).lower() in ("true", "1"),
                dag_id=self.dag_id,
                dag_run_id=context["run_id"],
            )
        self.log.info(
            "%s champion: v%s -> v%s by %s%s",
            plan.model_name,
            plan.from_version,
            plan.to_version,
            plan.who,
            " (an interrupted rollback, now finished)" if plan.resumed else "",
        )
        return {"model_name": plan.model_name, "champion": plan.to_version, "from_version": plan.from_version}
