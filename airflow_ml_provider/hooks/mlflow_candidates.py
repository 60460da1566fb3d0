"""The candidate workflow of :class:`~airflow_ml_provider.hooks.mlflow.MlflowHook`: register a candidate by its bits,
record decisions, promote, roll back. Each method reads what a rule of ``core/registry.py`` needs through the hook's
own calls, applies the rule, and executes its plan. Kept apart from the hook's plain MLflow access for size; it is
part of MlflowHook, not a second way to MLflow.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import registry, rollback
from airflow_ml_provider.core.handoff import Decision, Promoted, Registered
from airflow_ml_provider.core.registry import DAG_RUN_TAG

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import VersionInfo

MODEL_FILE = "model.pkl"  # the sklearn flavour's file, with serialization_format="pickle"


def serving_requirements() -> list[str]:
    """The pinned libraries the pipeline needs to load and predict. Given explicitly, MLflow skips inferring them
    (a subprocess that loads the model: tens of seconds per registration on a small worker)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "scipy")]


class CandidateWorkflow:
    """Mixed into MlflowHook, whose ``client``, ``log``, ``versions_of_dag_run``, ``version_by_alias``,
    ``get_version``, ``set_version_tags``, ``set_alias``, ``delete_alias`` and ``_file_sha256`` it uses."""

    def register_candidate(
        self,
        *,
        model_name: str,
        run_id: str,
        model: Any,
        input_example: Any,
        tags: dict[str, str],
        dag_run_id: str,
        needs_approval: bool,
    ) -> tuple[VersionInfo, bool]:
        """Register the evaluated bits (``tags`` carry their MODEL_SHA_TAG) for a DAG run, as
        :func:`registry.plan_registration` says: reuse the run's version holding the same bits, else a new version;
        the run's other undecided versions are superseded. Returns the version and whether it was reused.
        Safe to retry at any point: the version is created with the DAG run and the bits in its tags."""
        model_sha256 = tags[registry.MODEL_SHA_TAG]
        earlier = self.versions_of_dag_run(model_name, dag_run_id)
        plan = registry.plan_registration(
            model_sha256, needs_approval=needs_approval, run_versions={v.version: v.tags for v in earlier}
        )
        if plan.reuse is not None:
            version = plan.reuse
            self.log.info(
                "DAG run %s registered these bits before as %s v%s; reusing it", dag_run_id, model_name, version
            )
            for key in plan.clear_tags:
                self.client.delete_model_version_tag(model_name, version, key)
        else:
            version = self._log_and_register(
                model_name, run_id, model, input_example, {**tags, DAG_RUN_TAG: dag_run_id}
            )
        # This attempt's evidence (a new report on a reused version), but not over the reused version's approval.
        self.set_version_tags(model_name, version, {k: v for k, v in tags.items() if k not in plan.keep_tags})
        challenger = self.version_by_alias(model_name, registry.CHALLENGER)
        for old in (v for v in earlier if v.version in plan.supersede):
            self.log.info(
                "%s v%s is superseded by v%s (other bits from the same DAG run)", model_name, old.version, version
            )
            self.set_version_tags(model_name, old.version, registry.superseded_tags(version, old.tags))
            if challenger is not None and challenger.version == old.version:
                self.delete_alias(model_name, registry.CHALLENGER)
        if needs_approval:
            self.set_alias(model_name, registry.CHALLENGER, version)
        elif registry.DECISION_TAG not in plan.keep_tags:
            self.set_version_tags(model_name, version, {registry.DECISION_TAG: registry.BLOCKED})
        return self.get_version(model_name, version), plan.reuse is not None

    def _log_and_register(
        self, model_name: str, run_id: str, model: Any, input_example: Any, tags: dict[str, str]
    ) -> str:
        """Log the sklearn pipeline to the run (signature, input example) and create a version of it, tagged with
        the sha256 of the model file MLflow stored."""
        import mlflow
        import mlflow.sklearn
        from mlflow.exceptions import MlflowException
        from mlflow.models import infer_signature

        self.client  # noqa: B018 - sets the tracking and registry URIs for the fluent API
        signature = infer_signature(input_example, model.predict(input_example))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=input_example,
                serialization_format="pickle",
                pip_requirements=serving_requirements(),
            )
        location = self.client.get_logged_model(info.model_id).artifact_location
        artifact_sha256 = self._file_sha256(f"{location.rstrip('/')}/{MODEL_FILE}")
        try:
            self.client.create_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        created = self.client.create_model_version(
            # model_id links the version to MLflow 3's logged model; a tracking server requires it.
            model_name,
            info.model_uri,
            run_id=run_id,
            tags={**tags, registry.MODEL_ARTIFACT_SHA_TAG: artifact_sha256},
            model_id=info.model_id,
        )
        return str(created.version)

    def record_decision(self, decision: Decision) -> None:
        """Write an approval's answer on the version (:func:`registry.recorded`: not over an earlier approval); a
        rejection (or timeout) also takes ``challenger`` away."""
        tags = registry.recorded(decision, self.get_version(decision.model_name, decision.version).tags)
        if not tags:
            self.log.info(
                "%s v%s keeps its approval; this answer (%s by %s) is recorded in the promotion ledger",
                decision.model_name,
                decision.version,
                list(decision.answer),
                decision.decided_by,
            )
        self.set_version_tags(decision.model_name, decision.version, tags)
        if decision.answer != registry.APPROVE_ANSWER:
            self._drop_challenger(decision.model_name, decision.version)

    def promote(self, registered: Registered, decision: Decision, *, approvers: list[str]) -> Promoted:
        """Check the decision and the bits again (:func:`registry.check_promotable`), then compare-and-set: point
        ``champion`` at the version only if it still points at the champion the candidate was evaluated against.

        Raises PromotionRefused or StaleChampionError (final) or an MLflow error (retry: nothing was read or moved).
        """
        model_name, version = registered.model_name, registered.version
        registry.check_promotable(
            registered,
            decision,
            approvers=approvers,
            version_tags=self.get_version(model_name, version).tags,
            artifact_sha256=self.artifact_sha256(model_name, version),
        )
        current = self.version_by_alias(model_name, registry.CHAMPION)
        promotion = registry.plan_promotion(registered, decision, current_champion=current.version if current else None)
        if promotion.already_done:
            self.log.info("%s v%s is already the champion; nothing to do", model_name, version)
            self._drop_challenger(model_name, version)  # in case the first attempt failed just after moving champion
            return promotion
        now = datetime.now(timezone.utc).isoformat()
        self.set_version_tags(
            model_name, version, {registry.PROMOTED_AT_TAG: now, registry.PROMOTED_BY_TAG: decision.decided_by}
        )
        if promotion.previous_champion:
            self.set_alias(model_name, registry.PREVIOUS_CHAMPION, promotion.previous_champion)
        self.set_alias(model_name, registry.CHAMPION, version)
        self._drop_challenger(model_name, version)
        return promotion

    def rollback(
        self,
        model_name: str,
        *,
        to_version: str | None,
        decided_by: str,
        reason: str,
        recorded_champion: str | None,
        force: bool = False,
        approvers: list[str] | tuple[str, ...] = (),
    ) -> rollback.Rollback:
        """Move ``champion`` back in one step (default: to ``previous_champion``), recording who, when and why.
        :func:`rollback.plan_rollback` says which versions may be restored and by whom. ``recorded_champion`` is the
        promotion ledger's last champion (None when it has none).

        Safe to retry at any point: a rollback interrupted after moving ``champion`` is recognised by its tags
        (:func:`rollback.unfinished_rollback`) and finished with the values it started with."""
        champion = self.version_by_alias(model_name, registry.CHAMPION)
        previous = self.version_by_alias(model_name, registry.PREVIOUS_CHAMPION)
        from_version = champion.tags.get(registry.ROLLBACK_FROM_TAG) if champion else None
        unfinished = rollback.unfinished_rollback(
            model_name,
            champion=champion.version if champion else None,
            champion_tags=champion.tags if champion else {},
            from_tags=self.get_version(model_name, from_version).tags if from_version else {},
            previous_champion=previous.version if previous else None,
            recorded_champion=recorded_champion,
        )
        if unfinished is not None:
            plan = rollback.resume_rollback(unfinished, requested=to_version)
            self.log.info(
                "%s: finishing the interrupted rollback v%s -> v%s by %s",
                model_name,
                plan.from_version,
                plan.to_version,
                plan.who,
            )
        else:
            if to_version is None:
                if previous is None:
                    raise ValueError(f"{model_name} has no previous_champion alias; name a version to roll back to")
                to_version = previous.version
            target = self.get_version(model_name, to_version)
            plan = rollback.plan_rollback(
                model_name,
                target_version=target.version,
                target_tags=target.tags,
                current_champion=champion.version if champion else None,
                force=force,
                triggered_by=decided_by,
                approvers=approvers,
                reason=reason,
                at=datetime.now(timezone.utc).isoformat(),
            )
        # The order unfinished_rollback reads: both versions' tags before any alias, then champion (serving first).
        self.set_version_tags(model_name, plan.to_version, plan.target_tags())
        if plan.from_version:
            self.set_version_tags(model_name, plan.from_version, {registry.ROLLED_BACK_AT_TAG: plan.at})
        self.set_alias(model_name, registry.CHAMPION, plan.to_version)
        if plan.from_version:
            self.set_alias(model_name, registry.PREVIOUS_CHAMPION, plan.from_version)
        return plan

    def _drop_challenger(self, model_name: str, version: str) -> None:
        challenger = self.version_by_alias(model_name, registry.CHALLENGER)
        if challenger is not None and challenger.version == str(version):
            self.delete_alias(model_name, registry.CHALLENGER)
