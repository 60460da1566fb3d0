"""``airflow-ml standalone``: Airflow standalone and the MLflow UI on the embedded default, for the interactive path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_ml_provider import embedded
from airflow_ml_provider.config import load_all


def run_standalone(project_root: Path) -> int:
    env = embedded.apply(project_root / ".airflow-ml", project_root / "dags")
    configs, problems = load_all(project_root / "dags" / "configs")
    for problem in problems:  # Airflow shows these as import errors of the city's file; say it here too
        print(f"config problem: {problem}")
    embedded.migrate_databases()
    embedded.create_pools({c.resources.pool for c in configs.values() if c.resources.pool})
    bin_dir = Path(sys.executable).parent
    print(
        f"Airflow UI: http://localhost:{embedded.API_PORT}  (users: "
        + ", ".join(f"{u}/{p}" for u, (_, p) in embedded.DEMO_USERS.items())
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
    try:
        return subprocess.call([str(bin_dir / "airflow"), "standalone"])
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)
