"""City config loading: defaults merge, schema rules, and error messages that name the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.config import ConfigError, deep_merge, json_schema, load_all, load_city_config, load_defaults

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(CONFIGS, folder)
    return folder


def _problems(folder: Path, city: str, text: str) -> list[str]:
    (folder / f"{city}.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_city_config(city, folder)
    return caught.value.problems


def test_shipped_configs_load() -> None:
    configs, problems = load_all(CONFIGS)
    assert problems == []
    assert sorted(configs) == ["berlin", "lisbon", "warsaw"]
    berlin = configs["berlin"]
    assert berlin.model_name == "eta_berlin"
    assert berlin.schedule == "0 2 * * 1"
    assert berlin.approval.approvers == ["berlin_ops", "ops_lead"]
    assert berlin.data.timestamp_column == "requested_at"  # from _defaults.yaml


def test_mappings_merge_and_lists_replace() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    lisbon = load_city_config("lisbon", CONFIGS)
    assert lisbon.model.params == {"max_iter": 150, "learning_rate": 0.08}
    assert lisbon.model.estimator.startswith("sklearn.")  # merged from defaults


def test_error_names_file_field_and_expectation(configs: Path) -> None:
    problems = _problems(
        configs,
        "berlin",
        "city: berlin\nevaluation:\n  primary_metric: mae\n  guardrails:\n    - metric: mae\n"
        "      max_relative_regression: -0.5\n",
    )
    assert problems == ["berlin.yaml: evaluation.guardrails[0].max_relative_regression: must be >= 0, got -0.5"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("city: berlin\ncolour: red\n", "berlin.yaml: colour: unknown key"),
        ("city: berlin\nschema_version: 2\n", "berlin.yaml: schema_version: input should be 1, got 2"),
        ("city: Berlin\n", "berlin.yaml: city: must equal the file name 'berlin', got 'Berlin'"),
        ("city: berlin\nschedule: every monday\n", "berlin.yaml: schedule: 'every monday' is not a cron expression"),
        ("city: berlin\nschedule: 99 2 * * 1\n", "berlin.yaml: schedule: '99 2 * * 1' is not a cron expression"),
        (
            "city: berlin\nschedule: '@once'\n",
            "berlin.yaml: schedule: '@once' is not a cron expression Airflow accepts",
        ),
        ("city: berlin\napproval: {approvers: []}\n", "berlin.yaml: approval.approvers: needs at least 1 item"),
        ("city: berlin\ntask: ranking\n", "berlin.yaml: task: input should be 'regression' or 'classification'"),
        (
            "city: berlin\nevaluation: {primary_metric: roc_auc}\n",
            "berlin.yaml: evaluation.primary_metric: 'roc_auc' is not a regression metric",
        ),
        (
            "city: berlin\nfeatures: {numeric: [eta_seconds]}\n",
            "berlin.yaml: features: the target 'eta_seconds' cannot also be a feature",
        ),
        ("city: berlin\nfeatures: {numeric: [ride_id]}\n", "berlin.yaml: features: 'ride_id' is an id column"),
        (
            "city: berlin\nmodel: {estimator: xgboost.XGBRegressor}\n",
            "berlin.yaml: model: estimator 'xgboost.XGBRegressor' is not allowed",
        ),
        (
            "city: berlin\nmodel: {allowed_estimator_prefixes: [xgboost.]}\n",
            "berlin.yaml: model.allowed_estimator_prefixes: may only be set in _defaults.yaml",
        ),
        (
            "city: berlin\nevaluation: {slices: [{column: district, where: {a: 1}}]}\n",
            "berlin.yaml: evaluation.slices[0]: a slice has exactly one of column, columns, bins, where",
        ),
        (
            "city: berlin\nvalidation: {expectations: [{expect_x: {column: a}, expect_y: {}}]}\n",
            "berlin.yaml: validation.expectations[0]: each expectation is one `expect_<name>: {arguments}`",
        ),
        ("city: berlin\nschedule: [oops\n", "berlin.yaml: not valid YAML (line 3"),
        ("- just\n- a list\n", "berlin.yaml: expected a mapping of settings at the top level"),
    ],
)
def test_errors_are_specific(configs: Path, text: str, expected: str) -> None:
    problems = _problems(configs, "berlin", text)
    assert any(p.startswith(expected) for p in problems), problems


def test_load_all_reports_every_bad_file_and_keeps_good_ones(configs: Path) -> None:
    (configs / "berlin.yaml").write_text("city: berlin\ncolour: red\n")
    (configs / "Bad-Name.yaml").write_text("city: x\n")
    good, problems = load_all(configs)
    assert sorted(good) == ["lisbon", "warsaw"]
    assert any(p.startswith("berlin.yaml: colour") for p in problems)
    assert any(p.startswith("Bad-Name.yaml: the file name must be a city name") for p in problems)


def test_city_files_can_only_widen_estimators_through_defaults(configs: Path) -> None:
    defaults = (configs / "_defaults.yaml").read_text()
    (configs / "_defaults.yaml").write_text(
        defaults.replace("model:\n", "model:\n  allowed_estimator_prefixes: [sklearn., lightgbm.]\n")
    )
    (configs / "lisbon.yaml").write_text(
        "city: lisbon\napproval: {approvers: [a]}\nmodel: {estimator: lightgbm.LGBMRegressor}\n"
    )
    assert load_city_config("lisbon", configs).model.estimator == "lightgbm.LGBMRegressor"


def test_committed_json_schema_is_current() -> None:
    import json

    committed = json.loads((CONFIGS.parents[1] / "docs" / "city-config.schema.json").read_text())
    assert committed == json_schema(), "run `make schema` and commit docs/city-config.schema.json"


def test_config_hash_is_stable_and_sensitive() -> None:
    berlin = load_city_config("berlin", CONFIGS)
    assert berlin.config_hash() == load_city_config("berlin", CONFIGS).config_hash()
    assert berlin.config_hash() != load_city_config("lisbon", CONFIGS).config_hash()


def test_defaults_are_read_once_per_change(configs: Path) -> None:
    """The parsed ``_defaults.yaml`` is reused across cities, but an edit is seen at once and no caller shares it."""
    assert load_city_config("berlin", configs).owner == "marketplace-ml"
    first = load_defaults(configs)
    first["owner"] = "mutated by a caller"
    assert load_defaults(configs)["owner"] == "marketplace-ml"
    defaults = configs / "_defaults.yaml"
    defaults.write_text(defaults.read_text().replace("owner: marketplace-ml", "owner: platform-team"))
    assert load_city_config("berlin", configs).owner == "platform-team"
