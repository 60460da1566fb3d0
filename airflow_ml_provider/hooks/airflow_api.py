"""AirflowApiHook: Airflow's own REST API (``/api/v2``) from inside a task, as one configured user.

Tasks of Airflow 3 may not open the metadata database; what they need of other DAGs' runs (pending approvals, a
run's XCom) they read from the API like any client. The connection (type http): host = the API server's URL
(``http://airflow-apiserver:8080``, or host, schema and port), login and password of a user allowed to read what
the task needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.api_client import AirflowApi


class AirflowApiHook(BaseHook):
    conn_name_attr = "airflow_conn_id"
    default_conn_name = "airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API"

    def __init__(self, airflow_conn_id: str = default_conn_name, timeout: float = 60) -> None:
        super().__init__()
        self.airflow_conn_id = airflow_conn_id
        self.timeout = timeout

    @property
    def base_url(self) -> str:
        conn = self.get_connection(self.airflow_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"Airflow connection {self.airflow_conn_id!r} has no host; set it to the API server's URL")
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        return f"{host}:{conn.port}" if conn.port else host

    def get_conn(self) -> AirflowApi:
        """A logged-in client (``POST /auth/token`` with the connection's login and password)."""
        import httpx

        from airflow_ml_provider.hooks.api_client import AirflowApi

        conn = self.get_connection(self.airflow_conn_id)
        http = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        return AirflowApi(http, conn.login or "", conn.password or "")
