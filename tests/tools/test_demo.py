"""`airflow-ml demo`'s runs come from the city configs: every city runs, by its DAG id, approved by its approver."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from airflow_ml_provider.config import load_all
from airflow_ml_provider.tools.demo import demo_runs

PROJECT = Path(__file__).resolve().parents[2]
END = datetime(2026, 3, 2, tzinfo=timezone.utc)


def test_shipped_cities_tell_their_stories() -> None:
    configs, _ = load_all(PROJECT / "dags" / "configs")
    runs = [(r.city, r.config.retrain_dag_id, r.logical_date.day, r.approver, r.fault, r.slice_regression)
            for r in demo_runs(configs, END)]  # fmt: skip
    assert runs == [
        ("berlin", "retrain_berlin", 2, "berlin_ops", None, None),
        ("lisbon", "retrain_lisbon", 1, "lisbon_ops", None, None),
        ("lisbon", "retrain_lisbon", 2, "lisbon_ops", None, "baixa"),
        ("warsaw", "retrain_warsaw", 2, None, "null_target", None),
    ]
    assert demo_runs(configs, END)[2].story == "retrain with 'baixa' labels inflated 10%"


def test_a_new_city_gets_a_first_model_approved_by_its_first_approver(tmp_path: Path) -> None:
    configs_dir = tmp_path / "configs"
    shutil.copytree(PROJECT / "dags" / "configs", configs_dir)
    (configs_dir / "warsaw.yaml").unlink()
    (configs_dir / "paris.yaml").write_text("city: paris\napproval: {approvers: [paris_ops, ops_lead]}\n")
    configs, problems = load_all(configs_dir)
    assert not problems
    paris = [r for r in demo_runs(configs, END) if r.city == "paris"]
    assert [(r.story, r.approver, r.logical_date, r.fault) for r in paris] == [
        ("first model, approved", "paris_ops", END, None)
    ]
    assert "warsaw" not in {r.city for r in demo_runs(configs, END)}
