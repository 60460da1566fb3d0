"""What every step of a city's DAG shares: its config, the run's settings, its storage and its MLflow run; and the
Airflow notifiers that the YAML's `notifiers` entries describe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.config import CityConfig, ConfigError, NotifierConfig
from airflow_ml_provider.core.digest import run_url
from airflow_ml_provider.core.handoff import Handoff, HandoffError
from airflow_ml_provider.core.run_settings import RunSettings, resolve
from airflow_ml_provider.core.storage import run_uri
from airflow_ml_provider.hooks.dataset import DatasetHook
from airflow_ml_provider.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

H = TypeVar("H", bound=Handoff)


class CityOperator(BaseOperator):
    """Base of the retraining steps. Steps hand each other the small typed results of ``core/handoff.py`` through
    XCom, never frames or models."""

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

    def storage_hook(self) -> DatasetHook:
        """Where the run keeps its snapshot and candidate models (``storage.base_uri``)."""
        return DatasetHook(aws_conn_id=self.config.storage.aws_conn_id)

    def mlflow_run_id(self, context: Context, hook: MlflowHook) -> str:
        """The MLflow run of this DAG run (one per DAG run; each training attempt nests its own run under it)."""
        return hook.dag_run_run_id(
            experiment=self.config.model_name,
            dag_id=context["dag"].dag_id,
            dag_run_id=context["run_id"],
            tags={"city": self.config.city, "airflow.logical_date": run_end(context).isoformat()},
        )


@contextmanager
def failing_for_good(*errors: type[Exception]) -> Iterator[None]:
    """``errors`` fail the task without retries, with their message: a retry would meet them again (the same XCom,
    the same bytes), after minutes of backoff."""
    try:
        yield
    except errors as exc:
        raise AirflowFailException(str(exc)) from None


def handed(kind: type[H], data: Any) -> H:
    """A step's input from XCom. A result the contract cannot read fails for good: retrying reads the same thing."""
    with failing_for_good(HandoffError):
        handoff = kind.from_xcom(data)
    return handoff


def run_end(context: Context) -> datetime:
    """The end of the data window: the logical date, or when the run was due for runs without one."""
    return context.get("logical_date") or context["dag_run"].run_after


def ui_base_url() -> str | None:
    """Where the Airflow UI is (``[api] base_url``, as Airflow's own notifications link it); None when unset."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None) or None


def airflow_run_url(context: Context) -> str | None:
    """A link to this DAG run in the Airflow UI, when ``[api] base_url`` is set."""
    base_url = ui_base_url()
    return None if base_url is None else run_url(base_url, context["dag"].dag_id, context["run_id"])


def make_notifier(
    spec: NotifierConfig,
    *,
    subject: str,
    html: str,
    text: str,
    where: str,
    to: list[str] | None = None,
    channel: str | None = None,
) -> BaseNotifier:
    """Airflow's SmtpNotifier (``html`` to ``to``, else the spec's ``to``, which the config requires for smtp) or
    SlackNotifier (``text`` to ``channel``, else the spec's, else #general) for a ``notifiers`` entry; ConfigError
    naming ``where`` without Slack's provider."""
    if spec.kind == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=to or spec.to,
            subject=subject,
            html_content=html,
            **({"smtp_conn_id": spec.conn_id} if spec.conn_id else {}),
        )
    try:
        from airflow.providers.slack.notifications.slack import SlackNotifier
    except ImportError:
        raise ConfigError(
            [f"{where}: kind slack needs the Slack provider; pip install 'airflow-ml-provider[slack]'"]
        ) from None
    return SlackNotifier(
        text=text,
        channel=channel or spec.channel or "#general",
        **({"slack_conn_id": spec.conn_id} if spec.conn_id else {}),
    )
