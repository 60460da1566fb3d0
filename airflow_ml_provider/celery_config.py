"""Celery workers whose task processes start with the steps' libraries imported: what
:class:`~airflow_ml_provider.executors.PreloadingLocalExecutor` does for the embedded default, for the CeleryExecutor.

Name it in every Airflow component's configuration (the compose stack does)::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=airflow_ml_provider.celery_config.CELERY_CONFIG

``airflow celery worker`` imports this module while it builds its Celery app, then Celery sends ``import_modules`` in
the worker's main process before the prefork pool forks; each pool process forks every task process with a bare
``os.fork`` (Airflow 3's supervisor), so all of them inherit what :func:`preload_steps` imported. Airflow's own
receiver of that signal (``celery_executor_utils.on_celery_import_modules``) runs after this one, since this module is
imported before it is connected, and its ``gc.freeze()`` then keeps the preloaded objects from being copied on write.
The scheduler imports this module too (to read ``CELERY_CONFIG``) but never sends the signal, so it pays only this
module's import, no ML library.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

from airflow_ml_provider.executors import preload

# The same object, not a copy: Airflow's create_celery_app skips a configured dict that *is* DEFAULT_CELERY_CONFIG and
# keeps its own (team-aware) configuration, so naming this module changes nothing but the preload.
CELERY_CONFIG = DEFAULT_CELERY_CONFIG

log = logging.getLogger(__name__)


@import_modules.connect
def preload_steps(**kwargs: Any) -> None:
    """Celery's ``import_modules`` receiver: import the steps' libraries before the worker forks its pool."""
    seconds = preload()
    log.info("Imported the ML steps' libraries in %.1f s before forking the pool; task processes inherit them", seconds)
