"""The embedded default's setup: what `make airflow` prepares before Airflow starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.tools import embedded

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_create_pools_makes_the_cities_pools_so_their_tasks_get_scheduled(airflow_db: Path) -> None:
    from airflow.models.pool import Pool

    embedded.create_pools({"ml_training"})
    embedded.create_pools({"ml_training"})  # every start of `make airflow` does it again
    pool = Pool.get_pool("ml_training")
    assert pool is not None and pool.slots == embedded.POOL_SLOTS


def test_accounts_are_the_admin_every_approver_the_configs_name_and_a_non_approver(tmp_path: Path) -> None:
    configs = _configs_with_paris(tmp_path)
    users = embedded.folder_users(configs.parent)
    assert users == {
        "admin": "admin",
        "berlin_ops": "user",
        "ops_lead": "user",
        "lisbon_ops": "user",
        "paris_ops": "user",
        "warsaw_ops": "user",
        "analyst": "user",
    }
    env = embedded.environment(tmp_path / "root", configs.parent)
    assert "paris_ops:user" in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
    embedded.write_passwords(env)
    passwords = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    assert passwords["paris_ops"] == embedded.password("paris_ops") and set(passwords) == set(users)


def _configs_with_paris(tmp_path: Path) -> Path:
    """A copy of the shipped configs plus a city the code has never heard of."""
    configs = tmp_path / "dags" / "configs"
    shutil.copytree(PROJECT / "dags" / "configs", configs)
    (configs / "paris.yaml").write_text("city: paris\napproval: {approvers: [paris_ops]}\n")
    return configs


def test_training_threads_are_the_cores_shared_by_the_pool_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(embedded.os, "cpu_count", lambda: 8)
    env = embedded.environment(tmp_path / "root", PROJECT / "dags")
    assert env["OMP_NUM_THREADS"] == str(8 // embedded.POOL_SLOTS)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert embedded.environment(tmp_path / "root", PROJECT / "dags")["OMP_NUM_THREADS"] == "3"
