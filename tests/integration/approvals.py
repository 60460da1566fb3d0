"""The approver of the in-process DAG tests: answers a DAG's approval from a background thread, as a person would,
through Airflow's REST route."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_ml_provider.tools import embedded


class Approver:
    """Answers the DAG's approval from a background thread, as a person would, through the REST API."""

    def __init__(self, app: Any, dag_id: str, act: Callable[[Any, dict[str, Any]], None]) -> None:
        self.app, self.dag_id, self.act = app, dag_id, act
        self.request: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from fastapi.testclient import TestClient

        from airflow_ml_provider.hooks.api_client import AirflowApi

        try:
            with TestClient(self.app) as http:
                admin = AirflowApi(http, "admin", "admin")
                deadline = time.monotonic() + 600
                while not self.done.is_set() and time.monotonic() < deadline:
                    # Only once the task is parked: an answer that lands while it is still entering
                    # awaiting_input is recorded but never resumes it (dag.test() then waits for ever).
                    pending = [
                        p
                        for p in admin.pending_approvals(self.dag_id)
                        if p["task_instance"].get("state") == "awaiting_input"
                    ]
                    if pending:
                        self.request = pending[0]
                        self.act(http, self.request)
                        return
                    time.sleep(0.5)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def __enter__(self) -> Approver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=60)


def answer_as(user: str, option: str, reason: str) -> Callable[[Any, dict[str, Any]], None]:
    def act(http: Any, request: dict[str, Any]) -> None:
        from airflow_ml_provider.hooks.api_client import AirflowApi

        ti = request["task_instance"]
        AirflowApi(http, user, embedded.password(user)).answer(ti["dag_id"], ti["dag_run_id"], option, reason)

    return act
