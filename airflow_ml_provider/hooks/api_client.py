"""A small client for Airflow's REST API (``/api/v2``): trigger runs and answer approvals as a named user.

Works over any httpx-compatible client: ``httpx.Client(base_url=...)`` for a running api-server, or FastAPI's
``TestClient`` around ``create_app(apps="core")`` to use the same routes in-process.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from airflow_ml_provider.core.digest import APPROVE_TASK

PAGE_SIZE = 100


class HttpClient(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...
    def patch(self, url: str, **kwargs: Any) -> Any: ...


class AirflowApiError(RuntimeError):
    def __init__(self, status_code: int, message: str):
        self.status_code = status_code
        super().__init__(f"HTTP {status_code}: {message}")


class AirflowApi:
    """Airflow's REST API as one user (simple auth manager token from ``/auth/token``)."""

    def __init__(self, http: HttpClient, username: str, password: str) -> None:
        self.http = http
        self.username = username
        response = http.post("/auth/token", json={"username": username, "password": password})
        self._check(response, f"log in as {username}")
        self._headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def _check(self, response: Any, doing: str) -> Any:
        if response.status_code >= 400:
            raise AirflowApiError(response.status_code, f"could not {doing}: {response.text}")
        return response.json() if response.content else None

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        body: dict[str, Any] = {"conf": conf or {}, "logical_date": logical_date}
        response = self.http.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body, headers=self._headers)
        return self._check(response, f"trigger {dag_id}")["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=self._headers)
        return self._check(response, f"read run {run_id} of {dag_id}")

    def pending_approvals(self, dag_id: str | None = None) -> list[dict[str, Any]]:
        """Approval requests nobody has answered yet (optionally of one DAG), every page of them."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.http.get(
                f"/api/v2/dags/{dag_id or '~'}/dagRuns/~/hitlDetails",
                params={"response_received": "false", "limit": PAGE_SIZE, "offset": len(found)},
                headers=self._headers,
            )
            page = self._check(response, "list pending approvals")
            found.extend(page["hitl_details"])
            if not page["hitl_details"] or len(found) >= page["total_entries"]:
                return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value as stored (JSON), or None when the task left none."""
        response = self.http.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            headers=self._headers,
        )
        if response.status_code == 404:
            return None
        value = self._check(response, f"read XCom {key} of {task_id} in {dag_id} {run_id}")["value"]
        if isinstance(value, str):  # the stored JSON, as text on some database backends
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def answer(self, dag_id: str, run_id: str, option: str, reason: str = "", task_id: str = APPROVE_TASK) -> dict:
        """Answer an approval as this user: ``Approve`` or ``Reject``; 403 when the user is not an approver."""
        response = self.http.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {"reason": reason}},
            headers=self._headers,
        )
        return self._check(response, f"answer {option} for {dag_id} {run_id} as {self.username}")
