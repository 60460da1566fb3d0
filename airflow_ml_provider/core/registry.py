"""Registry rules, Airflow- and MLflow-free: alias and tag names, and what register, approve and promote may do
(rollback's rules: ``core/rollback.py``). ``hooks/mlflow.py`` executes these plans; the rules live here so they are
tested without a store.

A candidate is its bits: a version carries the sha256 of the model ``evaluate`` scored (``MODEL_SHA_TAG``) and of the
file MLflow stored (``MODEL_ARTIFACT_SHA_TAG``). A rerun of a DAG run reuses its version only for the same bits;
other bits get a new version and the run's older undecided versions are superseded. ``promote`` moves ``champion``
only to the version an approver of the city approved, with the report and the bits that approval was about.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from airflow_ml_provider.core.handoff import Decision, Evaluated, Promoted, Registered, Trained, Validated

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

# Values of DECISION_TAG. A version is decided once per approval request; SUPERSEDED marks a version whose DAG run
# was re-run and registered other bits, so it is no candidate any more. An approval stands once given: a later
# rejection, timeout or block about the same bits (a rerun of the DAG run reusing the version) is not written over it.
APPROVED = "approved"
REJECTED = "rejected"
BLOCKED = "blocked"
SUPERSEDED = "superseded"
# The approval form's reason title when the candidate failed its guardrails: how readers of a pending request (the
# CLI, the fleet page) tell that approving it needs a reason.
REASON_REQUIRED_TITLE = "Reason (required to approve: guardrails failed)"

TAG_PREFIX = "airflow_ml."
DECISION_TAG = TAG_PREFIX + "decision"
DECIDED_BY_TAG = TAG_PREFIX + "decided_by"
DECIDED_AT_TAG = TAG_PREFIX + "decided_at"
DECISION_REASON_TAG = TAG_PREFIX + "decision_reason"
REPORT_SHA_TAG = TAG_PREFIX + "report_sha256"
PROMOTED_AT_TAG = TAG_PREFIX + "promoted_at"
PROMOTED_BY_TAG = TAG_PREFIX + "promoted_by"
ROLLBACK_REASON_TAG = TAG_PREFIX + "rollback_reason"
ROLLBACK_FROM_TAG = TAG_PREFIX + "rollback_from_version"
ROLLED_BACK_AT_TAG = TAG_PREFIX + "rolled_back_at"
VERDICT_TAG = TAG_PREFIX + "guardrail_verdict"
EVALUATED_AGAINST_TAG = TAG_PREFIX + "evaluated_against_champion"
CODE_COMMIT_TAG = TAG_PREFIX + "code_commit"
# A candidate is its bits: the sha256 of the pickle ``train`` wrote and ``evaluate`` scored, and the sha256 of the
# model file (``model.pkl``) as MLflow stored it for this version. ``promote`` checks both before moving champion.
MODEL_SHA_TAG = TAG_PREFIX + "model_sha256"
MODEL_ARTIFACT_SHA_TAG = TAG_PREFIX + "model_artifact_sha256"
# On a superseded version: the version of the same DAG run that replaced it.
SUPERSEDED_BY_TAG = TAG_PREFIX + "superseded_by"
# What records an approval's answer on a version (written by decision_tags).
APPROVAL_RECORD = (DECISION_TAG, DECIDED_BY_TAG, DECIDED_AT_TAG, DECISION_REASON_TAG, REPORT_SHA_TAG)
# Airflow's ApprovalOperator options (its APPROVE and REJECT), what its HITL API takes as an answer; the answers as
# chosen_options; and who "answered" when the scheduler applied the default answer at the response timeout.
APPROVE, REJECT = "Approve", "Reject"
APPROVE_ANSWER = (APPROVE,)
REJECT_ANSWER = (REJECT,)
TIMEOUT_DECIDER = "timeout"

# Tags of the Airflow DAG run that registered a version (also on its MLflow runs).
DAG_ID_TAG = "airflow.dag_id"
DAG_RUN_TAG = "airflow.dag_run_id"


class StaleChampionError(RuntimeError):
    """The champion moved between evaluation and promotion: the evidence no longer applies."""


class PromotionRefused(RuntimeError):
    """The decision, the report or the bits do not check out; promoting anyway would put unapproved bits live."""


class UnevaluatedModel(RuntimeError):
    """register was handed a model other than the one evaluate scored (train re-ran without evaluate)."""


@dataclass(frozen=True)
class Registration:
    """What register does: reuse the DAG run's version holding these bits, or register a new one; supersede the rest."""

    reuse: str | None
    supersede: tuple[str, ...]  # other undecided versions of this DAG run: tagged superseded, lose challenger
    clear_tags: tuple[str, ...]  # stale state tags of the reused version, now the DAG run's candidate again
    # The reused version's approval record: this attempt's evidence does not replace its report, nor blocks it.
    keep_tags: tuple[str, ...] = ()


def check_evaluated(trained: Trained, evaluated: Evaluated) -> None:
    """Only the bits evaluate scored may be registered."""
    if trained.model_sha256 != evaluated.model_sha256:
        raise UnevaluatedModel(
            f"train's model (sha256 {trained.model_sha256[:12]}) is not the one evaluate scored "
            f"({evaluated.model_sha256[:12]}): train re-ran after evaluate. Clear train with downstream"
        )


def needs_approval(verdict: str, on_guardrail_failure: str) -> bool:
    """A passing candidate asks the approvers; a failing one only under ``on_guardrail_failure: ask``."""
    return verdict == "pass" or on_guardrail_failure == "ask"


def plan_registration(
    model_sha256: str, *, needs_approval: bool, run_versions: Mapping[str, Mapping[str, str]]
) -> Registration:
    """``run_versions``: version -> tags of every version this DAG run registered before (a retry or a rerun)."""
    same_bits = [v for v, tags in run_versions.items() if tags.get(MODEL_SHA_TAG) == model_sha256]
    reuse = max(same_bits, key=int) if same_bits else None
    supersede = tuple(
        sorted(
            (
                v
                for v, tags in run_versions.items()
                if v != reuse and tags.get(DECISION_TAG) != APPROVED and SUPERSEDED_BY_TAG not in tags
            ),
            key=int,
        )
    )
    clear: list[str] = []
    keep: tuple[str, ...] = ()
    if reuse is not None:
        tags = run_versions[reuse]
        if tags.get(DECISION_TAG) == APPROVED:
            keep = APPROVAL_RECORD
        if SUPERSEDED_BY_TAG in tags:
            clear.append(SUPERSEDED_BY_TAG)
        if tags.get(DECISION_TAG) == SUPERSEDED or (tags.get(DECISION_TAG) == BLOCKED and needs_approval):
            clear.append(DECISION_TAG)
    return Registration(reuse=reuse, supersede=supersede, clear_tags=tuple(clear), keep_tags=keep)


def superseded_tags(by_version: str, tags: Mapping[str, str]) -> dict[str, str]:
    """A person's rejection stays on record; a version nobody decided on is marked superseded."""
    if tags.get(DECISION_TAG) == REJECTED:
        return {SUPERSEDED_BY_TAG: by_version}
    return {SUPERSEDED_BY_TAG: by_version, DECISION_TAG: SUPERSEDED}


def lineage_tags(
    *,
    city: str,
    package_version: str,
    config_sha256: str,
    run_reason: str,
    validated: Validated,
    trained: Trained,
    evaluated: Evaluated,
    code_commit: str | None,
) -> dict[str, str]:
    """What a model version says about where it came from: code, config, data, bits, evidence, libraries."""
    tags = {
        "city": city,
        TAG_PREFIX + "package_version": package_version,
        TAG_PREFIX + "config_sha256": config_sha256,
        TAG_PREFIX + "data_uri": validated.data_uri,
        TAG_PREFIX + "snapshot_uri": validated.snapshot_uri,
        TAG_PREFIX + "snapshot_sha256": validated.snapshot_sha256,
        TAG_PREFIX + "train_rows": str(trained.train_rows),
        TAG_PREFIX + "eval_rows": str(evaluated.eval_rows),
        TAG_PREFIX + "run_reason": run_reason,
        MODEL_SHA_TAG: evaluated.model_sha256,
        VERDICT_TAG: evaluated.verdict,
        EVALUATED_AGAINST_TAG: evaluated.champion_version or "none",
        REPORT_SHA_TAG: evaluated.report_sha256,
        **library_versions(),
    }
    if code_commit:
        tags[CODE_COMMIT_TAG] = code_commit
    return tags


def decision_of(
    registered: Registered,
    *,
    chosen: Sequence[str],
    responded_by: Mapping[str, str] | None,
    reason: str | None,
    responded_at: str,
    timeout_hours: float,
) -> Decision:
    """The approval's answer as recorded. Silence is a rejection; approving a candidate that failed its guardrails
    needs a reason, and an approval without one is recorded as a rejection saying so."""
    user = responded_by or {}
    decided_by = user.get("name") or user.get("id") or TIMEOUT_DECIDER
    answer = tuple(chosen)
    reason = (reason or "").strip()
    if decided_by == TIMEOUT_DECIDER and not reason:
        reason = f"no answer within {timeout_hours:g} h"
    if answer == APPROVE_ANSWER and registered.verdict != "pass" and not reason:
        answer = REJECT_ANSWER
        reason = (
            "approved without a reason, which a candidate that failed its guardrails needs; recorded as a "
            "rejection (clear the approve task to answer again)"
        )
    return Decision(
        model_name=registered.model_name,
        version=registered.version,
        model_sha256=registered.model_sha256,
        report_sha256=registered.report_sha256,
        answer=answer,
        decided_by=decided_by,
        reason=reason,
        decided_at=responded_at,
    )


def decision_tags(decision: str, *, decided_by: str, at: str, reason: str, report_sha256: str) -> dict[str, str]:
    return {
        DECISION_TAG: decision,
        DECIDED_BY_TAG: decided_by,
        DECIDED_AT_TAG: at,
        DECISION_REASON_TAG: reason or "",
        REPORT_SHA_TAG: report_sha256,
    }


def recorded(decision: Decision, version_tags: Mapping[str, str]) -> dict[str, str]:
    """The version tags that record an approval's answer. A rejection or a timeout about a version that is approved
    already (a rerun of its DAG run reused it for the same bits) writes nothing: that approval may be what put these
    bits live, and audit and rollback read it; the rejection is in the promotion ledger. A new approval replaces an
    old one (promote checks that the version records this one)."""
    if decision.answer != APPROVE_ANSWER and version_tags.get(DECISION_TAG) == APPROVED:
        return {}
    return decision_tags(
        APPROVED if decision.answer == APPROVE_ANSWER else REJECTED,
        decided_by=decision.decided_by,
        at=decision.decided_at,
        reason=decision.reason,
        report_sha256=decision.report_sha256,
    )


def check_promotable(
    registered: Registered,
    decision: Decision,
    *,
    approvers: Sequence[str],
    version_tags: Mapping[str, str],
    artifact_sha256: str,
) -> None:
    """promote re-checks the decision itself: nothing but the approved bits, approved by an approver, goes live."""
    problems = []
    if decision.answer != APPROVE_ANSWER:
        problems.append(f"the answer was {list(decision.answer)}, not {list(APPROVE_ANSWER)}")
    if decision.decided_by not in approvers:
        problems.append(f"{decision.decided_by!r} is not one of approval.approvers {list(approvers)}")
    if (decision.model_name, decision.version) != (registered.model_name, registered.version):
        problems.append(
            f"the approval is about {decision.model_name} v{decision.version}, register registered "
            f"{registered.model_name} v{registered.version}"
        )
    recorded_as = (version_tags.get(DECISION_TAG), version_tags.get(DECIDED_BY_TAG), version_tags.get(DECIDED_AT_TAG))
    if recorded_as != (APPROVED, decision.decided_by, decision.decided_at):
        problems.append(
            f"the version records decision {recorded_as[0] or 'none'} by {recorded_as[1] or 'nobody'} at "
            f"{recorded_as[2] or '-'}, not this approval"
        )
    if SUPERSEDED_BY_TAG in version_tags:
        problems.append(f"it was superseded by v{version_tags[SUPERSEDED_BY_TAG]} (a rerun registered other bits)")
    shas = {registered.report_sha256, decision.report_sha256, version_tags.get(REPORT_SHA_TAG)}
    if len(shas) != 1:
        problems.append("the report on the version is not the report that was approved (report_sha256 differs)")
    shas = {registered.model_sha256, decision.model_sha256, version_tags.get(MODEL_SHA_TAG)}
    if len(shas) != 1:
        problems.append("the model on the version is not the model that was evaluated (model_sha256 differs)")
    if version_tags.get(MODEL_ARTIFACT_SHA_TAG) != artifact_sha256:
        problems.append(
            f"MLflow's model file (sha256 {artifact_sha256[:12]}) is not the file registered "
            f"({(version_tags.get(MODEL_ARTIFACT_SHA_TAG) or 'none')[:12]})"
        )
    if problems:
        raise PromotionRefused(f"{registered.model_name} v{registered.version} not promoted: " + "; ".join(problems))


def plan_promotion(registered: Registered, decision: Decision, *, current_champion: str | None) -> Promoted:
    """What promote does, as its result: nothing when the version is champion already (a retried task), refused
    when the champion moved since evaluation, else the version replaces ``current_champion``."""
    already_done = current_champion == registered.version
    if not already_done and current_champion != registered.champion_version:
        raise StaleChampionError(
            f"champion of {registered.model_name} moved from {_v(registered.champion_version)} to "
            f"{_v(current_champion)} since evaluation; re-run the DAG so the candidate is evaluated against the "
            "current champion"
        )
    return Promoted(
        model_name=registered.model_name,
        champion=registered.version,
        previous_champion=None if already_done else current_champion,
        approved_by=decision.decided_by,
        model_sha256=registered.model_sha256,
        already_done=already_done,
    )


def library_versions() -> dict[str, str]:
    """Versions that decide whether a model can be loaded and retrained a year later."""
    import pandas
    import sklearn

    return {
        TAG_PREFIX + "python_version": platform.python_version(),
        TAG_PREFIX + "sklearn_version": sklearn.__version__,
        TAG_PREFIX + "pandas_version": pandas.__version__,
    }


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"
