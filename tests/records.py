"""Step results and ledger histories for tests, with plausible values for the fields a test does not look at."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from airflow_ml_provider.core import registry
from airflow_ml_provider.core.handoff import Decision, Registered
from airflow_ml_provider.core.ledger import Ledger, Move

# (kind, version, from_version, to_version, who, why, day): an event ``day`` days after the history starts.
Event = tuple[str, str, str | None, str | None, str, str, int]
EVENT_FIELDS = ("kind", "version", "from_version", "to_version", "who", "why")


def registered(**fields: Any) -> Registered:
    """register's result for a passing candidate of a model without a champion; ``fields`` replace any of it."""
    return Registered(
        **{
            "model_name": "eta_berlin",
            "version": "1",
            "mlflow_run_id": "run",
            "model_sha256": "m" * 64,
            "report_sha256": "r" * 64,
            "verdict": "pass",
            "needs_approval": True,
            "champion_version": None,
            "version_url": None,
            "reused": False,
            **fields,
        }
    )


def approval(**fields: Any) -> Decision:
    """approve's result: an approver approved :func:`registered`'s candidate; ``fields`` replace any of it."""
    return Decision(
        **{
            "model_name": "eta_berlin",
            "version": "1",
            "model_sha256": "m" * 64,
            "report_sha256": "r" * 64,
            "answer": registry.APPROVE_ANSWER,
            "decided_by": "berlin_ops",
            "reason": "reviewed",
            "decided_at": "2026-06-01T10:00:00+00:00",
            **fields,
        }
    )


def append_history(book: Ledger, model_name: str, events: Iterable[Event], *, start: datetime, **fields: Any) -> None:
    """Append the events, each in the DAG run ``manual__<day>`` of ``retrain_<city>``; ``fields`` add to each."""
    for *told, day in events:
        where = {"dag_id": f"retrain_{book.city}", "dag_run_id": f"manual__{day}"}
        move = Move(model_name=model_name, **dict(zip(EVENT_FIELDS, told, strict=True)), **where, **fields)
        book.append(move, at=start + timedelta(days=day))
