"""`airflow-ml lint` and `airflow-ml schema`: exit codes and messages a config author can act on."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from airflow_ml_provider.tools.cli import main

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    shutil.copytree(PROJECT / "dags", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_shipped_configs_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(PROJECT / "dags" / "configs")]) == 0
    assert "3 city config(s) OK" in capsys.readouterr().out


def test_broken_copy_lists_every_problem_with_file_and_field(dags: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = dags / "configs"
    (configs / "berlin.yaml").write_text(
        "city: berlin\nevaluation:\n  guardrails:\n    - {metric: mae, max_relative_regression: -0.5}\n"
    )
    (configs / "lisbon.yaml").write_text(
        "city: lisbon\napproval: {approvers: [lisbon_ops]}\nvalidation:\n  expectations:\n"
        "    - expect_column_values_to_be_between: {column: distance_km, minimum: 0}\n"
        "    - expect_colum_to_exist: {column: district}\n"
    )
    (configs / "paris.yaml").write_text("city: paris\napproval: {approvers: [paris_ops]}\n")
    assert main(["lint", str(configs)]) == 1
    out = capsys.readouterr().out
    assert "berlin.yaml: evaluation.guardrails[0].max_relative_regression: must be >= 0, got -0.5" in out
    assert "lisbon.yaml: validation.expectations[0]" in out and "'minimum'" in out
    assert "lisbon.yaml: validation.expectations[1]" in out and "expect_colum_to_exist" in out
    assert "paris.yaml: no loader" in out and "city_dags(__file__)" in out
    assert "warsaw" not in out


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "airflow-ml-provider city config"
    assert "city" in schema["required"]


def test_committed_config_reference_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == (PROJECT / "docs" / "config-reference.md").read_text(), "run `make schema`"


def test_lint_reports_what_would_be_an_import_error_when_the_dag_is_built(
    dags: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Slack notifier without the Slack provider passes the schema but fails when Airflow parses the city."""
    monkeypatch.setitem(sys.modules, "airflow.providers.slack.notifications.slack", None)  # not installed
    (dags / "configs" / "lisbon.yaml").write_text(
        "city: lisbon\napproval:\n  approvers: [lisbon_ops]\n  notifiers: [{kind: slack, channel: '#lisbon-ml'}]\n"
    )
    assert main(["lint", str(dags / "configs")]) == 1
    out = capsys.readouterr().out
    assert "lisbon.yaml: approval.notifiers: kind slack needs the Slack provider" in out
    assert "berlin" not in out


def test_lint_warns_about_guardrails_on_metrics_the_target_can_leave_undefined(
    dags: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dags / "configs" / "berlin.yaml").write_text(
        "city: berlin\nevaluation:\n  guardrails:\n    - {metric: mae, max_relative_regression: 0.02}\n"
        "    - {metric: mape, max_relative_regression: 0.02}\n    - {metric: r2, min_value: 0.5}\n"
    )
    assert main(["lint", str(dags / "configs")]) == 0  # a warning, not a problem
    out = capsys.readouterr().out
    mape = "berlin.yaml: evaluation.guardrails[1]: warning: mape is fragile: it is undefined wherever a target value"
    r2 = "berlin.yaml: evaluation.guardrails[2]: warning: r2 is fragile: it is undefined where the target is constant"
    assert mape in out and r2 in out
    assert "guardrails[0]" not in out and "3 city config(s) OK" in out
