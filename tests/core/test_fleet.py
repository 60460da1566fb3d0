"""The fleet's rows: champion age against max_model_age_days, last run, guardrails, pending approval, filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_ml_provider.config import CityConfig, load_city_config
from airflow_ml_provider.core.fleet import (
    LastRun,
    ModelVersion,
    PendingRequest,
    build_rows,
    filter_rows,
)

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
BERLIN = load_city_config("berlin", Path(__file__).resolve().parents[2] / "dags" / "configs")


def _city(city: str, owner: str = "ml", approvers: tuple[str, ...] = ("ops",), max_age: int | None = 30) -> CityConfig:
    """A city's config as the fleet reads it: name, owner, approvers, champion age limit; its model is eta_<city>."""
    registry = BERLIN.registry.model_copy(update={"model_name": "eta_{city}", "max_model_age_days": max_age})
    approval = BERLIN.approval.model_copy(update={"approvers": list(approvers)})
    return BERLIN.model_copy(update={"city": city, "owner": owner, "registry": registry, "approval": approval})


def _version(version: str, days_old: int, *aliases: str) -> ModelVersion:
    return ModelVersion(version, NOW - timedelta(days=days_old), aliases)


def test_one_row_per_city_with_its_state() -> None:
    cities = [
        _city("berlin", approvers=("berlin_ops",)),
        _city("lisbon", owner="iberia"),
        _city("warsaw"),
        _city("oslo", max_age=None),
        _city("rome"),
        _city("paris"),
    ]
    versions = {
        "eta_berlin": [_version("2", 1, "challenger"), _version("1", 10, "champion")],
        "eta_lisbon": [_version("3", 1), _version("1", 40, "champion")],
        "eta_warsaw": [_version("1", 5, "champion")],
        "eta_oslo": [_version("1", 400, "champion")],
        "eta_rome": [_version("1", 3, "champion")],
    }
    last_runs = {
        "retrain_berlin": LastRun("manual__1", "running", NOW, verdict="pass"),
        "retrain_lisbon": LastRun("manual__2", "success", NOW, verdict="fail", failed_slices=("district=baixa (mae)",)),
        "retrain_warsaw": LastRun("manual__3", "failed", NOW, validation_failure="eta_seconds has 12 nulls"),
    }
    pending = {"retrain_berlin": PendingRequest("manual__1", "Promote eta_berlin v2?", NOW, ("berlin_ops",))}
    rows = build_rows(
        cities, versions, last_runs, pending, {"retrain_rome": NOW + timedelta(days=2)}, user="berlin_ops", now=NOW
    )
    by_city = {r.city: r for r in rows}
    assert [r.city for r in rows] == sorted(by_city)
    berlin = by_city["berlin"]
    assert (berlin.state, berlin.champion, berlin.pending_version, berlin.needs_me) == ("pending", "1", "2", True)
    assert by_city["lisbon"].state == "blocked" and by_city["lisbon"].failed_slices == ["district=baixa (mae)"]
    assert by_city["lisbon"].stale and by_city["lisbon"].champion_age_days == 40
    assert by_city["warsaw"].state == "failing" and by_city["warsaw"].validation_failure == "eta_seconds has 12 nulls"
    assert by_city["oslo"].state == "ok" and not by_city["oslo"].stale  # no max_model_age_days: never flagged
    assert by_city["rome"].next_run == (NOW + timedelta(days=2)).isoformat()
    assert by_city["paris"].state == "new" and by_city["paris"].champion is None

    assert [r.city for r in filter_rows(rows, needs_me=True)] == ["berlin"]
    assert [r.city for r in filter_rows(rows, owner="iberia")] == ["lisbon"]
    assert [r.city for r in filter_rows(rows, state="failing")] == ["warsaw"]


def test_someone_else_is_not_asked() -> None:
    rows = build_rows(
        [_city("berlin", approvers=("berlin_ops",))],
        {},
        {},
        {"retrain_berlin": PendingRequest("r", "s", NOW, ("berlin_ops",))},
        {},
        user="analyst",
        now=NOW,
    )
    assert rows[0].state == "pending" and not rows[0].needs_me
