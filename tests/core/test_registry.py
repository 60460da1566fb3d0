"""Registry rules without a store: compare-and-set promotion, retried promotion, rollback refusal."""

from __future__ import annotations

import pytest

from airflow_ml_provider.core import registry


def test_first_promotion_has_no_previous_champion() -> None:
    plan = registry.plan_promotion("eta_berlin", "1", expected_champion=None, current_champion=None)
    assert plan == registry.Promotion("eta_berlin", "1", previous_champion=None, already_done=False)


def test_promotion_keeps_the_old_champion_as_previous() -> None:
    plan = registry.plan_promotion("eta_berlin", "3", expected_champion="2", current_champion="2")
    assert plan.previous_champion == "2" and not plan.already_done


def test_stale_champion_refuses_promotion() -> None:
    with pytest.raises(
        registry.StaleChampionError, match="champion of eta_berlin moved from v2 to v4 since evaluation"
    ):
        registry.plan_promotion("eta_berlin", "3", expected_champion="2", current_champion="4")


def test_retried_promotion_is_a_no_op() -> None:
    assert registry.plan_promotion("eta_berlin", "3", expected_champion="2", current_champion="3").already_done


def test_rollback_refuses_a_version_never_approved_unless_forced() -> None:
    blocked = {registry.DECISION_TAG: registry.BLOCKED}
    with pytest.raises(registry.RollbackRefused, match="v2 was never approved"):
        registry.plan_rollback("eta_berlin", target_version="2", target_tags=blocked, current_champion="3", force=False)
    plan = registry.plan_rollback(
        "eta_berlin", target_version="2", target_tags=blocked, current_champion="3", force=True
    )
    assert (plan.to_version, plan.from_version) == ("2", "3")


def test_decision_tags_answer_who_when_why() -> None:
    tags = registry.decision_tags(
        "approved",
        decided_by="berlin_ops",
        at="2026-11-23T10:00:00+00:00",
        reason="looks good",
        report_sha256="ab" * 32,
    )
    assert tags[registry.DECIDED_BY_TAG] == "berlin_ops"
    assert tags[registry.DECISION_REASON_TAG] == "looks good"
