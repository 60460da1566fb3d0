"""Registry rules without a store: registration by bits, superseding, decisions, promotion checks, rollback rules."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_ml_provider.core import registry, rollback
from airflow_ml_provider.core.handoff import Decision, Evaluated, Promoted, Registered, Trained

A, B = "a" * 64, "b" * 64
REPORT = "r" * 64
ARTIFACT = "f" * 64
AT = "2026-06-01T10:00:00+00:00"

REGISTERED = Registered(
    model_name="eta_berlin",
    version="3",
    mlflow_run_id="run",
    model_sha256=A,
    report_sha256=REPORT,
    verdict="pass",
    needs_approval=True,
    champion_version="2",
    version_url=None,
    reused=False,
)
APPROVAL = Decision(
    model_name="eta_berlin",
    version="3",
    model_sha256=A,
    report_sha256=REPORT,
    answer=registry.APPROVE_ANSWER,
    decided_by="berlin_ops",
    reason="reviewed",
    decided_at=AT,
)
RECORDED = {
    **registry.recorded(APPROVAL, {}),
    registry.MODEL_SHA_TAG: A,
    registry.MODEL_ARTIFACT_SHA_TAG: ARTIFACT,
}


# ----- register ---------------------------------------------------------------------------------------------------


def test_first_registration_of_a_dag_run_is_a_new_version() -> None:
    assert registry.plan_registration(A, needs_approval=True, run_versions={}) == registry.Registration(None, (), ())


def test_a_retry_with_the_same_bits_reuses_the_version() -> None:
    plan = registry.plan_registration(A, needs_approval=True, run_versions={"3": {registry.MODEL_SHA_TAG: A}})
    assert plan == registry.Registration(reuse="3", supersede=(), clear_tags=())


def test_a_rerun_with_other_bits_registers_anew_and_supersedes_the_undecided() -> None:
    earlier = {
        "3": {registry.MODEL_SHA_TAG: A},  # pending approval
        "4": {registry.MODEL_SHA_TAG: "c" * 64, registry.DECISION_TAG: registry.BLOCKED},
        "5": {registry.MODEL_SHA_TAG: "d" * 64, registry.DECISION_TAG: registry.REJECTED},
        "6": {registry.MODEL_SHA_TAG: "e" * 64, registry.DECISION_TAG: registry.APPROVED},  # may be champion
    }
    plan = registry.plan_registration(B, needs_approval=True, run_versions=earlier)
    assert plan == registry.Registration(reuse=None, supersede=("3", "4", "5"), clear_tags=())


def test_a_version_registered_before_bits_were_tagged_is_superseded() -> None:
    plan = registry.plan_registration(A, needs_approval=True, run_versions={"1": {}})
    assert (plan.reuse, plan.supersede) == (None, ("1",))


def test_bits_that_come_back_revive_their_version_and_supersede_the_other() -> None:
    earlier = {
        "3": {registry.MODEL_SHA_TAG: A, **registry.superseded_tags("4", {})},
        "4": {registry.MODEL_SHA_TAG: B},
    }
    plan = registry.plan_registration(A, needs_approval=True, run_versions=earlier)
    assert plan == registry.Registration(
        reuse="3", supersede=("4",), clear_tags=(registry.SUPERSEDED_BY_TAG, registry.DECISION_TAG)
    )


def test_a_reused_blocked_version_is_unblocked_only_when_it_now_asks() -> None:
    earlier = {"3": {registry.MODEL_SHA_TAG: A, registry.DECISION_TAG: registry.BLOCKED}}
    assert registry.plan_registration(A, needs_approval=True, run_versions=earlier).clear_tags == (
        registry.DECISION_TAG,
    )
    assert registry.plan_registration(A, needs_approval=False, run_versions=earlier).clear_tags == ()


def test_a_reused_approved_version_keeps_its_approval_record() -> None:
    """A rerun with the same bits writes its evidence on the version, but not over the approval's report, and a
    guardrail block of the rerun does not replace the approval."""
    earlier = {"3": {registry.MODEL_SHA_TAG: A, **registry.recorded(APPROVAL, {})}}
    for needs_approval in (True, False):
        plan = registry.plan_registration(A, needs_approval=needs_approval, run_versions=earlier)
        assert plan == registry.Registration(reuse="3", supersede=(), clear_tags=(), keep_tags=registry.APPROVAL_RECORD)


def test_superseding_keeps_a_persons_rejection_on_record() -> None:
    assert registry.superseded_tags("5", {}) == {
        registry.SUPERSEDED_BY_TAG: "5",
        registry.DECISION_TAG: registry.SUPERSEDED,
    }
    rejected = {registry.DECISION_TAG: registry.REJECTED}
    assert registry.superseded_tags("5", rejected) == {registry.SUPERSEDED_BY_TAG: "5"}


def test_only_evaluated_bits_are_registered() -> None:
    trained = Trained(model_uri="m", model_sha256=B, train_rows=1, estimator_params={}, mlflow_run_id="r")
    evaluated = Evaluated(
        model_sha256=A,
        verdict="pass",
        champion_version=None,
        report_sha256=REPORT,
        eval_rows=1,
        summary={},
        schema_changed=False,
    )
    with pytest.raises(registry.UnevaluatedModel, match="train re-ran after evaluate"):
        registry.check_evaluated(trained, evaluated)
    registry.check_evaluated(dataclasses.replace(trained, model_sha256=A), evaluated)


def test_needs_approval_follows_the_guardrail_policy() -> None:
    assert registry.needs_approval("pass", "block") and registry.needs_approval("fail", "ask")
    assert not registry.needs_approval("fail", "block")


# ----- approve ----------------------------------------------------------------------------------------------------


def _decide(verdict: str, chosen: list[str], user: dict | None, reason: str | None) -> Decision:
    return registry.decision_of(
        dataclasses.replace(REGISTERED, verdict=verdict),
        chosen=chosen,
        responded_by=user,
        reason=reason,
        responded_at=AT,
        timeout_hours=72,
    )


def test_a_timeout_is_a_rejection_by_timeout_with_a_reason() -> None:
    decision = _decide("fail", ["Reject"], None, "")
    assert (decision.answer, decision.decided_by, decision.reason) == (
        registry.REJECT_ANSWER,
        registry.TIMEOUT_DECIDER,
        "no answer within 72 h",
    )


def test_a_reject_needs_no_reason() -> None:
    decision = _decide("fail", ["Reject"], {"id": "u1", "name": "berlin_ops"}, None)
    assert (decision.answer, decision.decided_by, decision.reason) == (registry.REJECT_ANSWER, "berlin_ops", "")


def test_approving_a_failed_candidate_without_a_reason_is_recorded_as_a_rejection() -> None:
    decision = _decide("fail", ["Approve"], {"name": "berlin_ops"}, "  ")
    assert decision.answer == registry.REJECT_ANSWER and "without a reason" in decision.reason
    assert _decide("fail", ["Approve"], {"name": "berlin_ops"}, "known outlier").answer == registry.APPROVE_ANSWER
    assert _decide("pass", ["Approve"], {"name": "berlin_ops"}, "").answer == registry.APPROVE_ANSWER


def test_a_decision_names_the_version_and_its_bits() -> None:
    decision = _decide("pass", ["Approve"], {"id": "berlin_ops"}, "ok")
    assert (decision.version, decision.model_sha256, decision.report_sha256) == ("3", A, REPORT)
    assert registry.recorded(decision, {})[registry.DECISION_TAG] == registry.APPROVED
    rejection = dataclasses.replace(decision, answer=registry.REJECT_ANSWER)
    assert registry.recorded(rejection, {})[registry.DECISION_TAG] == registry.REJECTED


def test_an_approval_stands_against_a_later_rejection_of_the_same_bits() -> None:
    """A rerun reused an approved version and asked again: a rejection or a timeout writes nothing over the approval
    (it may be what put the bits live); a new approval replaces it, and so does any answer on a rejected version."""
    rejection = dataclasses.replace(APPROVAL, answer=registry.REJECT_ANSWER, decided_by="ops_lead", decided_at="later")
    timeout = dataclasses.replace(rejection, decided_by=registry.TIMEOUT_DECIDER)
    assert registry.recorded(rejection, RECORDED) == {} and registry.recorded(timeout, RECORDED) == {}
    again = dataclasses.replace(APPROVAL, decided_by="ops_lead", decided_at="later", report_sha256=B)
    assert registry.recorded(again, RECORDED)[registry.DECIDED_AT_TAG] == "later"
    assert registry.recorded(again, RECORDED)[registry.REPORT_SHA_TAG] == B
    rejected = {**RECORDED, registry.DECISION_TAG: registry.REJECTED}
    assert registry.recorded(timeout, rejected)[registry.DECIDED_BY_TAG] == registry.TIMEOUT_DECIDER


# ----- promote ----------------------------------------------------------------------------------------------------


def _check(decision: Decision = APPROVAL, tags: dict | None = None, artifact: str = ARTIFACT) -> None:
    registry.check_promotable(
        REGISTERED,
        decision,
        approvers=["berlin_ops", "ops_lead"],
        version_tags=RECORDED if tags is None else tags,
        artifact_sha256=artifact,
    )


def test_the_approved_bits_pass_the_checks() -> None:
    _check()


@pytest.mark.parametrize(
    ("decision", "tags", "artifact", "message"),
    [
        (dataclasses.replace(APPROVAL, answer=registry.REJECT_ANSWER), None, ARTIFACT, r"the answer was \['Reject'\]"),
        (dataclasses.replace(APPROVAL, decided_by="analyst"), None, ARTIFACT, "'analyst' is not one of"),
        (dataclasses.replace(APPROVAL, version="2"), None, ARTIFACT, "approval is about eta_berlin v2"),
        (APPROVAL, {**RECORDED, registry.DECISION_TAG: registry.REJECTED}, ARTIFACT, "records decision rejected"),
        (APPROVAL, {**RECORDED, registry.DECISION_TAG: registry.BLOCKED}, ARTIFACT, "records decision blocked"),
        (APPROVAL, {**RECORDED, registry.DECIDED_AT_TAG: "later"}, ARTIFACT, "not this approval"),
        (APPROVAL, {**RECORDED, registry.SUPERSEDED_BY_TAG: "4"}, ARTIFACT, "superseded by v4"),
        (APPROVAL, {**RECORDED, registry.REPORT_SHA_TAG: "x"}, ARTIFACT, "report_sha256 differs"),
        (dataclasses.replace(APPROVAL, report_sha256="x"), None, ARTIFACT, "report_sha256 differs"),
        (APPROVAL, {**RECORDED, registry.MODEL_SHA_TAG: B}, ARTIFACT, "model_sha256 differs"),
        (dataclasses.replace(APPROVAL, model_sha256=B), None, ARTIFACT, "model_sha256 differs"),
        (APPROVAL, None, "0" * 64, "MLflow's model file .* is not the file registered"),
    ],
    ids=[
        "rejected answer",
        "not an approver",
        "other version",
        "version rejected",
        "version blocked",
        "other approval",
        "superseded",
        "report changed on the version",
        "approved another report",
        "bits changed on the version",
        "approved other bits",
        "model file replaced",
    ],
)
def test_promotion_is_refused_unless_every_check_holds(
    decision: Decision, tags: dict | None, artifact: str, message: str
) -> None:
    with pytest.raises(registry.PromotionRefused, match=f"eta_berlin v3 not promoted: .*{message}"):
        _check(decision, tags, artifact)


def _promote(champion_version: str | None, current_champion: str | None) -> Promoted:
    registered = dataclasses.replace(REGISTERED, champion_version=champion_version)
    return registry.plan_promotion(registered, APPROVAL, current_champion=current_champion)


def test_first_promotion_has_no_previous_champion() -> None:
    assert _promote(None, None) == Promoted(
        model_name="eta_berlin",
        champion="3",
        previous_champion=None,
        approved_by="berlin_ops",
        model_sha256=A,
        already_done=False,
    )


def test_promotion_keeps_the_old_champion_as_previous() -> None:
    plan = _promote("2", "2")
    assert plan.previous_champion == "2" and not plan.already_done


def test_stale_champion_refuses_promotion() -> None:
    with pytest.raises(
        registry.StaleChampionError, match="champion of eta_berlin moved from v2 to v4 since evaluation"
    ):
        _promote("2", "4")


def test_retried_promotion_is_a_no_op() -> None:
    assert _promote("2", "3").already_done


# ----- rollback ---------------------------------------------------------------------------------------------------


AT = "2026-06-02T10:00:00+00:00"


def _rollback(tags: dict, *, target: str = "2", force: bool = False, by: str = "oncall") -> rollback.Rollback:
    return rollback.plan_rollback(
        "eta_berlin",
        target_version=target,
        target_tags=tags,
        current_champion="3",
        force=force,
        triggered_by=by,
        approvers=["berlin_ops"],
        reason="incident 42",
        at=AT,
    )


def test_rollback_restores_an_approved_version() -> None:
    plan = _rollback({registry.DECISION_TAG: registry.APPROVED})
    assert (plan.to_version, plan.from_version) == ("2", "3")


def test_rollback_to_a_version_never_decided_needs_force() -> None:
    with pytest.raises(rollback.RollbackRefused, match="v2 was never approved"):
        _rollback({})
    assert _rollback({}, force=True).to_version == "2"


@pytest.mark.parametrize("decision", [registry.REJECTED, registry.BLOCKED, registry.SUPERSEDED])
def test_rollback_never_restores_rejected_blocked_or_superseded_even_forced(decision: str) -> None:
    with pytest.raises(rollback.RollbackRefused, match=f"v2 was {decision}.*never restores it, even forced"):
        _rollback({registry.DECISION_TAG: decision, registry.DECIDED_BY_TAG: "berlin_ops"}, force=True)


def test_rollback_forward_is_a_promotion_only_an_approver_may_run() -> None:
    approved = {registry.DECISION_TAG: registry.APPROVED}
    with pytest.raises(rollback.RollbackRefused, match=r"v4 is newer than the champion v3.*oncall is not one"):
        _rollback(approved, target="4")
    assert _rollback(approved, target="4", by="berlin_ops").to_version == "4"


def test_rollback_never_targets_the_champion_itself() -> None:
    """A retry that resolved previous_champion after champion moved would otherwise record v3 -> v3."""
    with pytest.raises(rollback.RollbackRefused, match="v3 is the champion already"):
        _rollback({registry.DECISION_TAG: registry.APPROVED}, target="3")


def _unfinished(
    champion_tags: dict, *, from_at: str | None = AT, previous: str | None = "2", recorded: str | None = "3"
) -> rollback.Rollback | None:
    return rollback.unfinished_rollback(
        "eta_berlin",
        champion="2",
        champion_tags=champion_tags,
        from_tags={registry.ROLLED_BACK_AT_TAG: from_at} if from_at else {},
        previous_champion=previous,
        recorded_champion=recorded,
    )


def test_a_rollback_interrupted_after_moving_champion_is_found_with_its_own_values() -> None:
    """Champion v2 was restored from v3 (its tags, and v3's rolled_back_at, carry the same time); previous_champion
    or the ledger does not show it yet: a retry finishes this rollback, whatever it resolves as its target."""
    tags = _rollback({registry.DECISION_TAG: registry.APPROVED}).target_tags()
    for previous, recorded in (("2", "3"), ("3", "3"), ("2", None)):
        found = _unfinished(tags, previous=previous, recorded=recorded)
        assert found is not None and found.resumed, (previous, recorded)
        assert (found.from_version, found.to_version, found.who, found.why, found.at) == (
            "3", "2", "oncall", "incident 42", AT
        )  # fmt: skip
    assert _unfinished(tags, previous="3", recorded="2") is None  # finished and recorded
    assert _unfinished(tags, previous="3", recorded=None) is None  # finished; the ledger holds no champion yet
    assert _unfinished(tags, from_at="2026-01-01T00:00:00+00:00") is None  # v2 was promoted again since
    assert _unfinished(tags, from_at=None) is None
    assert _unfinished({registry.DECISION_TAG: registry.APPROVED}, from_at=None) is None  # never rolled back to


def test_while_a_rollback_is_unfinished_only_finishing_it_is_allowed() -> None:
    unfinished = _unfinished(_rollback({registry.DECISION_TAG: registry.APPROVED}).target_tags())
    assert rollback.resume_rollback(unfinished, requested=None) == unfinished
    assert rollback.resume_rollback(unfinished, requested="2") == unfinished
    with pytest.raises(rollback.RollbackRefused, match=r"from v3 to v2 by oncall .* was interrupted"):
        rollback.resume_rollback(unfinished, requested="1")


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


def test_rollback_refuses_a_superseded_version_whatever_was_recorded_on_it_later() -> None:
    tags = {registry.DECISION_TAG: registry.APPROVED, registry.SUPERSEDED_BY_TAG: "5"}
    with pytest.raises(rollback.RollbackRefused, match="v2 was superseded"):
        _rollback(tags, force=True)
