"""airflow-ml-provider: per-city model retraining DAGs for Apache Airflow."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-ml-provider",
        "name": "ML retraining (per-city models)",
        "description": "Per-city retraining DAGs from YAML: Great Expectations validation, scikit-learn training, "
        "sliced guardrails against the champion, MLflow registry with aliases, and human approval.",
        "versions": [__version__],
        "hook-class-names": ["airflow_ml_provider.hooks.mlflow.MlflowHook"],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_ml_provider.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Tracking URI", "login": "Username", "password": "Password"},
                    "placeholders": {"host": "http://mlflow:5000 or sqlite:///path/mlflow.db"},
                },
            }
        ],
        "operators": [
            {
                "integration-name": "MLflow",
                "python-modules": [
                    "airflow_ml_provider.operators.validate",
                    "airflow_ml_provider.operators.train",
                    "airflow_ml_provider.operators.evaluate",
                    "airflow_ml_provider.operators.register",
                    "airflow_ml_provider.operators.approve",
                    "airflow_ml_provider.operators.promote",
                ],
            },
            {
                "integration-name": "Airflow REST API",
                "python-modules": ["airflow_ml_provider.operators.digest"],
            },
        ],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["airflow_ml_provider.hooks.mlflow"]},
            {"integration-name": "Airflow REST API", "python-modules": ["airflow_ml_provider.hooks.airflow_api"]},
        ],
        "integrations": [
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/docs/latest/"},
            {
                "integration-name": "Airflow REST API",
                "external-doc-url": "https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html",
            },
        ],
    }
