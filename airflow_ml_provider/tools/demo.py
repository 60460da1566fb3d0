"""``airflow-ml demo``: the whole product on the embedded default, with real Airflow and real MLflow.

Berlin is retrained and approved through Airflow's REST API by its approver; Lisbon gets a champion, then a
retrain on data whose training labels are inflated 10% in one district: about as good on average, clearly worse there,
and blocked by that district's guardrail; Warsaw's data has an injected fault that validate_data stops.
The demo resets its own state under ``.airflow-ml/`` each time.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from airflow_ml_provider.config import load_all
from airflow_ml_provider.tools import embedded, runner


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
    for stale in ("airflow", "mlflow.db", "mlartifacts", "runs", "data", "demo.log"):
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
    log_path = root / "demo.log"
    _say(sys.stdout, f"Embedded Airflow (SQLite) and MLflow (SQLite) under {root}; their logs go to {log_path}")
    with runner.logs_to(log_path) as console:
        outcomes = _run_cities(console, project_root, configs)
    if outcomes is None:
        return 1
    _print_table(outcomes)
    _say(sys.stdout, f"Demo finished in {time.monotonic() - started:.0f} s.")
    print(
        "\nLook around:\n"
        "  make airflow   # Airflow UI on http://localhost:8080 (log in as admin/admin or berlin_ops/berlin_ops),\n"
        "                 # MLflow UI on http://localhost:5000; trigger a city with params, approve under\n"
        "                 # Browse > Required Actions\n"
        f"  .venv/bin/airflow-ml status   # champion, approver and age per city (MLflow: {root / 'mlflow.db'})"
    )
    return 0


def _run_cities(console: TextIO, project_root: Path, configs: dict[str, Any]) -> list[Outcome] | None:
    """Every demo run, narrated on ``console``; None when the DAG folder does not import."""
    _say(console, "Migrating the Airflow database ...")
    embedded.migrate_databases()

    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    from airflow_ml_provider.core.demo_data import SLICE_REGRESSION_FACTOR, make_city_data, write_city_data

    runs = [
        DemoRun("berlin", "first model, approved", end, approver="berlin_ops"),
        DemoRun("lisbon", "first model, approved", end - timedelta(days=1), approver="lisbon_ops"),
        DemoRun(
            "lisbon",
            f"retrain with 'baixa' labels inflated {SLICE_REGRESSION_FACTOR - 1:.0%}",
            end,
            slice_regression="baixa",
            approver="lisbon_ops",
        ),
        DemoRun("warsaw", "injected data fault (null eta_seconds)", end, fault="null_target"),
    ]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(project_root / "dags"))
    if bag.import_errors:
        print("DAG import errors:", bag.import_errors, file=console)
        return None
    app = runner.api_app()
    passwords = {user: password for user, (_, password) in embedded.DEMO_USERS.items()}
    outcomes = []
    for run in runs:
        config = configs[run.city]
        data_path = config.data_uri
        write_city_data(
            make_city_data(run.city, end=end.date(), fault=run.fault, slice_regression=run.slice_regression),
            data_path,
        )
        _say(console, f"retrain_{run.city}: {run.story} (data {data_path}, logical date {run.logical_date:%Y-%m-%d})")
        answer = None
        if run.approver:
            answer = runner.Answer(run.approver, runner.APPROVE, "demo: report reviewed, guardrails pass")
        outcome = runner.run_city(
            app,
            bag.get_dag(config.retrain_dag_id),
            config,
            run.logical_date,
            {"reason": f"demo: {run.story}"},
            answer,
            passwords,
        )
        _say(console, "  " + outcome.why.replace("\n", "\n  "))
        if outcome.answered:
            _say(console, "  " + outcome.answered)
        outcomes.append(
            Outcome(run.city, run.story, outcome.candidate, outcome.verdict, outcome.decision, outcome.champion)
        )
    return outcomes


def _print_table(outcomes: list[Outcome]) -> None:
    from airflow_ml_provider.tools.status import format_table  # imports Airflow: only after embedded.apply()

    headers = ("city", "run", "candidate", "guardrails", "decision", "champion")
    rows = [(o.city, o.story, o.candidate, o.verdict, o.decision, o.champion) for o in outcomes]
    print()
    print(format_table(headers, rows))


def _say(out: TextIO, message: str) -> None:
    runner.say(out, "demo", message)
