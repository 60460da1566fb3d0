"""Airflow DAGs retrain_lisbon and rollback_lisbon, built from configs/lisbon.yaml by airflow-ml-provider.

One loader file per city: a broken city config is an import error for this file only.
"""

from airflow_ml_provider.factory import city_dags

globals().update(city_dags(__file__))
