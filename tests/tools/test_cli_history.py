"""`airflow-ml history`: the timeline, "who was champion at T", and --verify naming a tampered event."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from records import append_history

from airflow_ml_provider.config import load_city_config
from airflow_ml_provider.core import ledger
from airflow_ml_provider.hooks.ledger import city_ledger
from airflow_ml_provider.tools.cli import main

PROJECT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def lisbon_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """lisbon's config pointed at a fresh storage folder and MLflow store, with v1 promoted then v2 promoted."""
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(PROJECT / "dags" / "configs" / "_defaults.yaml", configs)
    (configs / "lisbon.yaml").write_text(
        f"city: lisbon\nstorage: {{base_uri: '{tmp_path / 'runs'}'}}\napproval: {{approvers: [lisbon_ops]}}\n"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    book = city_ledger(load_city_config("lisbon", configs))
    events = [
        ("promote", "1", None, "1", "lisbon_ops", "first model", 0),
        ("promote", "2", "1", "2", "ops_lead", "", 5),
    ]
    append_history(book, "eta_lisbon", events, start=T0)
    return configs


def test_timeline_and_champion_at(lisbon_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "lisbon", "--config-dir", str(lisbon_ledger), "--at", "2026-03-03"]) == 0
    out = capsys.readouterr().out
    assert "lisbon (eta_lisbon): 2 event(s)" in out
    assert "2026-03-01 09:00:00  promote  v1" in out and "none -> v1" in out and "first model" in out
    assert "retrain_lisbon/manual__5" in out
    assert "champion of lisbon at 2026-03-03 23:59:59 UTC: eta_lisbon v1, put there by lisbon_ops" in out

    assert main(["history", "lisbon", "--config-dir", str(lisbon_ledger), "--at", "2026-02-01T00:00"]) == 0
    assert "none recorded (the ledger starts 2026-03-01 09:00:00)" in capsys.readouterr().out


@pytest.mark.slow  # creates an MLflow store (migrations: ~20 s)
def test_verify_names_the_tampered_event(lisbon_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = city_ledger(load_city_config("lisbon", lisbon_ledger)).read()[0]
    event = json.loads(first.data)
    event["who"] = "mallory"
    Path(first.uri).write_bytes(ledger.canonical_json(event))

    assert main(["history", "lisbon", "--config-dir", str(lisbon_ledger), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "mallory" in out  # the timeline still shows what is there
    assert f"lisbon: promotion ledger broken at {first.uri}: changed after it was written" in out
    # The registry (an empty MLflow store here) has no champion, while the ledger says v2: reported too.
    assert "the ledger's last champion is v2 (event 2) but the registry's champion alias points at nothing" in out


def test_bad_timestamp_is_a_message(lisbon_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "lisbon", "--config-dir", str(lisbon_ledger), "--at", "yesterday"]) == 1
    assert "not an ISO date or timestamp" in capsys.readouterr().out
