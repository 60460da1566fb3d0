"""``airflow-ml approvals`` and ``airflow-ml decide``: what waits for a decision, and answering many cities at once.

Every answer goes through Airflow's own HITL API as the logged-in user, so Airflow still decides who may answer
(``assigned_users``, the city's approvers): a city whose approval the user may not answer is refused for that city
alone and the others proceed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_ml_provider.config.city import RETRAIN_PREFIX
from airflow_ml_provider.core.digest import assigned_names, is_city_approval
from airflow_ml_provider.core.registry import APPROVE, REASON_REQUIRED_TITLE, REJECT
from airflow_ml_provider.hooks.api_client import AirflowApi, AirflowApiError


@dataclass(frozen=True)
class PendingApproval:
    city: str
    dag_id: str
    run_id: str
    task_id: str
    subject: str
    approvers: tuple[str, ...]
    created_at: str
    guardrails_failed: bool  # approving needs a reason

    @classmethod
    def of(cls, detail: dict[str, Any]) -> PendingApproval:
        ti = detail["task_instance"]
        reason = (detail.get("params") or {}).get("reason") or {}
        return cls(
            city=ti["dag_id"].removeprefix(RETRAIN_PREFIX),
            dag_id=ti["dag_id"],
            run_id=ti["dag_run_id"],
            task_id=ti["task_id"],
            subject=detail["subject"],
            approvers=assigned_names(detail.get("assigned_users")),
            created_at=str(detail["created_at"]),
            guardrails_failed=(reason.get("schema") or {}).get("title") == REASON_REQUIRED_TITLE,
        )


@dataclass(frozen=True)
class Answer:
    city: str
    ok: bool
    message: str


def pending_approvals(api: AirflowApi) -> list[PendingApproval]:
    """Unanswered approvals of retraining DAGs the user may read, oldest first."""
    found = [PendingApproval.of(d) for d in api.pending_approvals() if is_city_approval(d)]
    return sorted(found, key=lambda p: (p.created_at, p.city))


def decide(api: AirflowApi, cities: list[str], *, approve: bool, reason: str) -> list[Answer]:
    """Answer the pending approval of each city as the API's user; one Answer per city, in the order given."""
    if not reason.strip():
        raise ValueError("a batch decision needs a reason (--reason): it is recorded on every model version")
    option = APPROVE if approve else REJECT
    pending: dict[str, list[PendingApproval]] = {}
    for item in pending_approvals(api):
        pending.setdefault(item.city, []).append(item)
    answers = []
    for city in dict.fromkeys(cities):
        waiting = pending.get(city)
        if not waiting:
            answers.append(Answer(city, False, "no approval is waiting (or you may not see it)"))
            continue
        for item in waiting:
            answers.append(_answer(api, item, option, reason))
    return answers


def _answer(api: AirflowApi, item: PendingApproval, option: str, reason: str) -> Answer:
    try:
        api.answer(item.dag_id, item.run_id, option, reason=reason, task_id=item.task_id)
    except AirflowApiError as exc:
        why = {
            403: f"refused: {api.username} is not an approver of {item.city} (approvers: {', '.join(item.approvers)})",
            409: "already answered by someone else",
        }.get(exc.status_code, str(exc))
        return Answer(item.city, False, why)
    verb = "approved" if option == APPROVE else "rejected"
    return Answer(item.city, True, f"{verb} {item.subject!r} (run {item.run_id})")
