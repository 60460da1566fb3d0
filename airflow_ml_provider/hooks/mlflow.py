"""MlflowHook: the one way this package talks to MLflow (tracking runs, model versions, aliases and tags).

Importing this module is cheap; mlflow itself is imported on first use, never while Airflow parses DAG files.

Errors: only MLflow's ``RESOURCE_DOES_NOT_EXIST`` (and an alias that is not set) mean "absent". Any other
MlflowException or connection error propagates, so Airflow retries the task: an outage is never read as "no
champion" or "no version yet". The rules of what may be registered, promoted or rolled back live in
``core/registry.py``; this hook reads what they need and executes their plans.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_ml_provider.core import registry
from airflow_ml_provider.core.registry import DAG_ID_TAG, DAG_RUN_TAG
from airflow_ml_provider.core.storage import sha256_hex
from airflow_ml_provider.hooks.mlflow_candidates import MODEL_FILE, CandidateWorkflow

if TYPE_CHECKING:
    from mlflow import MlflowClient

SEARCH_PAGE_SIZE = 1000
PARENT_RUN_TAG = "mlflow.parentRunId"
TRY_NUMBER_TAG = "airflow.try_number"


def is_absent(exc: BaseException) -> bool:
    """Whether an MLflow error says the thing does not exist (anything else is an outage to retry)."""
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


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


class MlflowHook(CandidateWorkflow, BaseHook):
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

    def attempt_run_id(self, parent_run_id: str, *, run_name: str, tags: dict[str, str]) -> str:
        """A new run nested under the DAG run's run, for one training attempt: its params, report and model.

        MLflow params are immutable; a rerun after the data changed trains other bits with other params, so each
        attempt logs to its own run instead of rewriting the DAG run's.
        """
        parent = self.client.get_run(parent_run_id)
        run = self.client.create_run(
            parent.info.experiment_id,
            run_name=run_name,
            tags={
                **{k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")},
                **tags,
                PARENT_RUN_TAG: parent_run_id,
            },
        )
        return run.info.run_id

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{name}" if self.artifact_root else None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:  # created concurrently by another task of the city
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
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
        """The version an alias points at; None only when the model does not exist or the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(model_name)
        except MlflowException as exc:
            if is_absent(exc):
                return None  # a city's first run
            raise
        version = model.aliases.get(alias)
        return None if version is None else self.get_version(model_name, str(version))

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

    @staticmethod
    def schema_of(features: Any) -> dict[str, str]:
        """The input schema MLflow records for a model fed these features, in the form ``input_schema`` returns."""
        from mlflow.models import infer_signature

        return {column["name"]: column["type"] for column in infer_signature(features).inputs.to_dict()}

    def artifact_sha256(self, model_name: str, version: str) -> str:
        """The sha256 of the model file MLflow serves for this version."""
        return self._file_sha256(f"models:/{model_name}/{version}/{MODEL_FILE}")

    def _file_sha256(self, artifact_uri: str) -> str:
        import mlflow.artifacts

        self.client  # noqa: B018 - sets the tracking and registry URIs for the fluent API
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp)
            return sha256_hex(Path(path).read_bytes())

    def versions(self, model_name: str) -> list[VersionInfo]:
        """Every version of the model, newest first (none when the model does not exist yet)."""
        found = self.client.search_model_versions(f"name = '{model_name}'")
        return sorted((VersionInfo.of(v) for v in found), key=lambda v: int(v.version), reverse=True)

    def versions_of_dag_run(self, model_name: str, dag_run_id: str) -> list[VersionInfo]:
        """Every version a DAG run registered (one per distinct model it evaluated), newest first."""
        return [v for v in self.versions(model_name) if v.tags.get(DAG_RUN_TAG) == dag_run_id]

    def version_of_dag_run(self, model_name: str, dag_run_id: str) -> VersionInfo | None:
        """The DAG run's current candidate: its newest version not superseded by a rerun."""
        return next(
            (v for v in self.versions_of_dag_run(model_name, dag_run_id) if registry.SUPERSEDED_BY_TAG not in v.tags),
            None,
        )

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, str(version), key, value)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, str(version))

    def delete_alias(self, model_name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(model_name, alias)
        except MlflowException as exc:
            if not is_absent(exc):
                raise

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

    def aliases_by_model(self, model_names: set[str]) -> dict[str, dict[str, str]]:
        """Alias -> version of the given models, from one paged search of registered models (the version search
        leaves aliases out)."""
        found: dict[str, dict[str, str]] = {name: {} for name in model_names}
        token = None
        while True:
            page = self.client.search_registered_models(max_results=SEARCH_PAGE_SIZE, page_token=token)
            for model in page:
                if model.name in found:
                    found[model.name] = {alias: str(version) for alias, version in (model.aliases or {}).items()}
            token = page.token
            if not token:
                break
        return found
