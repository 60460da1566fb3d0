"""A city's promotion ledger on its run storage: the chain of ``core/ledger.py`` stored through ``DatasetHook``."""

from __future__ import annotations

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.ledger import Ledger, LedgerEvent
from airflow_ml_provider.hooks.dataset import DatasetHook


def city_ledger(config: CityConfig) -> Ledger:
    """The ledger under ``<storage.base_uri>/<city>/_ledger/`` (local folder or s3:// prefix)."""
    return Ledger(DatasetHook(config.storage.aws_conn_id), config.storage.base_uri, config.city)


def record(
    config: CityConfig,
    kind: str,
    *,
    version: str,
    from_version: str | None,
    to_version: str | None,
    who: str,
    why: str,
    report_sha256: str | None = None,
    model_sha256: str | None = None,
    dag_id: str | None = None,
    dag_run_id: str | None = None,
) -> LedgerEvent:
    """Append the event of an alias move that just happened. Called after the move: a failed append fails the task,
    whose retry finds the move done and appends then; a retry after a successful append finds its event (same kind,
    version and DAG run) last in the chain and appends nothing."""
    book = city_ledger(config)
    events = book.events()
    last = events[-1] if events else None
    if (
        dag_run_id is not None
        and last is not None
        and (last.kind, last.version, last.dag_run_id) == (kind, str(version), dag_run_id)
    ):
        return last
    return book.append(
        kind=kind,
        model_name=config.model_name,
        version=version,
        from_version=from_version,
        to_version=to_version,
        who=who,
        why=why,
        report_sha256=report_sha256,
        model_sha256=model_sha256,
        dag_id=dag_id,
        dag_run_id=dag_run_id,
    )
