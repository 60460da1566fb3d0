"""``airflow-ml standalone``: Airflow standalone and the MLflow UI on the embedded default, for the interactive path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from airflow_ml_provider.config import CityConfig, load_all
from airflow_ml_provider.tools import embedded


def run_standalone(project_root: Path) -> int:
    configs, problems = load_all(project_root / "dags" / "configs")
    users = embedded.demo_users(configs.values())
    env = embedded.apply(project_root / ".airflow-ml", project_root / "dags", users)
    for problem in problems:  # Airflow shows these as import errors of the city's file; say it here too
        print(f"config problem: {problem}")
    embedded.migrate_databases()
    embedded.create_pools({c.resources.pool for c in configs.values() if c.resources.pool})
    for city, path in write_missing_demo_data(configs.values()):
        print(f"{city}: no data at {path}; wrote demo rides there so its runs have something to read")
    bin_dir = Path(sys.executable).parent
    # `airflow standalone` starts its components as `airflow ...` from PATH, which `make` does not point at .venv/bin.
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["AIRFLOW__API__HOST"] = "127.0.0.1"  # demo users and passwords: loopback only, like the MLflow UI
    print(
        f"Airflow UI: http://localhost:{embedded.API_PORT}  (users: "
        + ", ".join(f"{user}/{embedded.password(user)}" for user in users)
        + f")\nMLflow UI:  http://localhost:{embedded.MLFLOW_PORT}\nStop with Ctrl-C.",
        flush=True,
    )
    mlflow = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "ui",
            "--backend-store-uri",
            env["MLFLOW_TRACKING_URI"],
            "--host",
            "127.0.0.1",
            "--port",
            str(embedded.MLFLOW_PORT),
        ],
    )
    airflow = subprocess.Popen([str(bin_dir / "airflow"), "standalone"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` stops both servers too, not only this process
    try:
        return airflow.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for server in (airflow, mlflow):
            server.terminate()
        for server in (airflow, mlflow):
            server.wait(timeout=60)


def write_missing_demo_data(configs: Iterable[CityConfig]) -> list[tuple[str, Path]]:
    """Demo rides for cities whose data is a local file that does not exist yet (a fresh clone), ending today."""
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    written = []
    for config in configs:
        uri = config.data_uri
        if uri.startswith("s3://") or "{{" in uri or Path(uri).exists():
            continue
        write_city_data(make_city_data(config.city, end=datetime.now(timezone.utc).date()), uri)
        written.append((config.city, Path(uri)))
    return written
