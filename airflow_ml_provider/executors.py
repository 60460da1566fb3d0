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
import time

from airflow.executors.local_executor import LocalExecutor

# The modules the steps import when they run; they import pandas, pyarrow, scikit-learn, Great Expectations, MLflow.
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
    "mlflow.models",
    "mlflow.sklearn",
)


def preload(modules: tuple[str, ...] = STEP_MODULES) -> float:
    """Import ``modules`` into this process; the seconds it took."""
    started = time.monotonic()
    for name in modules:
        importlib.import_module(name)
    return time.monotonic() - started


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor that imports :data:`STEP_MODULES` before forking its workers (only where workers are forked)."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            seconds = preload()
            self.log.info("Imported the ML steps' libraries in %.1f s; task processes inherit them", seconds)
        super().start()
