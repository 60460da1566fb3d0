"""`airflow-ml approvals` reads a pending request as Airflow's HITL API returns it."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ml_provider.operators.approve import approval_form
from airflow_ml_provider.tools.approvals import PendingApproval


def hitl_detail(*, guardrails_failed: bool) -> dict[str, Any]:
    """A pending request's detail with the approval form serialized as the ApprovalOperator stores it."""
    form = approval_form(guardrails_failed=guardrails_failed)
    return {
        "task_instance": {"dag_id": "retrain_berlin", "dag_run_id": "manual__1", "task_id": "approve"},
        "subject": "berlin v3",
        "assigned_users": [{"id": "berlin_ops", "name": "berlin_ops"}],
        "created_at": "2026-12-03T10:00:00Z",
        "params": {name: form.get_param(name).serialize() for name in form},
    }


@pytest.mark.parametrize("failed", [True, False])
def test_a_pending_request_says_whether_approving_needs_a_reason(failed: bool) -> None:
    pending = PendingApproval.of(hitl_detail(guardrails_failed=failed))
    assert (pending.city, pending.approvers, pending.guardrails_failed) == ("berlin", ("berlin_ops",), failed)
