"""The fleet page reads the cities' YAML once and again only after a file of the folder changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.plugins import fleet

PROJECT = Path(__file__).resolve().parents[2]


def test_configs_are_reused_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(PROJECT / "dags" / "configs", configs)
    monkeypatch.setenv("AIRFLOW_ML_CONFIG_DIR", str(configs))

    first = fleet.city_configs()
    assert {c.city for c in first} == {"berlin", "lisbon", "warsaw"}
    assert fleet.city_configs() is first  # nothing changed: not validated again

    berlin = configs / "berlin.yaml"
    berlin.write_text(berlin.read_text() + "owner: berlin-team\n")
    assert {c.city: c.owner for c in fleet.city_configs()}["berlin"] == "berlin-team"

    (configs / "potsdam.yaml").write_text("city: potsdam\napproval: {approvers: [berlin_ops]}\n")
    assert "potsdam" in {c.city for c in fleet.city_configs()}

    (configs / "potsdam.yaml").write_text("city: potsdam\napproval: {approvers: []}\n")
    assert "potsdam" not in {c.city for c in fleet.city_configs()}
    assert fleet._config_problems == ["potsdam.yaml: approval.approvers: needs at least 1 item(s), got []"]
