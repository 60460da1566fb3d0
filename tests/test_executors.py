"""The embedded default's PreloadingLocalExecutor: a local executor (standalone keeps it) preloading real modules."""

from __future__ import annotations

import importlib.util

from airflow.executors.local_executor import LocalExecutor

from airflow_ml_provider.executors import STEP_MODULES, PreloadingLocalExecutor


def test_is_a_local_executor_that_standalone_keeps() -> None:
    assert issubclass(PreloadingLocalExecutor, LocalExecutor)
    assert PreloadingLocalExecutor.is_local


def test_preloads_modules_that_exist() -> None:
    ours = [name for name in STEP_MODULES if name.startswith("airflow_ml_provider.")]
    assert ours
    assert [name for name in ours if importlib.util.find_spec(name) is None] == []
