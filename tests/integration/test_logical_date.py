"""A retrain on historical data: a run whose logical date lies years back runs its steps on that data.

Airflow 3.3 creates no task instances for a run whose logical date is before the DAG's start_date and marks it
successful at once. The factory's DAGs have no start_date (the cron schedule still starts at the latest cron time,
without backfill), so a logical date of 2013-12-01 validates, trains and evaluates on the rides up to that day.
Real Airflow metadata DB and MLflow store, via ``dag.test()``; a dry run, so nothing is registered.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="thread")]

HISTORICAL = datetime(2013, 12, 1, tzinfo=timezone.utc)


def test_a_run_years_before_the_first_schedule_runs_every_step(dagbag: Any, tmp_path: Path) -> None:
    from airflow_ml_provider.core.demo_data import make_city_data
    from airflow_ml_provider.core.snapshot import to_parquet_bytes

    rides = tmp_path / "rides-2013.parquet"
    rides.write_bytes(to_parquet_bytes(make_city_data("corpus", end=HISTORICAL.date())))
    dag = dagbag.dags["retrain_corpus"]

    dag_run = dag.test(logical_date=HISTORICAL, run_conf={"data_uri": str(rides), "dry_run": True})

    assert dag_run.logical_date == HISTORICAL
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {
        "validate_data": "success",
        "train": "success",
        "evaluate": "success",
        "register": "skipped",
        "approve": "skipped",
        "promote": "skipped",
    }
