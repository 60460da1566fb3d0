"""Airflow plugins of the provider: the fleet page in the Airflow UI."""
