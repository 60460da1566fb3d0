"""City retraining runs in this process on the embedded default, as ``airflow-ml demo`` and ``airflow-ml run`` do them.

A run is Airflow's own ``dag.test()`` against the real metadata DB and MLflow store under ``.airflow-ml/``. Its
approval is answered through Airflow's REST API (in-process, the same routes as the API server) as a named user, so
only the city's approvers can answer, exactly as in the UI.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core.digest import APPROVE_TASK
from airflow_ml_provider.core.registry import APPROVE
from airflow_ml_provider.tools import embedded

APPROVAL_WAIT_SECONDS = 600
WAITING_STATES = ("awaiting_input", "deferred")  # an approval task that waits for its answer


@dataclass
class Answer:
    """Who answers the run's approval, and how; ``None`` of these stops the run at its approval instead."""

    user: str
    option: str  # registry.APPROVE or registry.REJECT
    reason: str


@dataclass
class Outcome:
    """How one run ended, from its task states and the candidate's MLflow tags."""

    dag_run: Any
    states: dict[str, str]
    candidate: str  # "v3" or "-"
    verdict: str  # pass, fail or "-"
    decision: str  # approved by X, rejected by X, blocked, pending, validation failed, run failed
    champion: str  # "v3" or "none"
    why: str  # the validation failure, or the guardrail report's verdict line (and the aggregate's)
    answered: str  # what the approver did, or what is waiting for an answer
    waiting: bool  # stopped at its approval, which nobody answered yet

    @property
    def validation_failed(self) -> bool:
        return self.states.get("validate_data") == "failed"


@contextmanager
def logs_to(path: Path) -> Iterator[TextIO]:
    """Send this process's stdout and stderr (Airflow's and MLflow's logs: hundreds of lines per run) to ``path``;
    yield the terminal for the tool's own lines. Restored on the way out, so an error still reaches the terminal."""
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


def api_app() -> Any:
    """Airflow's REST API app, served in-process (no port): what the approvers' answers go through."""
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


def run_city(
    app: Any,
    dag: Any,
    config: CityConfig,
    logical_date: datetime,
    conf: dict[str, Any],
    answer: Answer | None,
) -> Outcome:
    """One run of the city's retraining DAG. With ``answer`` its approval is answered as that user when asked;
    without, the run stops when the approval is asked and stays waiting for an answer in the metadata DB."""
    watcher = _watch_approval(app, config.retrain_dag_id, logical_date, answer)
    try:
        with _interruptible():
            dag_run = dag.test(logical_date=logical_date, run_conf=conf)
    except KeyboardInterrupt:
        watcher.stop.set()  # first: the watcher repeats its interrupt until it sees this
        if not watcher.parked.is_set():
            raise  # Ctrl-C from the user
        dag_run = _latest_run(config.retrain_dag_id)
    finally:
        watcher.stop.set()
        watcher.thread.join(timeout=30)
    outcome = outcome_of(config, dag_run)
    outcome.answered = watcher.result
    outcome.waiting = watcher.parked.is_set()
    return outcome


@contextmanager
def _interruptible() -> Iterator[None]:
    """Let the watcher's interrupt reach this (main) thread. A process started in the background by a non-interactive
    shell (CI, nohup, cron) inherits SIGINT ignored, and then ``_thread.interrupt_main`` does nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Watcher:
    thread: threading.Thread
    stop: threading.Event
    parked: threading.Event
    result: str = ""


def _watch_approval(app: Any, dag_id: str, logical_date: datetime, answer: Answer | None) -> _Watcher:
    """In the background, wait for the run's approval request; answer it through the REST API as ``answer.user``, or
    (no answer) interrupt ``dag.test()``, which would otherwise wait for an answer for as long as the approval lasts."""
    from fastapi.testclient import TestClient

    from airflow_ml_provider.hooks.api_client import AirflowApi, AirflowApiError

    watcher = _Watcher(thread=threading.Thread(), stop=threading.Event(), parked=threading.Event())

    def watch() -> None:
        with TestClient(app) as http:
            listener = AirflowApi(http, embedded.ADMIN, embedded.password(embedded.ADMIN))
            deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
            while not watcher.stop.is_set() and time.monotonic() < deadline:
                # Only a parked task: an answer recorded before the task is in awaiting_input never resumes it.
                pending = [
                    p
                    for p in listener.pending_approvals(dag_id)
                    if _of_run(p, dag_id, logical_date) and p["task_instance"].get("state") == "awaiting_input"
                ]
                if not pending:
                    watcher.stop.wait(1)
                    continue
                request = pending[0]
                subject = request["subject"]
                if answer is None:
                    watcher.result = f'waiting for an answer: "{subject}"'
                    _stop_main(watcher)
                    return
                run_id = request["task_instance"]["dag_run_id"]
                try:
                    api = AirflowApi(http, answer.user, embedded.password(answer.user))
                    api.answer(dag_id, run_id, answer.option, reason=answer.reason)
                except AirflowApiError as exc:
                    watcher.result = f"{answer.option} as '{answer.user}' refused: {exc}"
                    _stop_main(watcher)
                    return
                verb = "Approved" if answer.option == APPROVE else "Rejected"
                watcher.result = f"{verb} through Airflow's REST API as '{answer.user}': \"{subject}\""
                return

    def watch_or_stop() -> None:
        try:
            watch()
        except Exception as exc:  # a dead watcher would leave dag.test() waiting for an answer for ever
            traceback.print_exc()
            watcher.result = f"watching the approval request failed: {exc}"
            _stop_main(watcher)

    watcher.thread = threading.Thread(target=watch_or_stop, name=f"approval-{dag_id}", daemon=True)
    watcher.thread.start()
    return watcher


def _stop_main(watcher: _Watcher) -> None:
    """Interrupt ``dag.test()`` in the main thread, again every few seconds until run_city has caught it: an interrupt
    that lands while dag.test() is still finishing the task that just parked can be swallowed there."""
    watcher.parked.set()
    while not watcher.stop.is_set():
        _thread.interrupt_main()
        watcher.stop.wait(5)


def _of_run(request: dict[str, Any], dag_id: str, logical_date: datetime) -> bool:
    """Whether an approval request belongs to the run of ``dag_id`` at ``logical_date`` (not an older waiting one)."""
    task = request["task_instance"]
    when = task.get("logical_date")
    return task["dag_id"] == dag_id and when is not None and datetime.fromisoformat(when) == logical_date


def waiting_run(dag_id: str, logical_date: datetime) -> Any:
    """The run of ``dag_id`` at ``logical_date`` if it stopped at its approval (unanswered, or answered while this
    process was not running it); else None."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    with create_session() as session:
        run = (
            session.query(DagRun)
            .join(TaskInstance, (TaskInstance.dag_id == DagRun.dag_id) & (TaskInstance.run_id == DagRun.run_id))
            .filter(
                DagRun.dag_id == dag_id,
                DagRun.logical_date == logical_date,
                DagRun.state == DagRunState.RUNNING,
                TaskInstance.task_id == APPROVE_TASK,
                TaskInstance.state.in_((*WAITING_STATES, TaskInstanceState.SCHEDULED)),
            )
            .first()
        )
        if run is not None:
            session.expunge(run)
        return run


def answer_and_finish(app: Any, dag: Any, config: CityConfig, dag_run: Any, answer: Answer) -> Outcome:
    """Answer a run waiting at its approval through the REST API as ``answer.user``, then run its remaining tasks
    here, as ``dag.test()`` would have had it kept waiting."""
    from fastapi.testclient import TestClient

    from airflow_ml_provider.hooks.api_client import AirflowApi, AirflowApiError

    verb = "Approved" if answer.option == APPROVE else "Rejected"
    answered = f"{verb} through Airflow's REST API as '{answer.user}'"
    if _approve_state(dag_run) in WAITING_STATES:
        with TestClient(app) as http:
            try:
                api = AirflowApi(http, answer.user, embedded.password(answer.user))
                api.answer(dag.dag_id, dag_run.run_id, answer.option, reason=answer.reason)
            except AirflowApiError as exc:
                outcome = outcome_of(config, dag_run)
                outcome.answered, outcome.waiting = f"{answer.option} as '{answer.user}' refused: {exc}", True
                return outcome
    else:
        answered = "answered earlier; finishing the run"
    _finish(dag, dag_run.run_id)
    outcome = outcome_of(config, _latest_run(dag.dag_id, dag_run.run_id))
    outcome.answered = answered
    return outcome


def _approve_state(dag_run: Any) -> Any:
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return states.get(APPROVE_TASK)


def _finish(dag: Any, run_id: str) -> None:
    """The remaining tasks of a run, run in this process: ``dag.test()``'s own loop, without its clearing the run."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task  # what dag.test() runs each task with
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState

    session = settings.Session()
    dag_run = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id).one()
    dag_run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    while dag_run.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            ti for ti in dag_run.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED
        ]
        if not scheduled and dag_run.state == DagRunState.RUNNING:
            time.sleep(1)
        for ti in scheduled:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    session.close()


def _latest_run(dag_id: str, run_id: str | None = None) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(DagRun).filter(DagRun.dag_id == dag_id)
        if run_id is not None:
            query = query.filter(DagRun.run_id == run_id)
        run = query.order_by(DagRun.id.desc()).first()
        session.expunge(run)
        return run


def outcome_of(config: CityConfig, dag_run: Any) -> Outcome:
    from airflow_ml_provider.core import registry
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    states = {ti.task_id: str(ti.state) if ti.state else "not run" for ti in dag_run.get_task_instances()}
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
        dag_run=dag_run,
        states=states,
        candidate=candidate,
        verdict=verdict,
        decision=decision,
        champion=f"v{champion.version}" if champion else "none",
        why=why(dag_run),
        answered="",
        waiting=False,
    )


def why(dag_run: Any) -> str:
    """Why the run ended as it did, from its XComs: the validation failure, else the report's verdict line."""
    from airflow_ml_provider.core.handoff import FAILURE_KEY, REPORT_MARKDOWN_KEY, Evaluated, Validated

    failure = xcom(dag_run, Validated.STEP, FAILURE_KEY)
    if failure:
        return f"validate_data failed: {failure}"
    report = xcom(dag_run, Evaluated.STEP, REPORT_MARKDOWN_KEY)
    if not report:
        return f"run {dag_run.state}; see the task logs"
    text = f"guardrail report: {report.splitlines()[0]}"
    summary = xcom(dag_run, Evaluated.STEP, "return_value")["summary"]
    if summary["champion"]:  # the aggregate alone, as a gate without slices would see it
        metric, old, new = summary["primary_metric"], summary["champion"], summary["candidate"]
        judged = "fails too" if any(f["slice"] == "overall" for f in summary["failed"]) else "within tolerance"
        text += f"\nall rows: {metric} {old:.4g} (champion) -> {new:.4g} (candidate), {new / old - 1:+.1%}: {judged}"
    return text


def xcom(dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def say(out: TextIO, tool: str, message: str) -> None:
    print(f"[airflow-ml {tool}] {message}", file=out, flush=True)
