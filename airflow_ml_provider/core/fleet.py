"""The fleet: one row per city from what the registry, Airflow and the city's YAML say, and the page's filters.

Pure: the fleet page plugin (``plugins/fleet.py``) gathers the inputs in a few bulk queries and hands them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import registry

if TYPE_CHECKING:
    from airflow_ml_provider.config import CityConfig


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class LastRun:
    run_id: str
    state: str
    at: datetime  # when it ran (start, else when it was due)
    validation_failure: str | None = None
    verdict: str | None = None  # the guardrail verdict of this run's evaluation, when it got that far
    failed_slices: tuple[str, ...] = ()


@dataclass(frozen=True)
class PendingRequest:
    run_id: str
    subject: str
    created_at: datetime
    assigned: tuple[str, ...]


@dataclass
class FleetRow:
    city: str
    owner: str
    model_name: str
    dag_id: str
    approvers: list[str]
    champion: str | None = None
    champion_age_days: int | None = None
    stale: bool = False  # older than registry.max_model_age_days
    last_run_state: str | None = None
    last_run_at: str | None = None
    last_run_id: str | None = None
    verdict: str | None = None
    failed_slices: list[str] = field(default_factory=list)
    validation_failure: str | None = None
    pending_run_id: str | None = None
    pending_subject: str | None = None
    pending_since: str | None = None
    pending_version: str | None = None
    needs_me: bool = False
    next_run: str | None = None
    state: str = "ok"  # the row's one-word state, for filtering: pending, failing, blocked, stale, ok, new

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STATES = ("pending", "failing", "blocked", "stale", "ok", "new")


def build_rows(
    cities: Iterable[CityConfig],
    versions: Mapping[str, list[ModelVersion]],
    last_runs: Mapping[str, LastRun],
    pending: Mapping[str, PendingRequest],
    next_runs: Mapping[str, datetime | None],
    *,
    user: str,
    now: datetime,
) -> list[FleetRow]:
    """One row per city, sorted by city. ``versions`` is keyed by model name, the rest by DAG id."""
    rows = []
    for city in sorted(cities, key=lambda c: c.city):
        dag_id = city.retrain_dag_id
        row = FleetRow(
            city=city.city,
            owner=city.owner,
            model_name=city.model_name,
            dag_id=dag_id,
            approvers=list(city.approval.approvers),
        )
        model_versions = versions.get(city.model_name, [])
        champion = next((v for v in model_versions if registry.CHAMPION in v.aliases), None)
        if champion is not None:
            row.champion = champion.version
            row.champion_age_days = (now - champion.created_at).days
            limit = city.registry.max_model_age_days
            row.stale = limit is not None and row.champion_age_days > limit
        run = last_runs.get(dag_id)
        if run is not None:
            row.last_run_state = run.state
            row.last_run_at = run.at.isoformat()
            row.last_run_id = run.run_id
            row.validation_failure = run.validation_failure
            row.verdict = run.verdict
            row.failed_slices = list(run.failed_slices)
        request = pending.get(dag_id)
        if request is not None:
            row.pending_run_id = request.run_id
            row.pending_subject = request.subject
            row.pending_since = request.created_at.isoformat()
            row.needs_me = user in (request.assigned or city.approval.approvers)
            challenger = next((v for v in model_versions if registry.CHALLENGER in v.aliases), None)
            row.pending_version = challenger.version if challenger else None
        when = next_runs.get(dag_id)
        row.next_run = when.isoformat() if when else None
        row.state = _state(row)
        rows.append(row)
    return rows


def _state(row: FleetRow) -> str:
    if row.pending_run_id:
        return "pending"
    if row.last_run_state == "failed" or row.validation_failure:
        return "failing"
    if row.verdict == "fail":
        return "blocked"
    if row.stale:
        return "stale"
    return "ok" if row.champion else "new"


def filter_rows(
    rows: Iterable[FleetRow], *, owner: str | None = None, state: str | None = None, needs_me: bool = False
) -> list[FleetRow]:
    return [
        r
        for r in rows
        if (not owner or r.owner == owner) and (not state or r.state == state) and (not needs_me or r.needs_me)
    ]
