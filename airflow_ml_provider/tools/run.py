"""``airflow-ml run CITY``: one run of a city's retraining DAG on the embedded default, told step by step.

Real Airflow (metadata DB on SQLite) and real MLflow under ``.airflow-ml/``, as ``airflow-ml demo`` runs them, without
starting servers. The exit code says how the run ended, so CI can run it on config changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from airflow_ml_provider.config import CityConfig, load_all
from airflow_ml_provider.tools import embedded, runner

EXIT_CODES = {
    0: "success: promoted (with --approve-as), or passed validation and guardrails and waits for approval",
    1: "any other error: config, data that cannot be read, a task that crashed, an answer Airflow refused",
    2: "wrong arguments",
    3: "validation failed: nothing was trained",
    4: "guardrails failed: the candidate is blocked (or waits with failed guardrails)",
    5: "rejected",
}
OK, ERROR, VALIDATION_FAILED, GUARDRAILS_FAILED, REJECTED = 0, 1, 3, 4, 5
STEP_WIDTH = 14


@dataclass(frozen=True)
class RunRequest:
    city: str
    logical_date: datetime | None
    conf: dict[str, Any]
    answer: runner.Answer | None


def run_command(project_root: Path, request: RunRequest) -> int:
    root = project_root / ".airflow-ml"
    dags_folder = project_root / "dags"
    configs, problems = load_all(dags_folder / "configs")
    config = configs.get(request.city)
    if config is None:
        mine = [p for p in problems if p.startswith(f"{request.city}.yaml")]
        print("\n".join(mine) or f"no city {request.city!r} in {dags_folder / 'configs'} (cities: {sorted(configs)})")
        return ERROR
    answer = request.answer
    if answer is not None and answer.user not in config.approval.approvers:
        print(
            f"{answer.user!r} is not an approver of {request.city} (approval.approvers in {request.city}.yaml: "
            f"{config.approval.approvers}); Airflow would refuse the answer"
        )
        return ERROR
    embedded.apply(root, dags_folder, embedded.demo_users(configs.values()))
    try:
        logical_date = request.logical_date or default_logical_date(config)
    except ValueError as exc:
        print(exc)
        return ERROR
    log_path = root / "run.log"
    print(
        f"[airflow-ml run] Embedded Airflow (SQLite) and MLflow (SQLite) under {root}; their logs go to {log_path}",
        flush=True,
    )
    with runner.logs_to(log_path) as console:
        return _run(console, dags_folder, config, logical_date, request)


def default_logical_date(config: CityConfig) -> datetime:
    """Where the run's windows end: midnight (UTC) after the data's last row, so the newest rows are evaluated on.
    A templated data URI names no table yet: today, as a scheduled run would."""
    from airflow_ml_provider.tools.table_inference import data_end, read_table, timestamps

    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if "{{" in config.data_uri:
        return today
    frame = read_table(config.data_uri, config.data.aws_conn_id)  # DatasetError is a ValueError: reported as is
    column = config.data.timestamp_column
    parsed = timestamps(frame[column]) if column in frame.columns else None
    if parsed is None or parsed.isna().all():
        return today  # validate_data will say what is wrong with the column
    return data_end(parsed.max().to_pydatetime(warn=False))


def _run(
    console: TextIO,
    dags_folder: Path,
    config: CityConfig,
    logical_date: datetime,
    request: RunRequest,
) -> int:
    from airflow.dag_processing.dagbag import DagBag

    say = _sayer(console)
    say("Migrating the Airflow database ...")
    embedded.migrate_databases()
    bag = DagBag(str(dags_folder / f"{config.city}.py"))
    if bag.import_errors:
        for error in bag.import_errors.values():
            say(f"DAG import error: {error}")
        return ERROR
    approvers = ", ".join(f"{a}/{embedded.password(a)}" for a in config.approval.approvers)
    say(
        f"{config.retrain_dag_id}: data {config.data_uri}, logical date {logical_date:%Y-%m-%d %H:%M} UTC "
        f"(windows end there); approvers (local accounts): {approvers}"
    )
    conf = {"reason": f"airflow-ml run {config.city}", **request.conf}
    dag = bag.get_dag(config.retrain_dag_id)
    waiting = runner.waiting_run(config.retrain_dag_id, logical_date) if request.answer else None
    if waiting is not None and request.answer is not None:
        say(f"  the run {waiting.run_id} waits at its approval: answering it instead of retraining")
        outcome = runner.answer_and_finish(runner.api_app(), dag, config, waiting, request.answer)
    else:
        outcome = runner.run_city(runner.api_app(), dag, config, logical_date, conf, request.answer)
    _tell(say, config, outcome)
    return _exit_code(outcome, request.answer)


def _tell(say: Any, config: CityConfig, outcome: runner.Outcome) -> None:
    from airflow_ml_provider.factory import RETRAIN_TASK_IDS

    run = outcome.dag_run
    validation = runner.xcom(run, "validate_data", "return_value") or {}
    evaluation = runner.xcom(run, "evaluate", "return_value") or {}
    details = {
        "validate_data": _validation_text(validation),
        "evaluate": outcome.why if evaluation else "",
        "register": f"{config.model_name} {outcome.candidate} ({outcome.decision})" if outcome.candidate != "-" else "",
        "approve": outcome.answered,
        "promote": f"champion {outcome.champion}",
    }
    for task_id in RETRAIN_TASK_IDS:
        state = outcome.states.get(task_id) or "not run"
        if task_id == "approve" and outcome.waiting:
            state = "waiting"
        detail = details.get(task_id, "") if state not in ("skipped", "not run", "upstream_failed") else ""
        if task_id == "validate_data" and outcome.validation_failed:
            detail = outcome.why
        say(f"  {task_id:<{STEP_WIDTH}} {state:<9} {detail}".rstrip().replace("\n", "\n" + " " * 20))
    for failed in (evaluation.get("summary") or {}).get("failed", []):
        relative = failed.get("relative_delta")
        change = f"{relative:+.1%}" if relative is not None else f"{failed.get('delta')}"
        say(f"    failed slice: {failed['slice']}: {failed['metric']} {change}")
    if validation.get("mlflow_run_id"):
        say(f"  report: {_report_location(validation['mlflow_run_id'])}")
    if outcome.waiting and outcome.answered.startswith("waiting"):
        approver = config.approval.approvers[0]
        say(
            f"The run waits at its approval. Answer it as one of {config.approval.approvers} (password: the name):\n"
            f"  airflow-ml run {config.city} --approve-as {approver}   (or --reject-as {approver}): answers this "
            "waiting run and finishes it, without retraining"
        )


def _validation_text(validation: dict[str, Any]) -> str:
    summary = validation.get("summary") or {}
    if not summary:
        return ""
    text = f"{summary['train_rows']:,} train rows, {summary['eval_rows']:,} eval rows"
    if summary.get("warnings"):
        text += f", {summary['warnings']} warning(s): {', '.join(summary.get('warning_checks', []))}"
    return text


def _report_location(mlflow_run_id: str) -> str:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    artifacts = MlflowHook().client.get_run(mlflow_run_id).info.artifact_uri
    return f"{artifacts.removeprefix('file://')}/evaluation/report.md (MLflow run {mlflow_run_id})"


def _exit_code(outcome: runner.Outcome, answer: runner.Answer | None) -> int:
    if outcome.validation_failed:
        return VALIDATION_FAILED
    if outcome.decision.startswith("rejected"):
        return REJECTED
    if outcome.waiting:
        if not outcome.answered.startswith("waiting"):
            return ERROR  # the answer was refused
        return GUARDRAILS_FAILED if outcome.verdict == "fail" else OK
    if outcome.decision == "blocked" or (outcome.verdict == "fail" and not outcome.decision.startswith("approved")):
        return GUARDRAILS_FAILED
    promoted = outcome.candidate != "-" and outcome.champion == outcome.candidate
    return OK if promoted or (answer is None and outcome.states.get("evaluate") == "success") else ERROR


def _sayer(console: TextIO) -> Any:
    def say(message: str) -> None:
        runner.say(console, "run", message)

    return say
