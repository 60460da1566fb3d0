"""register: log the candidate to the DAG run's MLflow run and register a model version with lineage tags."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_ml_provider import __version__
from airflow_ml_provider.core import registry
from airflow_ml_provider.operators.base import CityOperator
from airflow_ml_provider.operators.train import read_model, read_snapshot_windows

if TYPE_CHECKING:
    from airflow.sdk import Context


class RegisterModelOperator(CityOperator):
    """Registers every evaluated candidate (idempotent per DAG run). A passing candidate, or a failing one under
    ``on_guardrail_failure: ask``, becomes ``challenger``; a blocked one is tagged ``blocked`` and goes no further.
    """

    template_fields = ("validation", "training", "evaluation")

    def __init__(self, *, validation: Any, training: Any, evaluation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation
        self.training = training
        self.evaluation = evaluation

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.training import feature_frame

        settings = self.settings(context)
        if settings.dry_run:
            raise AirflowSkipException("dry run: evaluated only; nothing registered, nothing to approve")
        config = self.config
        _, eval_frame = read_snapshot_windows(config, self.validation)
        model = read_model(config, self.training)
        hook = self.mlflow_hook()
        mlflow_run_id = self.validation["mlflow_run_id"]
        verdict = self.evaluation["verdict"]
        summary = self.evaluation["summary"]
        tags = {
            "city": config.city,
            registry.TAG_PREFIX + "package_version": __version__,
            registry.TAG_PREFIX + "config_sha256": config.config_hash(),
            registry.TAG_PREFIX + "data_uri": self.validation["data_uri"],
            registry.TAG_PREFIX + "snapshot_uri": self.validation["snapshot_uri"],
            registry.TAG_PREFIX + "snapshot_sha256": self.validation["sha256"],
            registry.TAG_PREFIX + "train_rows": str(self.training["train_rows"]),
            registry.TAG_PREFIX + "eval_rows": str(len(eval_frame)),
            registry.TAG_PREFIX + "run_reason": settings.reason,
            registry.VERDICT_TAG: verdict,
            registry.EVALUATED_AGAINST_TAG: self.evaluation["champion_version"] or "none",
            registry.REPORT_SHA_TAG: self.evaluation["report_sha256"],
            **registry.library_versions(),
        }
        commit = code_commit(context)
        if commit:
            tags[registry.CODE_COMMIT_TAG] = commit
        version = hook.register_model(
            run_id=mlflow_run_id,
            model_name=config.model_name,
            model=model,
            input_example=feature_frame(config, eval_frame.head(5)),
            tags=tags,
            dag_run_id=context["run_id"],
        )
        hook.log_metrics(mlflow_run_id, _numeric(summary))
        asks = verdict == "pass" or config.approval.on_guardrail_failure == "ask"
        if asks:
            hook.set_alias(config.model_name, registry.CHALLENGER, version.version)
        else:
            hook.set_version_tags(config.model_name, version.version, {registry.DECISION_TAG: registry.BLOCKED})
        self.log.info("Registered %s v%s (verdict %s)", config.model_name, version.version, verdict)
        return {
            "model_name": config.model_name,
            "version": version.version,
            "mlflow_run_id": mlflow_run_id,
            "verdict": verdict,
            "needs_approval": asks,
            "champion_version": self.evaluation["champion_version"],
            "report_sha256": self.evaluation["report_sha256"],
            "version_url": hook.model_version_url(config.model_name, version.version),
        }


def code_commit(context: Context) -> str | None:
    """The DAG bundle's version (the git commit, with Airflow's GitDagBundle), else the commit of the git checkout
    holding the DAG file; None when neither is known."""
    version = getattr(context["dag_run"], "bundle_version", None)
    if version:
        return str(version)
    folder = Path(context["dag"].fileloc).parent
    try:
        found = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git on the worker
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def _numeric(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of the evaluation summary, as MLflow metric names."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            metrics.update(_numeric(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[name] = float(value)
    return metrics
