"""The approval digest: what waits for each approver, grouped and rendered as one message per approver.

Pure: the ``approval_digest`` DAG's task (``operators/digest.py``) reads the pending approvals from Airflow's REST
API (``/api/v2/hitlDetails``) and register's result of each run, and hands them here as plain JSON. How a pending
request is read (a city's approval or not, who may answer it) is here too, for ``airflow-ml approvals`` and the fleet
page as well.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from airflow_ml_provider.config.city import RETRAIN_PREFIX
from airflow_ml_provider.core.display import slack, visible
from airflow_ml_provider.core.handoff import Decision, Evaluated, Registered

APPROVE_TASK = Decision.STEP
REPORT_TASK = Evaluated.STEP  # its XCom holds the report the approval shows
REGISTER_TASK = Registered.STEP  # its result names the version waiting and its guardrail verdict


@dataclass(frozen=True)
class WaitingApproval:
    """One city's model version waiting for a decision, and who may give it."""

    city: str
    dag_id: str
    run_id: str
    model_name: str
    version: str | None  # None when register's result could not be read
    verdict: str | None  # the guardrail verdict: pass or fail
    waiting_since: datetime
    approvers: tuple[str, ...]
    report_url: str
    required_actions_url: str
    version_url: str | None = None  # the model version in MLflow's UI, with the report among its artifacts


def is_city_approval(request: Mapping[str, Any]) -> bool:
    """Whether a HITL request (``/api/v2/hitlDetails`` item) is the approve step of a city's retraining DAG."""
    task = request["task_instance"]
    return task["dag_id"].startswith(RETRAIN_PREFIX) and task["task_id"] == APPROVE_TASK


def assigned_names(users: Iterable[Mapping[str, Any]] | None) -> tuple[str, ...]:
    """The user names of a request's ``assigned_users`` (Airflow's ``{"id", "name"}``): who Airflow lets answer it."""
    return tuple(user.get("name") or user["id"] for user in users or ())


def run_url(base_url: str, dag_id: str, run_id: str, *, task_id: str | None = None, page: str | None = None) -> str:
    """A DAG run's page in the Airflow UI, or a page (``xcom``, ``required_actions``) of one of its tasks. Run ids hold
    ``:`` and ``+``, so they are quoted (the fleet page quotes them alike)."""
    url = f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    return f"{url}/tasks/{task_id}/{page}" if task_id else url


def waiting_approval(
    request: Mapping[str, Any],
    registration: Mapping[str, Any] | None,
    *,
    city_approvers: Sequence[str],
    model_name: str | None,
    base_url: str,
) -> WaitingApproval:
    """One pending request as the digest shows it.

    The recipients are the request's assigned users (who Airflow lets answer it), else the city's approvers from its
    YAML. ``registration`` is register's result of that run (version and verdict); ``model_name`` the city's model.
    """
    task = request["task_instance"]
    dag_id, run_id = task["dag_id"], task["dag_run_id"]
    assigned = assigned_names(request.get("assigned_users"))
    registration = registration or {}
    created = request["created_at"]
    return WaitingApproval(
        city=dag_id.removeprefix(RETRAIN_PREFIX),
        dag_id=dag_id,
        run_id=run_id,
        model_name=registration.get("model_name") or model_name or "?",
        version=str(registration["version"]) if registration.get("version") is not None else None,
        verdict=registration.get("verdict"),
        waiting_since=(created if isinstance(created, datetime) else datetime.fromisoformat(created)).astimezone(
            timezone.utc
        ),
        approvers=assigned or tuple(city_approvers),
        report_url=run_url(base_url, dag_id, run_id, task_id=REPORT_TASK, page="xcom"),
        required_actions_url=run_url(base_url, dag_id, run_id, task_id=APPROVE_TASK, page="required_actions"),
        version_url=registration.get("version_url"),
    )


def by_approver(waiting: Iterable[WaitingApproval]) -> dict[str, list[WaitingApproval]]:
    """Approver -> what waits for them, oldest first; approvers sorted. Nobody appears with an empty list."""
    grouped: dict[str, list[WaitingApproval]] = {}
    for item in waiting:
        for approver in dict.fromkeys(item.approvers):
            grouped.setdefault(approver, []).append(item)
    return {
        approver: sorted(items, key=lambda i: (i.waiting_since, i.city)) for approver, items in sorted(grouped.items())
    }


@dataclass(frozen=True)
class DigestMessage:
    """One approver's digest: ``html`` for mail, ``text`` (Slack mrkdwn) for chat."""

    approver: str
    cities: tuple[str, ...]
    subject: str
    html: str
    text: str


def digest_messages(waiting: Iterable[WaitingApproval], *, now: datetime) -> list[DigestMessage]:
    """One message per approver who has something waiting."""
    return [_message(approver, items, now) for approver, items in by_approver(waiting).items()]


def _message(approver: str, items: list[WaitingApproval], now: datetime) -> DigestMessage:
    count = f"{len(items)} model approval{'s' if len(items) != 1 else ''}"
    cities = tuple(dict.fromkeys(i.city for i in items))
    waiting = f"{count} {'wait' if len(items) != 1 else 'waits'} for your decision"
    rows = "\n".join(
        "<tr>"
        f"<td>{_h(i.city)}</td><td>{_h(_version(i))}</td><td>{_h(_verdict(i))}</td><td>{_h(_since(i, now))}</td>"
        f"<td>{_links_html(i)}</td>"
        "</tr>"
        for i in items
    )
    body = (
        f"<p>{_h(waiting)}, {_h(approver)}:</p>\n"
        "<table>\n<tr><th>city</th><th>model version</th><th>guardrails</th><th>waiting since</th><th>links</th></tr>\n"
        f"{rows}\n</table>\n"
        "<p>Answer in Airflow under Browse &gt; Required Actions, or on the fleet page. No answer before a "
        "city's approval timeout means rejected.</p>"
    )
    lines = [f"*{slack(waiting)}, {slack(approver)}:*"]
    lines += [
        f"• {slack(i.city)}: {slack(_version(i))}, guardrails {slack(_verdict(i))}, "
        f"waiting since {slack(_since(i, now))}: " + " · ".join(f"<{url}|{label}>" for label, url in _links(i))
        for i in items
    ]
    return DigestMessage(approver, cities, f"{count} waiting for you: {', '.join(cities)}", body, "\n".join(lines))


def _links(item: WaitingApproval) -> list[tuple[str, str]]:
    links = [("report", item.report_url), ("Required Actions", item.required_actions_url)]
    return [*links, ("MLflow", item.version_url)] if item.version_url else links


def _links_html(item: WaitingApproval) -> str:
    return " · ".join(f'<a href="{html.escape(url, quote=True)}">{label}</a>' for label, url in _links(item))


def _version(item: WaitingApproval) -> str:
    return f"{item.model_name} v{item.version}" if item.version else f"{item.model_name} (version unknown)"


def _verdict(item: WaitingApproval) -> str:
    if item.verdict == "fail":
        return "fail (approving needs a reason)"
    return item.verdict or "unknown"


def _since(item: WaitingApproval, now: datetime) -> str:
    hours = max(0, int((now - item.waiting_since).total_seconds() // 3600))
    age = f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"
    return f"{item.waiting_since:%Y-%m-%d %H:%M} UTC ({age})"


def _h(text: str) -> str:
    """Names (an approver's comes from Airflow's users) as text in the mail: one visible line, no markup."""
    return html.escape(visible(text), quote=True)
