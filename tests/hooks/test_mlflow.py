"""MlflowHook against a real MLflow store (SQLite): registration lineage and idempotence, compare-and-set
promotion, retries, rollback with its audit tags, and the status and rollback commands."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ml_provider.core import registry

pytestmark = pytest.mark.slow

MODEL = "eta_testcity"


@pytest.fixture(scope="module")
def hook() -> Any:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook()


@pytest.fixture(scope="module")
def model_and_example() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"distance_km": [1.0, 2.0, 3.0, 4.0]})
    return LinearRegression().fit(frame, [60.0, 120.0, 180.0, 240.0]), frame


def _register(hook: Any, model_and_example: tuple[Any, Any], dag_run_id: str) -> Any:
    model, example = model_and_example
    run_id = hook.dag_run_run_id(MODEL, "retrain_testcity", dag_run_id, {"city": "testcity"})
    return hook.register_model(
        run_id=run_id,
        model_name=MODEL,
        model=model,
        input_example=example,
        tags={"city": "testcity"},
        dag_run_id=dag_run_id,
    )


def test_register_is_idempotent_per_dag_run(hook: Any, model_and_example: tuple[Any, Any]) -> None:
    first = _register(hook, model_and_example, "run_1")
    again = _register(hook, model_and_example, "run_1")  # a retried register task
    assert first.version == again.version == "1"
    assert hook.version_of_dag_run(MODEL, "run_1").version == "1"
    assert hook.dag_run_run_id(MODEL, "retrain_testcity", "run_1", {}) == first.run_id
    assert len(hook.versions(MODEL)) == 1


def test_promote_is_compare_and_set_and_retry_safe(hook: Any, model_and_example: tuple[Any, Any]) -> None:
    hook.promote(MODEL, "1", expected_champion=None, decided_by="ops", reason="first", report_sha256="0" * 64)
    v2 = _register(hook, model_and_example, "run_2")
    promotion = hook.promote(
        MODEL, v2.version, expected_champion="1", decided_by="berlin_ops", reason="better", report_sha256="1" * 64
    )
    assert promotion.previous_champion == "1"
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "2"
    assert hook.version_by_alias(MODEL, registry.PREVIOUS_CHAMPION).version == "1"
    retried = hook.promote(
        MODEL, v2.version, expected_champion="1", decided_by="berlin_ops", reason="better", report_sha256="1" * 64
    )
    assert retried.already_done
    tags = hook.get_version(MODEL, "2").tags
    assert (tags[registry.DECIDED_BY_TAG], tags[registry.DECISION_REASON_TAG]) == ("berlin_ops", "better")
    assert tags[registry.PROMOTED_BY_TAG] == "berlin_ops"

    v3 = _register(hook, model_and_example, "run_3")  # evaluated against v1, but v2 is champion now
    with pytest.raises(registry.StaleChampionError, match=f"champion of {MODEL} moved from v1 to v2"):
        hook.promote(MODEL, v3.version, expected_champion="1", decided_by="x", reason="", report_sha256="")
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "2"


def test_rollback_moves_champion_back_with_audit(hook: Any) -> None:
    plan = hook.rollback(MODEL, to_version=None, decided_by="oncall", reason="v2 blocks airport rides")
    assert (plan.from_version, plan.to_version) == ("2", "1")
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "1"
    assert hook.version_by_alias(MODEL, registry.PREVIOUS_CHAMPION).version == "2"
    tags = hook.get_version(MODEL, "1").tags
    assert tags[registry.ROLLBACK_REASON_TAG] == "v2 blocks airport rides"
    assert tags[registry.PROMOTED_BY_TAG] == "oncall"
    assert tags[registry.ROLLBACK_FROM_TAG] == "2"
    with pytest.raises(registry.RollbackRefused, match="v3 was never approved"):
        hook.rollback(MODEL, to_version="3", decided_by="oncall", reason="try")


def test_reject_tags_version_and_drops_challenger(hook: Any) -> None:
    hook.set_alias(MODEL, registry.CHALLENGER, "3")
    hook.reject(MODEL, "3", decided_by="timeout", reason="no answer", report_sha256="2" * 64)
    assert hook.version_by_alias(MODEL, registry.CHALLENGER) is None
    assert hook.get_version(MODEL, "3").tags[registry.DECISION_TAG] == "rejected"
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "1"


def test_cli_rollback_and_status(hook: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    from pathlib import Path

    from airflow_ml_provider.tools.cli import main

    configs = tmp_path / "configs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "dags" / "configs", configs)
    (configs / "testcity.yaml").write_text(
        "city: testcity\nregistry: {model_name: eta_testcity}\napproval: {approvers: [ops]}\n"
    )
    assert (
        main(
            [
                "rollback",
                "testcity",
                "--to",
                "2",
                "--reason",
                "fixed upstream",
                "--by",
                "oncall",
                "--config-dir",
                str(configs),
            ]
        )
        == 0
    )
    assert "champion v1 -> v2 (by oncall: fixed upstream)" in capsys.readouterr().out
    assert main(["rollback", "testcity", "--to", "3", "--reason", "x", "--config-dir", str(configs)]) == 1
    assert "never approved" in capsys.readouterr().out
    assert main(["status", str(configs)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("testcity"))
    assert "eta_testcity" in line and " v2 " in line and "oncall" in line
    assert any(row.startswith("warsaw") and " none " in row for row in out.splitlines())  # never trained here
