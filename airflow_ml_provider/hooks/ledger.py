"""A city's promotion ledger on its run storage: the chain of ``core/ledger.py`` stored through ``DatasetHook``."""

from __future__ import annotations

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.ledger import Ledger
from airflow_ml_provider.hooks.dataset import DatasetHook


def city_ledger(config: CityConfig) -> Ledger:
    """The ledger under ``<storage.base_uri>/<city>/_ledger/`` (local folder or s3:// prefix)."""
    return Ledger(DatasetHook(config.storage.aws_conn_id), config.storage.base_uri, config.city)
