"""The embedded default: Airflow on SQLite, MLflow on SQLite with local artifacts, data on disk, all under one folder.

``airflow-ml demo`` and ``airflow-ml standalone`` use it, and so do the tests, so the three agree on the layout.
Airflow reads its configuration when it is first imported: call :func:`apply` before importing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

# Local demo accounts of Airflow's simple auth manager: name -> (role, password). Approvers come from the YAML.
DEMO_USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "admin"),
    "ops_lead": ("admin", "ops_lead"),
    "berlin_ops": ("user", "berlin_ops"),
    "lisbon_ops": ("user", "lisbon_ops"),
    "warsaw_ops": ("user", "warsaw_ops"),
    "analyst": ("user", "analyst"),  # not an approver of any city: answers from this user are refused
}
API_PORT = 8080
MLFLOW_PORT = 5000
POOL_SLOTS = 2  # train/evaluate at once on one machine: its 2 cores


def environment(
    root: Path, dags_folder: Path, users: dict[str, tuple[str, str]] | None = None, api_port: int = API_PORT
) -> dict[str, str]:
    """Environment variables that point Airflow and MLflow at ``root`` (absolute paths, SQLite)."""
    root = root.resolve()
    users = users or DEMO_USERS
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (role, _) in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "airflow" / "passwords.json"),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__API__PORT": str(api_port),
        # A stable local secret of the length PyJWT recommends for HS512 (Airflow generates a short one otherwise).
        "AIRFLOW__API_AUTH__JWT_SECRET": hashlib.sha512(str(root).encode()).hexdigest(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
            {"conn_type": "mlflow", "host": tracking_uri, "extra": {"artifact_root": str(root / "mlartifacts")}}
        ),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GIT_PYTHON_REFRESH": "quiet",
    }


def apply(
    root: Path, dags_folder: Path, users: dict[str, tuple[str, str]] | None = None, api_port: int = API_PORT
) -> dict[str, str]:
    """Set the environment in this process and write the simple auth manager's password file."""
    env = environment(root, dags_folder, users, api_port)
    os.environ.update(env)
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    passwords = {u: password for u, (_, password) in (users or DEMO_USERS).items()}
    Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(json.dumps(passwords))
    return env


def migrate_databases() -> None:
    """Create or upgrade the Airflow metadata DB (a subprocess: Airflow reads its config once per process)."""
    _airflow("db", "migrate")


def create_pools(names: set[str]) -> None:
    """The pools the cities' train and evaluate tasks use: Airflow never schedules a task whose pool is missing."""
    for name in sorted(names):
        _airflow("pools", "set", name, str(POOL_SLOTS), "train and evaluate slots shared by every city")


def _airflow(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    subprocess.run(command, check=True, env=os.environ.copy(), stdout=subprocess.DEVNULL)
