"""`airflow-ml init`: what it decides from a table, the YAML it writes, and the errors that say what to pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_ml_provider.config import load_city_config, load_defaults
from airflow_ml_provider.tools.cli import main
from airflow_ml_provider.tools.scaffold import render
from airflow_ml_provider.tools.table_inference import Choices, InitError, plan_city

PROJECT = Path(__file__).resolve().parents[2]
DEFAULTS = load_defaults(PROJECT / "dags" / "configs")


def orders(rows: int = 6000, days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Shop orders, nothing like the demo's rides: a string timestamp, a string id, a 0/1 target."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01")
    placed = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, rows)), unit="s")
    channel = rng.choice(["web", "app", "phone"], rows)
    basket = rng.gamma(2.0, 30.0, rows).round(2)
    return pd.DataFrame(
        {
            "order_ref": [f"o-{i:06d}" for i in range(rows)],
            "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channel": channel,
            "basket_eur": basket,
            "order_hour": placed.hour,
            "customer_email": [f"c{i}@example.com" for i in rng.integers(0, 3000, rows)],
            "country": "PT",
            "returned": (rng.random(rows) < 0.1 + 0.2 * (channel == "phone")).astype(int),
        }
    )


def plan(frame: pd.DataFrame, **kwargs: Any) -> Any:
    choices = {
        "city": "shop",
        "data_uri": "orders.csv",
        "target": "returned",
        "task": None,
        "timestamp": None,
        "approver": None,
    }
    choices.update(kwargs)
    return plan_city(frame, Choices(**choices), DEFAULTS)


def test_roles_come_from_types_and_cardinality() -> None:
    result = plan(orders())
    roles = {c.name: c.role for c in result.columns}
    assert result.task == "classification"  # a 0/1 target
    assert roles == {
        "placed_at": "timestamp",  # ISO 8601 strings
        "returned": "target",
        "order_ref": "id",  # unique per row
        "channel": "categorical",
        "basket_eur": "numeric",
        "order_hour": "numeric",
        "customer_email": "ignored",  # too many values to one-hot
        "country": "ignored",  # constant
    }
    assert result.hour_column == "order_hour"
    assert result.end == pd.Timestamp("2024-04-30", tz="UTC")  # midnight after the last order


def test_rendered_yaml_is_a_valid_config_that_repeats_no_default(tmp_path: Path) -> None:
    text = render(plan(orders()), DEFAULTS, "airflow-ml init shop ...")
    raw = yaml.safe_load(text)
    assert "owner" not in raw and "resources" not in raw  # as in _defaults.yaml
    assert raw["model"] == {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}
    assert raw["evaluation"]["primary_metric"] == "roc_auc"
    assert raw["data"]["id_columns"] == ["order_ref"]
    assert raw["features"] == {"numeric": ["basket_eur", "order_hour"], "categorical": ["channel"]}
    assert {"column": "channel"} in raw["evaluation"]["slices"]
    assert {"name": "order_hour_night", "where": {"order_hour": {"gte": 0, "lt": 6}}} in raw["evaluation"]["slices"]
    expectations = raw["validation"]["expectations"]
    assert expectations[0] == {"expect_column_values_to_not_be_null": {"column": "returned"}}
    assert {
        "expect_column_values_to_be_in_set": {"column": "channel", "value_set": ["app", "phone", "web"]},
        "severity": "warning",
    } in expectations
    between = [
        e["expect_column_values_to_be_between"] for e in expectations if "expect_column_values_to_be_between" in e
    ]
    basket = next(b for b in between if b["column"] == "basket_eur")
    assert basket["min_value"] == 0 and basket["max_value"] > orders()["basket_eur"].quantile(0.999)
    assert "# unique per row" in text and "# Not features:" in text  # every choice says why

    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(PROJECT / "dags" / "configs" / "_defaults.yaml", configs)
    (configs / "shop.yaml").write_text(text)
    config = load_city_config("shop", configs)
    assert config.task == "classification" and config.approval.approvers == ["shop_ops"]


def test_windows_fit_a_short_table() -> None:
    result = plan(orders(rows=3000, days=20))
    assert result.train_days + result.eval_days <= 20
    assert min(result.train_rows, result.eval_rows) >= DEFAULTS["validation"]["min_rows"]


def test_skewed_regression_target_fits_the_median() -> None:
    frame = orders()
    frame["refund_eur"] = np.random.default_rng(1).pareto(1.5, len(frame)) * 10
    text = render(plan(frame, target="refund_eur"), DEFAULTS, "airflow-ml init shop ...")
    raw = yaml.safe_load(text)
    assert "task" not in raw  # regression, as in _defaults.yaml
    assert raw["model"] == {"params": {"loss": "absolute_error"}}
    assert "returned" in raw["features"]["numeric"]


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda f: f.assign(shipped_at=f["placed_at"]), {}, "pass --timestamp COLUMN"),
        (lambda f: f.drop(columns="placed_at"), {}, "no column of datetimes or ISO 8601 strings"),
        (lambda f: f, {"target": "refund"}, "--target 'refund' is not a column"),
        (lambda f: f, {"task": "classification", "target": "basket_eur"}, "needs 0/1"),
        (lambda f: f.head(300), {}, "validation.min_rows"),
    ],
)
def test_errors_say_what_to_pass(change: object, kwargs: dict, message: str) -> None:
    with pytest.raises(InitError, match=message.replace("(", r"\(")):
        plan(change(orders()), **kwargs)


def test_several_timestamps_resolved_by_the_flag() -> None:
    frame = orders().assign(shipped_at=lambda f: f["placed_at"])
    assert plan(frame, timestamp="shipped_at").named("timestamp")[0].name == "shipped_at"


def test_init_writes_config_and_loader_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(PROJECT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    data = tmp_path / "orders.csv"
    orders().to_csv(data, index=False)
    arguments = ["init", "shop", "--data", str(data), "--target", "returned", "--config-dir", str(dags / "configs")]
    assert main(arguments) == 0
    assert (dags / "shop.py").read_text() == (
        '"""Airflow DAGs retrain_shop and rollback_shop, built from configs/shop.yaml."""\n\n'
        "from airflow_ml_provider.factory import city_dags\n\nglobals().update(city_dags(__file__))\n"
    )
    written = (dags / "configs" / "shop.yaml").read_text()
    assert main(arguments) == 1
    assert "already exists" in capsys.readouterr().out
    assert (dags / "configs" / "shop.yaml").read_text() == written
    assert main(["init", "berlin", "--data", str(data), "--target", "returned", "--config-dir", str(dags / "configs")])
    assert "berlin.yaml already exists" in capsys.readouterr().out
