"""A city's promotion ledger on its run storage: the chain of ``core/ledger.py`` stored through ``DatasetHook``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.ledger import Ledger, LedgerEvent, Move, last_move, rollback_of_run, rolled_back
from airflow_ml_provider.core.rollback import Rollback
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
    """Move the city's ``champion`` back (:meth:`MlflowHook.rollback`, which refuses what may not be restored and
    finishes an interrupted rollback) and record it in the ledger once: the rollback DAG and ``airflow-ml rollback``
    both come here. A DAG run whose rollback the ledger holds is done and changes nothing again."""
    events = city_ledger(config).events()
    done = rollback_of_run(events, dag_id, dag_run_id)
    if done is not None:
        return done
    move = last_move(events)
    plan = hook.rollback(
        config.model_name,
        to_version=to_version,
        decided_by=who,
        reason=why,
        recorded_champion=move.to_version if move else None,
        force=force,
        approvers=config.approval.approvers,
    )
    record(config, rolled_back(plan, dag_id=dag_id, dag_run_id=dag_run_id))
    return plan
