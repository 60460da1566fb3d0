"""Create the MLflow user that Airflow works as, or reset its password to the one given: mlflow-init in the compose
stack runs it with the admin's credentials, and so does the native stack test.

    MLFLOW_ADMIN_USER=admin MLFLOW_ADMIN_PASSWORD=... MLFLOW_AIRFLOW_USER=airflow MLFLOW_AIRFLOW_PASSWORD=... \
        python mlflow_users.py http://mlflow:5000
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import RestException
from mlflow.server.auth.client import AuthServiceClient


def ensure_user(tracking_uri: str, username: str, password: str) -> str:
    """``created`` or ``password reset``; the calling process must hold the admin's credentials."""
    client = AuthServiceClient(tracking_uri)
    try:
        client.create_user(username, password)
        return "created"
    except RestException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    client.update_user_password(username, password)
    return "password reset"


if __name__ == "__main__":
    os.environ["MLFLOW_TRACKING_USERNAME"] = os.environ["MLFLOW_ADMIN_USER"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_ADMIN_PASSWORD"]
    user = os.environ["MLFLOW_AIRFLOW_USER"]
    outcome = ensure_user(sys.argv[1], user, os.environ["MLFLOW_AIRFLOW_PASSWORD"])
    print(f"MLflow user {user!r}: {outcome}")
