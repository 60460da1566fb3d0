"""``airflow-ml demo``: the whole product on the embedded default, with real Airflow and real MLflow.

Every city of ``dags/configs`` is retrained and approved through Airflow's REST API by its first approver, except
where ``STORIES`` tells another story: with the shipped configs, Lisbon gets a champion, then a retrain on data whose
training labels are inflated 10% in one district: about as good on average, clearly worse there, and blocked by that
district's guardrail; Warsaw's data has an injected fault that validate_data stops.
The demo resets its own state under ``.airflow-ml/`` each time.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from airflow_ml_provider.config import CityConfig, load_all
from airflow_ml_provider.core.registry import APPROVE
from airflow_ml_provider.tools import embedded, runner


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
    with runner.logs_to(log_path) as console:
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
    app = runner.api_app()
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
            answer = runner.Answer(run.approver, APPROVE, "demo: report reviewed, guardrails pass")
        reason = {"reason": f"demo: {run.story}"}
        outcome = runner.run_city(app, bag.get_dag(dag_id), config, run.logical_date, reason, answer)
        _say(console, "  " + outcome.why.replace("\n", "\n  "))
        if outcome.answered:
            _say(console, "  " + outcome.answered)
        row = (outcome.candidate, outcome.verdict, outcome.decision, outcome.champion)
        outcomes.append(Outcome(run.city, run.story, *row))
    return outcomes


def _print_table(outcomes: list[Outcome]) -> None:
    from airflow_ml_provider.tools.status import format_table  # imports Airflow: only after embedded.apply()

    headers = ("city", "run", "candidate", "guardrails", "decision", "champion")
    rows = [(o.city, o.story, o.candidate, o.verdict, o.decision, o.champion) for o in outcomes]
    print()
    print(format_table(headers, rows))


def _say(out: TextIO, message: str) -> None:
    runner.say(out, "demo", message)
