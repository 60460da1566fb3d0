"""The embedded default's setup: what `make airflow` prepares before Airflow starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_ml_provider.tools import embedded


@pytest.mark.slow
def test_create_pools_makes_the_cities_pools_so_their_tasks_get_scheduled(airflow_db: Path) -> None:
    from airflow.models.pool import Pool

    embedded.create_pools({"ml_training"})
    embedded.create_pools({"ml_training"})  # every start of `make airflow` does it again
    pool = Pool.get_pool("ml_training")
    assert pool is not None and pool.slots == embedded.POOL_SLOTS
