"""Rollback rules, Airflow- and MLflow-free: which version a rollback may restore and by whom, and how a rollback
that was interrupted is recognised and finished, so the rollback DAG and ``airflow-ml rollback`` are safe to retry.
``hooks/mlflow_candidates.py`` executes these plans; alias and tag names are in ``core/registry.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from airflow_ml_provider.core.registry import (
    APPROVED,
    BLOCKED,
    DECIDED_BY_TAG,
    DECISION_TAG,
    MODEL_SHA_TAG,
    PROMOTED_AT_TAG,
    PROMOTED_BY_TAG,
    REJECTED,
    ROLLBACK_FROM_TAG,
    ROLLBACK_REASON_TAG,
    ROLLED_BACK_AT_TAG,
    SUPERSEDED,
    SUPERSEDED_BY_TAG,
)


class RollbackRefused(RuntimeError):
    """The rollback target may not become champion this way (see :func:`plan_rollback`)."""


@dataclass(frozen=True)
class Rollback:
    """A rollback as its tags on the restored version record it; a retry finishes it with these same values."""

    model_name: str
    to_version: str
    from_version: str | None
    model_sha256: str | None  # of the restored version, for the ledger
    who: str
    why: str
    at: str  # ISO time; also the from-version's ROLLED_BACK_AT_TAG, which ties the two versions' tags together
    resumed: bool = False  # an interrupted rollback found on champion and finished, not a new one

    def target_tags(self) -> dict[str, str]:
        """Written on the restored version before any alias moves, so a retry can recognise and finish it."""
        return {
            PROMOTED_AT_TAG: self.at,
            PROMOTED_BY_TAG: self.who,
            ROLLBACK_REASON_TAG: self.why,
            ROLLBACK_FROM_TAG: self.from_version or "",
        }


def unfinished_rollback(
    model_name: str,
    *,
    champion: str | None,
    champion_tags: Mapping[str, str],
    from_tags: Mapping[str, str],
    previous_champion: str | None,
    recorded_champion: str | None,
) -> Rollback | None:
    """The rollback that moved ``champion`` when a step after that move is missing, else None.

    A rollback writes, in this order: its tags on the restored version (:meth:`Rollback.target_tags`), the same
    time as ``ROLLED_BACK_AT_TAG`` on the version it rolls back from, ``champion``, ``previous_champion``, then the
    ledger event. ``champion`` was put there by a rollback when its ``PROMOTED_AT_TAG`` is its from-version's
    ``ROLLED_BACK_AT_TAG`` (a later promotion of it writes a new time). That rollback is finished when
    ``previous_champion`` is its from-version and the ledger's last champion (``recorded_champion``) is the
    champion, or the ledger recorded no champion (one from before the ledger); ``previous_champion == champion``
    never is."""
    from_version = champion_tags.get(ROLLBACK_FROM_TAG)
    at = champion_tags.get(PROMOTED_AT_TAG)
    if champion is None or not from_version or not at or from_tags.get(ROLLED_BACK_AT_TAG) != at:
        return None
    if previous_champion == from_version and recorded_champion in (None, champion):
        return None
    return Rollback(
        model_name,
        to_version=champion,
        from_version=from_version,
        model_sha256=champion_tags.get(MODEL_SHA_TAG),
        who=champion_tags.get(PROMOTED_BY_TAG, ""),
        why=champion_tags.get(ROLLBACK_REASON_TAG, ""),
        at=at,
        resumed=True,
    )


def resume_rollback(unfinished: Rollback, *, requested: str | None) -> Rollback:
    """What a rollback request does while ``unfinished`` (:func:`unfinished_rollback`) is pending: finish it when
    the request is a retry of it (``requested`` is its version, or None for previous_champion); refuse a request
    for another version, which would bury it."""
    if requested not in (None, unfinished.to_version):
        raise RollbackRefused(
            f"{unfinished.model_name}: the rollback from v{unfinished.from_version} to v{unfinished.to_version} by "
            f"{unfinished.who} ({unfinished.why}) was interrupted; roll back to previous_champion or "
            f"v{unfinished.to_version} to finish it first, then to v{requested}"
        )
    return unfinished


def plan_rollback(
    model_name: str,
    *,
    target_version: str,
    target_tags: Mapping[str, str],
    current_champion: str | None,
    force: bool,
    triggered_by: str,
    approvers: Sequence[str],
    reason: str,
    at: str,
) -> Rollback:
    """A rollback restores a version a person approved. Rejected, blocked and superseded versions never; a version
    nobody decided on only when forced; a version newer than the champion (a promotion in disguise) only when an
    approver of the city runs it; never the champion itself (check :func:`unfinished_rollback` first)."""
    if target_version == current_champion:
        raise RollbackRefused(
            f"{model_name} v{target_version} is the champion already, nothing to roll back; if previous_champion "
            "points at it too, name the version to restore (airflow-ml status lists them)"
        )
    decision = target_tags.get(DECISION_TAG)
    if SUPERSEDED_BY_TAG in target_tags:
        decision = SUPERSEDED  # whatever was recorded after: its DAG run registered other bits in its place
    if decision in (REJECTED, BLOCKED, SUPERSEDED):
        by = f" by {target_tags[DECIDED_BY_TAG]}" if decision == REJECTED and DECIDED_BY_TAG in target_tags else ""
        raise RollbackRefused(
            f"{model_name} v{target_version} was {decision}{by}; a rollback never restores it, even forced. "
            "Pick an approved version (airflow-ml status lists them)"
        )
    if decision != APPROVED and not force:
        raise RollbackRefused(
            f"{model_name} v{target_version} was never approved (decision: {decision or 'none'}); "
            "pass force to roll back to it anyway"
        )
    if current_champion is not None and int(target_version) > int(current_champion) and triggered_by not in approvers:
        raise RollbackRefused(
            f"{model_name} v{target_version} is newer than the champion v{current_champion}: moving forward is a "
            f"promotion, which only an approver of the city ({', '.join(approvers)}) may run; {triggered_by} is not one"
        )
    return Rollback(
        model_name,
        to_version=target_version,
        from_version=current_champion,
        model_sha256=target_tags.get(MODEL_SHA_TAG),
        who=triggered_by,
        why=reason,
        at=at,
    )
