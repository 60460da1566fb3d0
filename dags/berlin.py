"""Airflow DAGs retrain_berlin and rollback_berlin, built from configs/berlin.yaml by airflow-ml-provider.

One loader file per city: a broken city config is an import error for this file only.
"""

from airflow_ml_provider.factory import city_dags

globals().update(city_dags(__file__))
