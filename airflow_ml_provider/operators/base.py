"""What every step of a city's DAG shares: its config, the run's settings, its storage and its MLflow run."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.run_settings import RunSettings, resolve
from airflow_ml_provider.core.storage import run_uri
from airflow_ml_provider.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import Context


class CityOperator(BaseOperator):
    """Base of the retraining steps. Steps pass small JSON between them through XCom, never frames or models."""

    ui_color = "#e8f4fd"

    def __init__(self, *, config: CityConfig, mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any):
        super().__init__(**kwargs)
        self.config = config
        self.mlflow_conn_id = mlflow_conn_id

    def settings(self, context: Context) -> RunSettings:
        return resolve(self.config, dict(context["params"]))

    def run_file_uri(self, context: Context, name: str) -> str:
        return run_uri(self.config.storage.base_uri, self.config.city, context["run_id"], name)

    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(self.mlflow_conn_id)

    def mlflow_run_id(self, context: Context, hook: MlflowHook) -> str:
        """The MLflow run of this DAG run (one per DAG run, shared by its steps)."""
        return hook.dag_run_run_id(
            experiment=self.config.model_name,
            dag_id=context["dag"].dag_id,
            dag_run_id=context["run_id"],
            tags={"city": self.config.city, "airflow.logical_date": run_end(context).isoformat()},
        )


def run_end(context: Context) -> datetime:
    """The end of the data window: the logical date, or when the run was due for runs without one."""
    return context.get("logical_date") or context["dag_run"].run_after
