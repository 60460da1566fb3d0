"""MlflowHook: the one way this package talks to MLflow (tracking runs, model versions, aliases and tags).

Importing this module is cheap; mlflow itself is imported on first use, never while Airflow parses DAG files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_ml_provider.core import registry
from airflow_ml_provider.core.registry import DAG_ID_TAG, DAG_RUN_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

SEARCH_PAGE_SIZE = 1000


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as this package uses it (MLflow returns ``version`` as int or str by call)."""

    name: str
    version: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, mv: Any) -> VersionInfo:
        return cls(
            name=mv.name,
            version=str(mv.version),
            tags=dict(mv.tags or {}),
            aliases=tuple(mv.aliases or ()),
            run_id=mv.run_id,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc),
        )


class MlflowHook(BaseHook):
    """MLflow tracking and registry through the ``mlflow`` connection (host = tracking URI).

    Falls back to ``$MLFLOW_TRACKING_URI`` when the connection does not exist, so the same code runs in
    Airflow tasks and in the ``airflow-ml`` command line.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        # Where new experiments keep artifacts (connection extra ``artifact_root``); else the server's default.
        self.artifact_root: str | None = None

    @cached_property
    def tracking_uri(self) -> str:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except Exception as exc:  # AirflowNotFoundException, or no Airflow context at all (CLI)
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if uri:
                return uri
            raise ValueError(
                f"No MLflow tracking URI: create the Airflow connection {self.mlflow_conn_id!r} "
                "(type mlflow, host = tracking URI) or set MLFLOW_TRACKING_URI"
            ) from exc
        if conn.login:
            os.environ.setdefault("MLFLOW_TRACKING_USERNAME", conn.login)
            os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", conn.password or "")
        if not conn.host:
            raise ValueError(f"Airflow connection {self.mlflow_conn_id!r} has no host; set it to the tracking URI")
        self.artifact_root = conn.extra_dejson.get("artifact_root")
        return conn.host

    def get_conn(self) -> MlflowClient:
        return self.client

    @cached_property
    def client(self) -> MlflowClient:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # ----- tracking -------------------------------------------------------------------------------------------------

    def dag_run_run_id(self, experiment: str, dag_id: str, dag_run_id: str, tags: dict[str, str]) -> str:
        """The MLflow run of one Airflow DAG run, created on first use: every step of a DAG run logs to it."""
        experiment_id = self._experiment_id(experiment)
        found = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{DAG_ID_TAG}` = '{dag_id}' and tags.`{DAG_RUN_TAG}` = '{dag_run_id}'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        run = self.client.create_run(
            experiment_id,
            run_name=dag_run_id,
            tags={DAG_ID_TAG: dag_id, DAG_RUN_TAG: dag_run_id, **tags},
        )
        return run.info.run_id

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{name}" if self.artifact_root else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created concurrently by another city's task
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, os.path.basename(artifact_file))
            with open(path, "wb") as handle:
                handle.write(data)
            self.client.log_artifact(run_id, path, os.path.dirname(artifact_file) or None)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Run parameters (values as text, MLflow's limit of 6000 characters each), in one call."""
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(key, str(value)[:6000]) for key, value in params.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)

    def run_url(self, run_id: str) -> str | None:
        """A link to the run in the MLflow UI, when the tracking URI is a server."""
        if not self.tracking_uri.startswith("http"):
            return None
        run = self.client.get_run(run_id)
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    def model_version_url(self, model_name: str, version: str) -> str | None:
        if not self.tracking_uri.startswith("http"):
            return None
        return f"{self.tracking_uri.rstrip('/')}/#/models/{model_name}/versions/{version}"

    # ----- registry -------------------------------------------------------------------------------------------------

    def version_by_alias(self, model_name: str, alias: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return VersionInfo.of(self.client.get_model_version_by_alias(model_name, alias))
        except MlflowException:
            return None  # no such model or alias yet (a city's first run)

    def get_version(self, model_name: str, version: str) -> VersionInfo:
        return VersionInfo.of(self.client.get_model_version(model_name, str(version)))

    def load_model(self, model_name: str, version: str) -> Any:
        import mlflow.sklearn

        self.client  # noqa: B018 - sets the tracking and registry URIs for the fluent API
        return mlflow.sklearn.load_model(f"models:/{model_name}/{version}")

    def input_schema(self, model_name: str, version: str) -> dict[str, str] | None:
        """Column name -> type of the version's logged signature (None when it has no signature)."""
        from mlflow.models import get_model_info

        self.client  # noqa: B018 - sets the tracking and registry URIs for the fluent API
        signature = get_model_info(f"models:/{model_name}/{version}").signature
        if signature is None:
            return None
        return {column["name"]: column["type"] for column in signature.inputs.to_dict()}

    def version_of_dag_run(self, model_name: str, dag_run_id: str) -> VersionInfo | None:
        """The version a DAG run registered before, so a retried ``register`` does not create a second one."""
        return next((v for v in self.versions(model_name) if v.tags.get(DAG_RUN_TAG) == dag_run_id), None)

    def register_model(
        self,
        *,
        run_id: str,
        model_name: str,
        model: Any,
        input_example: Any,
        tags: dict[str, str],
        dag_run_id: str,
    ) -> VersionInfo:
        """Log the sklearn pipeline to the run (signature, input example) and register it; idempotent per DAG run."""
        existing = self.version_of_dag_run(model_name, dag_run_id)
        if existing is not None:
            self.log.info("DAG run %s already registered %s v%s; reusing it", dag_run_id, model_name, existing.version)
            return existing
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        self.client  # noqa: B018 - sets the tracking and registry URIs for the fluent API
        signature = infer_signature(input_example, model.predict(input_example))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=input_example, serialization_format="pickle"
            )
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # exists already
            self.client.create_registered_model(model_name)
        return VersionInfo.of(
            self.client.create_model_version(
                # model_id links the version to MLflow 3's logged model; a tracking server requires it.
                model_name,
                info.model_uri,
                run_id=run_id,
                tags={**tags, DAG_RUN_TAG: dag_run_id},
                model_id=info.model_id,
            )
        )

    def versions(self, model_name: str) -> list[VersionInfo]:
        """Every version of the model, newest first (none when the model does not exist yet)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{model_name}'")
        except MlflowException:
            return []
        return sorted((VersionInfo.of(v) for v in found), key=lambda v: int(v.version), reverse=True)

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, str(version), key, value)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, str(version))

    def delete_alias(self, model_name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # not set
            self.client.delete_registered_model_alias(model_name, alias)

    def promote(
        self,
        model_name: str,
        version: str,
        *,
        expected_champion: str | None,
        decided_by: str,
        reason: str,
        report_sha256: str,
    ) -> registry.Promotion:
        """Compare-and-set: point ``champion`` at ``version`` only if it still points at ``expected_champion``."""
        current = self.version_by_alias(model_name, registry.CHAMPION)
        promotion = registry.plan_promotion(
            model_name,
            str(version),
            expected_champion=expected_champion,
            current_champion=current.version if current else None,
        )
        if promotion.already_done:
            self.log.info("%s v%s is already the champion; nothing to do", model_name, version)
            return promotion
        now = datetime.now(timezone.utc).isoformat()
        self.set_version_tags(
            model_name,
            version,
            registry.decision_tags(
                registry.APPROVED, decided_by=decided_by, at=now, reason=reason, report_sha256=report_sha256
            ),
        )
        self.set_version_tags(
            model_name, version, {registry.PROMOTED_AT_TAG: now, registry.PROMOTED_BY_TAG: decided_by}
        )
        if promotion.previous_champion:
            self.set_alias(model_name, registry.PREVIOUS_CHAMPION, promotion.previous_champion)
        self.set_alias(model_name, registry.CHAMPION, version)
        challenger = self.version_by_alias(model_name, registry.CHALLENGER)
        if challenger is not None and challenger.version == str(version):
            self.delete_alias(model_name, registry.CHALLENGER)
        return promotion

    def reject(self, model_name: str, version: str, *, decided_by: str, reason: str, report_sha256: str) -> None:
        """Record a rejection (by a person, or ``timeout``); no alias but ``challenger`` changes."""
        now = datetime.now(timezone.utc).isoformat()
        self.set_version_tags(
            model_name,
            version,
            registry.decision_tags(
                registry.REJECTED, decided_by=decided_by, at=now, reason=reason, report_sha256=report_sha256
            ),
        )
        challenger = self.version_by_alias(model_name, registry.CHALLENGER)
        if challenger is not None and challenger.version == str(version):
            self.delete_alias(model_name, registry.CHALLENGER)

    def rollback(
        self, model_name: str, *, to_version: str | None, decided_by: str, reason: str, force: bool = False
    ) -> registry.Rollback:
        """Move ``champion`` back in one step (default: to ``previous_champion``), recording who, when and why."""
        champion = self.version_by_alias(model_name, registry.CHAMPION)
        if to_version is None:
            previous = self.version_by_alias(model_name, registry.PREVIOUS_CHAMPION)
            if previous is None:
                raise ValueError(f"{model_name} has no previous_champion alias; name a version to roll back to")
            to_version = previous.version
        target = self.get_version(model_name, to_version)
        plan = registry.plan_rollback(
            model_name,
            target_version=target.version,
            target_tags=target.tags,
            current_champion=champion.version if champion else None,
            force=force,
        )
        now = datetime.now(timezone.utc).isoformat()
        self.set_alias(model_name, registry.CHAMPION, target.version)
        if plan.from_version and plan.from_version != target.version:
            self.set_alias(model_name, registry.PREVIOUS_CHAMPION, plan.from_version)
            self.set_version_tags(model_name, plan.from_version, {registry.ROLLED_BACK_AT_TAG: now})
        self.set_version_tags(
            model_name,
            target.version,
            {
                registry.PROMOTED_AT_TAG: now,
                registry.PROMOTED_BY_TAG: decided_by,
                registry.ROLLBACK_REASON_TAG: reason,
                registry.ROLLBACK_FROM_TAG: plan.from_version or "",
            },
        )
        return plan

    def versions_by_model(self, model_names: set[str]) -> dict[str, list[VersionInfo]]:
        """Every version of the given models, newest first, from one paged search of the registry (the fleet page
        reads hundreds of models: one call per model would take minutes)."""
        found: dict[str, list[VersionInfo]] = {name: [] for name in model_names}
        token = None
        while True:
            page = self.client.search_model_versions(max_results=SEARCH_PAGE_SIZE, page_token=token)
            for mv in page:
                if mv.name in found:
                    found[mv.name].append(VersionInfo.of(mv))
            token = page.token
            if not token:
                break
        for versions in found.values():
            versions.sort(key=lambda v: int(v.version), reverse=True)
        return found
