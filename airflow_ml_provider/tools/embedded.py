"""The embedded default: Airflow on SQLite, MLflow on SQLite with local artifacts, data on disk, all under one folder.

``airflow-ml demo`` and ``airflow-ml standalone`` use it, and so do the tests, so the three agree on the layout.
Airflow reads its configuration when it is first imported: call :func:`apply` before importing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_ml_provider.config import CityConfig

# Local accounts of Airflow's simple auth manager (loopback only; each one's password is its name): the admin, every
# approver the city configs name, and one user who approves no city, whose answers the tests show are refused.
ADMIN = "admin"
NON_APPROVER = "analyst"
API_PORT = 8080
MLFLOW_PORT = 5000
POOL_SLOTS = 2  # train/evaluate at once on one machine: its 2 cores
TASKS_PER_CORE = 4  # running tasks of all kinds per core ([core] parallelism)


def demo_users(configs: Iterable[CityConfig]) -> dict[str, str]:
    """The accounts, name -> role: the admin, every approver the configs name, and the non-approver."""
    users = {ADMIN: "admin"}
    for config in configs:
        users.update({approver: "user" for approver in config.approval.approvers if approver not in users})
    users.setdefault(NON_APPROVER, "user")
    return users


def folder_users(dags_folder: Path) -> dict[str, str]:
    """:func:`demo_users` of the configs in ``<dags_folder>/configs`` (a config with problems names nobody)."""
    from airflow_ml_provider.config import load_all

    configs, _ = load_all(dags_folder / "configs")
    return demo_users(configs.values())


def password(user: str) -> str:
    """A demo account's password: its name."""
    return user


def environment(
    root: Path, dags_folder: Path, users: dict[str, str] | None = None, api_port: int = API_PORT
) -> dict[str, str]:
    """Environment variables that point Airflow and MLflow at ``root`` (absolute paths, SQLite); ``users`` (name ->
    role) default to the accounts the folder's configs call for."""
    root = root.resolve()
    users = users or folder_users(dags_folder)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # The LocalExecutor, with task processes forked from a scheduler that has the steps' libraries imported.
        "AIRFLOW__CORE__EXECUTOR": "airflow_ml_provider.executors.PreloadingLocalExecutor",
        # Steps are CPU-bound: Airflow's 32 running tasks on a small machine only add memory (50 cities triggered at
        # once on 2 cores ran 29 task processes, 6 GB) and delay every city's first result. Waiting approvals take none.
        "AIRFLOW__CORE__PARALLELISM": str(TASKS_PER_CORE * (os.cpu_count() or 1)),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "airflow" / "passwords.json"),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__API__PORT": str(api_port),
        # A stable local secret of the length PyJWT recommends for HS512 (Airflow generates a short one otherwise).
        "AIRFLOW__API_AUTH__JWT_SECRET": hashlib.sha512(str(root).encode()).hexdigest(),
        # SQLite makes a writer that finds the file locked wait 5 s, then fail; with dozens of cities' runs at once
        # the scheduler, the API server and the task processes write together, and a failed scheduler write stops
        # the scheduler. Wait longer (the file is also in WAL mode: see migrate_databases).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}?timeout=60",
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
            {"conn_type": "mlflow", "host": tracking_uri, "extra": {"artifact_root": str(root / "mlartifacts")}}
        ),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GIT_PYTHON_REFRESH": "quiet",
        # scikit-learn's default estimator trains with OpenMP, one thread per core in every task process; with the
        # pool's steps running at once that oversubscribes the cores and OpenMP's waiting threads spin (2 trains at
        # once: 22 s instead of 0.7 s, docs/scaling.md). A value set by the user wins.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // POOL_SLOTS)),
    }


def apply(
    root: Path, dags_folder: Path, users: dict[str, str] | None = None, api_port: int = API_PORT
) -> dict[str, str]:
    """Set the environment in this process and write the simple auth manager's password file."""
    env = environment(root, dags_folder, users, api_port)
    os.environ.update(env)
    write_passwords(env)
    return env


def write_passwords(env: dict[str, str]) -> None:
    """The simple auth manager's password file for the users ``env`` names (its folder is created if missing)."""
    users = [entry.split(":")[0] for entry in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")]
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({user: password(user) for user in users}))


def migrate_databases() -> None:
    """Create or upgrade the Airflow metadata DB (a subprocess: Airflow reads its config once per process), and put a
    SQLite one in WAL mode (kept in the file), where readers do not block the writer and the writer blocks no reader."""
    _airflow("db", "migrate")
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0])) as db:
            db.execute("PRAGMA journal_mode=WAL")


def create_pools(names: set[str]) -> None:
    """The pools the cities' train and evaluate tasks use: Airflow never schedules a task whose pool is missing."""
    for name in sorted(names):
        _airflow("pools", "set", name, str(POOL_SLOTS), "train and evaluate slots shared by every city")


def _airflow(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    subprocess.run(command, check=True, env=os.environ.copy(), stdout=subprocess.DEVNULL)
