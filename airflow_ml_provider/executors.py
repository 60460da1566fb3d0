"""The embedded default's executor: a LocalExecutor whose task processes start with the steps' libraries imported.

On Linux the LocalExecutor forks its workers from the scheduler, and each worker forks every task process with a
bare ``os.fork`` (no exec): whatever the scheduler imported before the executor started, every task process has.
Without this, each task imports pandas, scikit-learn, Great Expectations and MLflow again, seconds to tens of
seconds per task on a small machine, often longer than the step's own work. The price: the scheduler starts that
much slower and holds those libraries in memory (shared copy-on-write with the workers).

The embedded default (``airflow-ml standalone``, tools/embedded.py) sets
``AIRFLOW__CORE__EXECUTOR=airflow_ml_provider.executors.PreloadingLocalExecutor``; on one city of demo rides on an idle
2-core machine it cut each task's fixed cost from about 4 s to under 1 s (docs/scaling.md). A change to this package's
code reaches task processes when the scheduler restarts (a city's YAML is read at every parse, as before). DAG parsing
is unaffected: the DAG processor never imports this module.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from airflow.executors.local_executor import LocalExecutor

# The modules the steps import when they run: pandas, pyarrow, scikit-learn, Great Expectations, MLflow, matplotlib.
# benchmarks/step_imports.py --preload shows what a step still imports inside execute with these preloaded.
STEP_MODULES = (
    "airflow_ml_provider.factory",
    "airflow_ml_provider.hooks.dataset",
    "airflow_ml_provider.hooks.mlflow",
    "airflow_ml_provider.core.snapshot",
    "airflow_ml_provider.core.validation",
    "airflow_ml_provider.core.training",
    "airflow_ml_provider.core.baseline",
    "airflow_ml_provider.core.guardrails",
    "airflow_ml_provider.core.report",
    "airflow_ml_provider.core.registry",
    "pyarrow.parquet",  # the snapshot
    "great_expectations",  # validate_data's expectations; core.validation imports it on first use
    "sklearn.ensemble",  # the shipped default estimator's module (model.estimator)
    "matplotlib.backends.backend_agg",  # evaluate's chart
    "matplotlib.figure",
    "mlflow.models",
    "mlflow.sklearn",
    "git",  # GitPython: MLflow reads the source's commit when register logs the model
)
# MLflow's SQL store, used in the task process when MLflow runs without a server (the embedded default: SQLite).
SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"
SQL_STORE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")

log = logging.getLogger(__name__)


def step_modules() -> tuple[str, ...]:
    """:data:`STEP_MODULES`, and MLflow's SQL store when ``MLFLOW_TRACKING_URI`` names a database (about 2 s per
    step on a 2-core machine); with a tracking server the tasks never import it."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").startswith(SQL_STORE_SCHEMES):
        return (*STEP_MODULES, SQL_STORE_MODULE)
    return STEP_MODULES


def preload() -> float:
    """Import :func:`step_modules` into this process; the seconds it took. A module that does not import here (e.g.
    GitPython without a git executable) is logged and left to the task that needs it."""
    started = time.monotonic()
    for name in step_modules():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("Not preloading %s: %s", name, exc)
    return time.monotonic() - started


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor that imports :func:`step_modules` before forking its workers (only where workers are forked)."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            seconds = preload()
            self.log.info("Imported the ML steps' libraries in %.1f s; task processes inherit them", seconds)
        super().start()
