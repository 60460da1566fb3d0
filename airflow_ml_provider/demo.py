"""``airflow-ml demo``: the whole product on the embedded default, with real Airflow and real MLflow.

Berlin is retrained and approved through Airflow's REST API by its approver; Lisbon gets a champion, then a
retrain on data with one district's training labels corrupted, which the guardrails block; Warsaw's data has an
injected fault that validate_data stops. The demo resets its own state under ``.airflow-ml/`` each time.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_ml_provider import embedded
from airflow_ml_provider.config import load_all

APPROVAL_WAIT_SECONDS = 600


@dataclass
class DemoRun:
    city: str
    story: str
    logical_date: datetime
    approver: str | None = None
    fault: str | None = None
    slice_regression: str | None = None


@dataclass
class Outcome:
    city: str
    story: str
    candidate: str
    verdict: str
    decision: str
    champion: str


def run_demo(project_root: Path) -> int:
    started = time.monotonic()
    root = project_root / ".airflow-ml"
    for stale in ("airflow", "mlflow.db", "mlartifacts", "runs", "data"):
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    embedded.apply(root, project_root / "dags")
    configs, problems = load_all(project_root / "dags" / "configs")
    if problems:
        print("City configs have problems; fix them first:\n  " + "\n  ".join(problems))
        return 1
    _say(f"Embedded Airflow (SQLite) and MLflow (SQLite) under {root}; migrating the Airflow database ...")
    embedded.migrate_databases()

    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    from airflow_ml_provider.core.demo_data import city_districts, make_city_data, write_city_data

    lisbon_district = next(d for d in city_districts("lisbon") if "airport" in d)
    runs = [
        DemoRun("berlin", "first model, approved", end, approver="berlin_ops"),
        DemoRun("lisbon", "first model, approved", end - timedelta(days=1), approver="lisbon_ops"),
        DemoRun(
            "lisbon",
            f"retrain on corrupted '{lisbon_district}' labels",
            end,
            slice_regression=lisbon_district,
            approver="lisbon_ops",
        ),
        DemoRun("warsaw", "injected data fault (null eta_seconds)", end, fault="null_target"),
    ]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(project_root / "dags"))
    if bag.import_errors:
        print("DAG import errors:", bag.import_errors)
        return 1
    app = _api_app()
    outcomes = []
    for run in runs:
        config = configs[run.city]
        data_path = config.data.uri.replace("{city}", run.city)
        write_city_data(
            make_city_data(run.city, end=end.date(), fault=run.fault, slice_regression=run.slice_regression),
            data_path,
        )
        _say(f"retrain_{run.city}: {run.story} (data {data_path}, logical date {run.logical_date:%Y-%m-%d})")
        answer = None
        if run.approver:
            answer = _approve_when_asked(app, f"retrain_{run.city}", run.approver)
        dag_run = bag.get_dag(f"retrain_{run.city}").test(
            logical_date=run.logical_date, run_conf={"reason": f"demo: {run.story}"}
        )
        if answer is not None:
            answer.stop.set()
            answer.thread.join(timeout=30)
            if answer.result:
                _say(answer.result)
        outcomes.append(_outcome(config, run, dag_run))

    _print_table(outcomes)
    _say(f"Demo finished in {time.monotonic() - started:.0f} s.")
    print(
        "\nLook around:\n"
        "  make airflow   # Airflow UI on http://localhost:8080 (log in as admin/admin or berlin_ops/berlin_ops),\n"
        "                 # MLflow UI on http://localhost:5000; trigger a city with params, approve under\n"
        "                 # Browse > Required Actions\n"
        f"  .venv/bin/airflow-ml status   # champion, approver and age per city (MLflow: {root / 'mlflow.db'})"
    )
    return 0


@dataclass
class _Answer:
    thread: threading.Thread
    stop: threading.Event
    result: str = ""


def _api_app() -> Any:
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


def _approve_when_asked(app: Any, dag_id: str, approver: str) -> _Answer:
    """In the background, answer the run's approval through Airflow's REST API, as the approver would."""
    from fastapi.testclient import TestClient

    from airflow_ml_provider.api_client import AirflowApi

    stop = threading.Event()
    answer = _Answer(thread=threading.Thread(), stop=stop)

    def approve() -> None:
        with TestClient(app) as http:
            api = AirflowApi(http, approver, embedded.DEMO_USERS[approver][1])
            deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
            while not stop.is_set() and time.monotonic() < deadline:
                pending = [p for p in api.pending_approvals(dag_id) if p["task_instance"]["dag_id"] == dag_id]
                if pending:
                    request = pending[0]
                    run_id = request["task_instance"]["dag_run_id"]
                    api.answer(dag_id, run_id, "Approve", reason="demo: report reviewed, guardrails pass")
                    answer.result = f"Approved through Airflow's REST API as '{approver}': \"{request['subject']}\""
                    return
                stop.wait(1)

    answer.thread = threading.Thread(target=approve, name=f"approve-{dag_id}", daemon=True)
    answer.thread.start()
    return answer


def _outcome(config: Any, run: DemoRun, dag_run: Any) -> Outcome:
    from airflow_ml_provider.core import registry
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    hook = MlflowHook()
    version = hook.version_of_dag_run(config.model_name, dag_run.run_id)
    champion = hook.version_by_alias(config.model_name, registry.CHAMPION)
    if version is None:
        decision = "validation failed" if states.get("validate_data") == "failed" else f"run {dag_run.state}"
        verdict, candidate = "-", "-"
    else:
        tags = version.tags
        verdict = tags.get(registry.VERDICT_TAG, "-")
        candidate = f"v{version.version}"
        decision = tags.get(registry.DECISION_TAG, "pending")
        if decision in (registry.APPROVED, registry.REJECTED):
            decision += f" by {tags.get(registry.DECIDED_BY_TAG)}"
    return Outcome(
        city=run.city,
        story=run.story,
        candidate=candidate,
        verdict=verdict,
        decision=decision,
        champion=f"v{champion.version}" if champion else "none",
    )


def _print_table(outcomes: list[Outcome]) -> None:
    from airflow_ml_provider.status import format_table  # imports Airflow: only after embedded.apply()

    headers = ("city", "run", "candidate", "guardrails", "decision", "champion")
    rows = [(o.city, o.story, o.candidate, o.verdict, o.decision, o.champion) for o in outcomes]
    print()
    print(format_table(headers, rows))


def _say(message: str) -> None:
    print(f"[airflow-ml demo] {message}", flush=True)
