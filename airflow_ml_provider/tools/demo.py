"""``airflow-ml demo``: the whole product on the embedded default, with real Airflow and real MLflow.

Every city of ``dags/configs`` is retrained and approved through Airflow's REST API by its first approver, except
where ``STORIES`` tells another story: with the shipped configs, Lisbon gets a champion, then a retrain on data whose
training labels are inflated 10% in one district: about as good on average, clearly worse there, and blocked by that
district's guardrail; Warsaw's data has an injected fault that validate_data stops.
The demo resets its own state under ``.airflow-ml/`` each time.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from airflow_ml_provider.config import CityConfig, load_all
from airflow_ml_provider.tools import embedded

APPROVAL_WAIT_SECONDS = 600


@dataclass(frozen=True)
class Story:
    """One run of a city: its data (``fault``, ``slice_regression``: see core/demo_data.py), its logical date
    (``days_before`` the demo's end date) and whether its approver approves when asked."""

    text: str
    days_before: int = 0
    approved: bool = True
    fault: str | None = None
    slice_regression: str | None = None


FIRST_MODEL = Story("first model, approved")
# Cities the shipped configs hold and that tell another story than FIRST_MODEL, in the order they run.
STORIES: dict[str, list[Story]] = {
    "lisbon": [
        Story("first model, approved", days_before=1),
        Story("retrain with 'baixa' labels inflated {slice_regression_percent}", slice_regression="baixa"),
    ],
    "warsaw": [Story("injected data fault (null eta_seconds)", approved=False, fault="null_target")],
}


@dataclass
class DemoRun:
    config: CityConfig
    story: str
    logical_date: datetime
    approver: str | None = None
    fault: str | None = None
    slice_regression: str | None = None

    @property
    def city(self) -> str:
        return self.config.city


def demo_runs(configs: dict[str, CityConfig], end: datetime) -> list[DemoRun]:
    """The runs of every city the configs hold, by city name: its ``STORIES``, else a first model, approved."""
    from airflow_ml_provider.core.demo_data import SLICE_REGRESSION_FACTOR

    percent = f"{SLICE_REGRESSION_FACTOR - 1:.0%}"
    return [
        DemoRun(
            config,
            story.text.format(slice_regression_percent=percent),
            end - timedelta(days=story.days_before),
            approver=config.approval.approvers[0] if story.approved else None,
            fault=story.fault,
            slice_regression=story.slice_regression,
        )
        for city, config in sorted(configs.items())
        for story in STORIES.get(city, [FIRST_MODEL])
    ]


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
    for stale in ("airflow", "mlflow.db", "mlartifacts", "runs", "data", "demo.log"):
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    configs, problems = load_all(project_root / "dags" / "configs")
    if problems or not configs:
        print(
            "City configs have problems; fix them first:\n  "
            + "\n  ".join(problems or ["no <city>.yaml in dags/configs"])
        )
        return 1
    embedded.apply(root, project_root / "dags", embedded.demo_users(configs.values()))
    log_path = root / "demo.log"
    _say(sys.stdout, f"Embedded Airflow (SQLite) and MLflow (SQLite) under {root}; their logs go to {log_path}")
    with _logs_to(log_path) as console:
        outcomes = _run_cities(console, project_root, configs)
    if outcomes is None:
        return 1
    _print_table(outcomes)
    _say(sys.stdout, f"Demo finished in {time.monotonic() - started:.0f} s.")
    approver = configs[min(configs)].approval.approvers[0]
    print(
        "\nLook around:\n"
        f"  make airflow   # Airflow UI on http://localhost:8080 (log in as admin/admin or {approver}/{approver}),\n"
        "                 # MLflow UI on http://localhost:5000; trigger a city with params, approve under\n"
        "                 # Browse > Required Actions\n"
        f"  .venv/bin/airflow-ml status   # champion, approver and age per city (MLflow: {root / 'mlflow.db'})"
    )
    return 0


def _run_cities(console: TextIO, project_root: Path, configs: dict[str, CityConfig]) -> list[Outcome] | None:
    """Every demo run, narrated on ``console``; None when the DAG folder does not import."""
    _say(console, "Migrating the Airflow database ...")
    embedded.migrate_databases()

    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    from airflow.dag_processing.dagbag import DagBag

    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    bag = DagBag(str(project_root / "dags"))
    if bag.import_errors:
        print("DAG import errors:", bag.import_errors, file=console)
        return None
    app = _api_app()
    outcomes = []
    for run in demo_runs(configs, end):
        config = run.config
        data_path = config.data_uri
        write_city_data(
            make_city_data(run.city, end=end.date(), fault=run.fault, slice_regression=run.slice_regression),
            data_path,
        )
        dag_id = config.retrain_dag_id
        _say(console, f"{dag_id}: {run.story} (data {data_path}, logical date {run.logical_date:%Y-%m-%d})")
        answer = None
        if run.approver:
            answer = _approve_when_asked(app, dag_id, run.approver)
        dag_run = bag.get_dag(dag_id).test(logical_date=run.logical_date, run_conf={"reason": f"demo: {run.story}"})
        if answer is not None:
            answer.stop.set()
            answer.thread.join(timeout=30)
        _say(console, "  " + _why(dag_run).replace("\n", "\n  "))
        if answer is not None and answer.result:
            _say(console, "  " + answer.result)
        outcomes.append(_outcome(run, dag_run))
    return outcomes


@contextmanager
def _logs_to(path: Path) -> Iterator[TextIO]:
    """Send this process's stdout and stderr (Airflow's and MLflow's logs: hundreds of lines per run) to ``path``;
    yield the terminal for the demo's own lines. Restored on the way out, so an error still reaches the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(1), "w", buffering=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            console.close()


def _why(dag_run: Any) -> str:
    """Why the run ended as it did, from its XComs: the validation failure, else the report's verdict line."""
    from airflow_ml_provider.operators.evaluate import REPORT_MARKDOWN_KEY
    from airflow_ml_provider.operators.validate import FAILURE_KEY

    failure = _xcom(dag_run, "validate_data", FAILURE_KEY)
    if failure:
        return f"validate_data failed: {failure}"
    report = _xcom(dag_run, "evaluate", REPORT_MARKDOWN_KEY)
    if not report:
        return f"run {dag_run.state}; see the task logs"
    why = f"guardrail report: {report.splitlines()[0]}"
    summary = _xcom(dag_run, "evaluate", "return_value")["summary"]
    if summary["champion"]:  # the aggregate alone, as a gate without slices would see it
        metric, old, new = summary["primary_metric"], summary["champion"], summary["candidate"]
        judged = "fails too" if any(f["slice"] == "overall" for f in summary["failed"]) else "within tolerance"
        why += f"\nall rows: {metric} {old:.4g} (champion) -> {new:.4g} (candidate), {new / old - 1:+.1%}: {judged}"
    return why


def _xcom(dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


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

    from airflow_ml_provider.tools.api_client import AirflowApi

    stop = threading.Event()
    answer = _Answer(thread=threading.Thread(), stop=stop)

    def approve() -> None:
        with TestClient(app) as http:
            api = AirflowApi(http, approver, embedded.password(approver))
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


def _outcome(run: DemoRun, dag_run: Any) -> Outcome:
    from airflow_ml_provider.core import registry
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    hook = MlflowHook()
    model_name = run.config.model_name
    version = hook.version_of_dag_run(model_name, dag_run.run_id)
    champion = hook.version_by_alias(model_name, registry.CHAMPION)
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
    from airflow_ml_provider.tools.status import format_table  # imports Airflow: only after embedded.apply()

    headers = ("city", "run", "candidate", "guardrails", "decision", "champion")
    rows = [(o.city, o.story, o.candidate, o.verdict, o.decision, o.champion) for o in outcomes]
    print()
    print(format_table(headers, rows))


def _say(out: TextIO, message: str) -> None:
    print(f"[airflow-ml demo] {message}", file=out, flush=True)
