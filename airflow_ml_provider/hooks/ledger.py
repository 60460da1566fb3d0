"""A city's promotion ledger on its run storage: the chain of ``core/ledger.py`` stored through ``DatasetHook``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.ledger import ROLLBACK, Ledger, LedgerEvent, Move
from airflow_ml_provider.core.registry import Rollback
from airflow_ml_provider.hooks.dataset import DatasetHook

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook


def city_ledger(config: CityConfig) -> Ledger:
    """The ledger under ``<storage.base_uri>/<city>/_ledger/`` (local folder or s3:// prefix)."""
    return Ledger(DatasetHook(config.storage.aws_conn_id), config.storage.base_uri, config.city)


def record(config: CityConfig, move: Move) -> LedgerEvent:
    """Append the event of an alias move that just happened. Called after the move: a failed append fails the task,
    whose retry finds the move done and appends then; a retry after a successful append finds its event (same kind,
    version and DAG run) last in the chain and appends nothing."""
    book = city_ledger(config)
    events = book.events()
    last = events[-1] if events else None
    if (
        move.dag_run_id is not None
        and last is not None
        and (last.kind, last.version, last.dag_run_id) == (move.kind, str(move.version), move.dag_run_id)
    ):
        return last
    return book.append(move)


def roll_back(
    config: CityConfig,
    hook: MlflowHook,
    *,
    to_version: str | None,
    who: str,
    why: str,
    force: bool,
    dag_id: str | None = None,
    dag_run_id: str | None = None,
) -> Rollback:
    """Move the city's ``champion`` back (:meth:`MlflowHook.rollback`, which refuses what may not be restored) and
    record it in the ledger: the rollback DAG and ``airflow-ml rollback`` both come here."""
    plan = hook.rollback(
        config.model_name,
        to_version=to_version,
        decided_by=who,
        reason=why,
        force=force,
        approvers=config.approval.approvers,
    )
    # The plan names the move (model, from and to version, the restored bits); the caller adds who, why and where.
    move = Move(
        kind=ROLLBACK, version=plan.to_version, who=who, why=why, dag_id=dag_id, dag_run_id=dag_run_id, **asdict(plan)
    )
    record(config, move)
    return plan
