"""Airflow DAG approval_digest, built from configs/_fleet.yaml by airflow-ml-provider (none while the file has no
approval_digest section): each approver gets one message listing the model approvals waiting for them."""

from airflow_ml_provider.factory import fleet_dags

globals().update(fleet_dags(__file__))
