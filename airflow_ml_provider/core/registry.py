"""Registry rules, Airflow- and MLflow-free: alias names, audit tag names, and the compare-and-set decisions.

The MLflow calls live in ``hooks/mlflow.py``; what is allowed lives here so it can be tested without a store.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

# Values of DECISION_TAG. A version is decided once per approval request; SUPERSEDED marks a version whose DAG run
# was re-run and registered other bits, so it is no candidate any more.
APPROVED = "approved"
REJECTED = "rejected"
BLOCKED = "blocked"
SUPERSEDED = "superseded"

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
# Tags of the Airflow DAG run that registered a version (also on its MLflow runs).
DAG_ID_TAG = "airflow.dag_id"
DAG_RUN_TAG = "airflow.dag_run_id"


class StaleChampionError(RuntimeError):
    """The champion moved between evaluation and promotion: the evidence no longer applies."""


class RollbackRefused(RuntimeError):
    """The rollback target was never approved (pass ``force`` to override, with a reason)."""


@dataclass(frozen=True)
class Promotion:
    model_name: str
    version: str
    previous_champion: str | None
    already_done: bool


@dataclass(frozen=True)
class Rollback:
    model_name: str
    to_version: str
    from_version: str | None


def plan_promotion(
    model_name: str, version: str, *, expected_champion: str | None, current_champion: str | None
) -> Promotion:
    """Decide a promotion: a no-op when already done (a retried task), refused when the champion moved."""
    if current_champion == version:
        return Promotion(model_name, version, previous_champion=None, already_done=True)
    if current_champion != expected_champion:
        raise StaleChampionError(
            f"champion of {model_name} moved from {_v(expected_champion)} to {_v(current_champion)} since "
            f"evaluation; re-run the DAG so the candidate is evaluated against the current champion"
        )
    return Promotion(model_name, version, previous_champion=current_champion, already_done=False)


def plan_rollback(
    model_name: str, *, target_version: str, target_tags: dict[str, str], current_champion: str | None, force: bool
) -> Rollback:
    """A rollback may only restore a version a person once approved, unless forced."""
    if target_tags.get(DECISION_TAG) != APPROVED and not force:
        raise RollbackRefused(
            f"{model_name} v{target_version} was never approved (decision: "
            f"{target_tags.get(DECISION_TAG, 'none')}); pass force to roll back to it anyway"
        )
    return Rollback(model_name, to_version=target_version, from_version=current_champion)


def decision_tags(decision: str, *, decided_by: str, at: str, reason: str, report_sha256: str) -> dict[str, str]:
    return {
        DECISION_TAG: decision,
        DECIDED_BY_TAG: decided_by,
        DECIDED_AT_TAG: at,
        DECISION_REASON_TAG: reason or "",
        REPORT_SHA_TAG: report_sha256,
    }


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
