"""register: log the evaluated candidate to its training run and register it as a model version with lineage tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_ml_provider import __version__
from airflow_ml_provider.core import registry
from airflow_ml_provider.core.handoff import Evaluated, Registered, Trained, Validated
from airflow_ml_provider.core.storage import IntegrityError
from airflow_ml_provider.hooks.git import code_commit
from airflow_ml_provider.operators.base import CityOperator, failing_for_good, handed

if TYPE_CHECKING:
    from airflow.sdk import Context


class RegisterModelOperator(CityOperator):
    """Registers the bits evaluate scored, once per distinct model per DAG run: a retry or a rerun with the same bits
    reuses the version, other bits get a new one and the run's older undecided versions are superseded. A passing
    candidate, or a failing one under ``on_guardrail_failure: ask``, becomes ``challenger``; a blocked one is tagged
    ``blocked`` and goes no further. Returns :class:`~airflow_ml_provider.core.handoff.Registered`.
    """

    template_fields = ("validation", "training", "evaluation")

    def __init__(self, *, validation: Any, training: Any, evaluation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation
        self.training = training
        self.evaluation = evaluation

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.evaluation import summary_metrics
        from airflow_ml_provider.core.training import INPUT_EXAMPLE_ROWS, feature_frame

        settings = self.settings(context)
        if settings.dry_run:
            raise AirflowSkipException("dry run: evaluated only; nothing registered, nothing to approve")
        config = self.config
        validated, trained = handed(Validated, self.validation), handed(Trained, self.training)
        evaluated = handed(Evaluated, self.evaluation)
        with failing_for_good(registry.UnevaluatedModel):
            registry.check_evaluated(trained, evaluated)
        storage, hook = self.storage_hook(), self.mlflow_hook()
        with failing_for_good(IntegrityError):
            # The input example MLflow logs with the model: a few eval rows' features.
            _, example = storage.read_snapshot_windows(
                validated,
                config.data.timestamp_column,
                train_columns=[],
                eval_columns=config.features.all,
                limit=INPUT_EXAMPLE_ROWS,
            )
            model = storage.read_model(trained)
        tags = registry.lineage_tags(
            city=config.city,
            package_version=__version__,
            config_sha256=config.config_hash(),
            run_reason=settings.reason,
            validated=validated,
            trained=trained,
            evaluated=evaluated,
            code_commit=code_commit(getattr(context["dag_run"], "bundle_version", None), context["dag"].fileloc),
        )
        needs_approval = registry.needs_approval(evaluated.verdict, config.approval.on_guardrail_failure)
        version, reused = hook.register_candidate(
            model_name=config.model_name,
            run_id=trained.mlflow_run_id,
            model=model,
            input_example=feature_frame(config, example),
            tags=tags,
            dag_run_id=context["run_id"],
            needs_approval=needs_approval,
        )
        hook.log_metrics(trained.mlflow_run_id, summary_metrics(evaluated.summary))
        self.log.info(
            "Registered %s v%s (verdict %s, reused %s)", config.model_name, version.version, evaluated.verdict, reused
        )
        return Registered(
            model_name=config.model_name,
            version=version.version,
            mlflow_run_id=version.run_id or trained.mlflow_run_id,
            model_sha256=evaluated.model_sha256,
            report_sha256=evaluated.report_sha256,
            verdict=evaluated.verdict,
            needs_approval=needs_approval,
            champion_version=evaluated.champion_version,
            version_url=hook.model_version_url(config.model_name, version.version),
            reused=reused,
        ).to_xcom()
