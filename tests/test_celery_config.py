"""airflow_ml_provider.celery_config: the Celery workers' preload, as Airflow's celery provider loads it.

A fresh interpreter with ``[celery] celery_config_options`` naming the module, importing what the scheduler and the
worker import: the configuration is Airflow's own, importing it costs no ML library (the scheduler imports it), and
Celery's ``import_modules`` signal (sent only in a worker's main process, before the pool forks) runs the preload
before Airflow's own receiver freezes the heap. The stack test (tests/stack) proves it on a running worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("airflow.providers.celery")

SCRIPT = textwrap.dedent(
    """
    import sys
    from airflow.providers.celery.executors import celery_executor_utils as utils
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery.signals import import_modules

    from airflow_ml_provider import celery_config

    assert utils.get_celery_configuration() is celery_config.CELERY_CONFIG is DEFAULT_CELERY_CONFIG
    heavy = sorted(m for m in ("pandas", "numpy", "sklearn", "great_expectations", "mlflow", "scipy", "pyarrow")
                   if m in sys.modules)
    print("HEAVY=" + ",".join(heavy))
    receivers = [ref().__name__ for _, ref in import_modules.receivers]
    print("RECEIVERS=" + ",".join(receivers))

    preloaded = []
    celery_config.preload = lambda: preloaded.append(True) or 0.0
    import_modules.send(sender=utils.app)
    print("PRELOADED=" + str(len(preloaded)))
    """
)


def test_config_module_is_airflows_config_and_preloads_on_the_workers_signal_only() -> None:
    env = {**os.environ, "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_ml_provider.celery_config.CELERY_CONFIG"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=\n" in result.stdout  # what the scheduler pays: no ML library
    # ours first: Airflow's receiver ends with gc.freeze(), which should cover what we import
    assert "RECEIVERS=preload_steps,on_celery_import_modules\n" in result.stdout
    assert "PRELOADED=1\n" in result.stdout
