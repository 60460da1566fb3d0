"""The fleet page: every city on one page inside the Airflow UI, behind Airflow's own login.

A FastAPI app in Airflow's API server (``/fleet``) and a navigation entry that shows it in the UI. The page reads
its rows from ``/fleet/api/rows``, built from a handful of bulk queries (Airflow's metadata database, MLflow through
``MlflowHook``, the cities' YAML), never one call per city. Decisions are not made here: the page answers each
selected approval with the browser's own Airflow session through Airflow's HITL API, so Airflow checks every answer
against the city's approvers, exactly as in its Required Actions screen.

The API server needs the cities' YAML (``AIRFLOW_ML_CONFIG_DIR``, else ``<dags_folder>/configs``) and the MLflow
connection (``mlflow_default`` or ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from airflow_ml_provider.core.fleet import (
    STATES,
    FleetRow,
    LastRun,
    ModelVersion,
    PendingRequest,
    build_rows,
    filter_rows,
)
from airflow_ml_provider.core.handoff import FAILURE_KEY, Evaluated, Validated

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_ml_provider.config import CityConfig

URL_PREFIX = "/fleet"


async def current_user(request: Request) -> Any:
    """Airflow's logged-in user (the UI's session cookie, or a bearer token), as Airflow's own routes resolve it.
    Imported on first request: plugins are loaded by every Airflow process, the API server's security only here."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
    return await get_user(request, None, bearer)


User = Annotated[Any, Depends(current_user)]


app = FastAPI(title="airflow-ml fleet", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/", response_class=HTMLResponse)
def page(user: User) -> str:
    return files("airflow_ml_provider.plugins").joinpath("fleet.html").read_text()


@app.get("/api/rows")
def rows(
    user: User,
    owner: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(description=f"one of {', '.join(STATES)}")] = None,
    needs_me: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    """Every city's row (or those matching the filters), the user, and the filters' choices."""
    name = user.get_name()
    every = fleet_rows(name)
    chosen = filter_rows(every, owner=owner, state=state, needs_me=needs_me)
    return {
        "user": name,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "owners": sorted({r.owner for r in every}),
        "states": list(STATES),
        "rows": [r.to_dict() for r in chosen],
        "problems": _config_problems,
    }


_config_problems: list[str] = []


def fleet_rows(user: str) -> list[FleetRow]:
    """Gather and combine: the YAML, then at once Airflow (one session, four queries) and MLflow (two paged
    searches), each waiting on its own server."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    cities = city_configs()
    dag_ids = [c.retrain_dag_id for c in cities]
    hook = MlflowHook()
    _ = hook.client  # created here, once, not by the two threads that share it
    names = {c.model_name for c in cities}
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="fleet") as pool:
        airflow = pool.submit(_airflow_state, dag_ids)
        found_versions = pool.submit(hook.versions_by_model, names)
        found_aliases = pool.submit(hook.aliases_by_model, names)
        last_runs, pending, next_runs = airflow.result()
        versions, aliases = found_versions.result(), found_aliases.result()
    model_versions = {
        name: [
            ModelVersion(
                v.version,
                v.created_at,
                tuple(alias for alias, version in aliases[name].items() if version == v.version),
            )
            for v in found
        ]
        for name, found in versions.items()
    }
    return build_rows(cities, model_versions, last_runs, pending, next_runs, user=user, now=datetime.now(timezone.utc))


def city_configs() -> list[CityConfig]:
    """The cities' configs. Each request stats the YAML files; they are validated again only when one changed."""
    from airflow.configuration import conf

    from airflow_ml_provider.config import config_dir

    directory = config_dir(Path(conf.get("core", "dags_folder")))
    configs, problems = _configs(directory, _folder_stamp(directory))
    _config_problems[:] = problems
    return configs


@lru_cache(maxsize=1)
def _configs(directory: Path, stamp: frozenset[tuple[str, int, int]]) -> tuple[list[CityConfig], list[str]]:
    """Loaded once per ``stamp`` of the folder (validating 500 cities takes seconds; a stat of each, milliseconds)."""
    from airflow_ml_provider.config import load_all

    configs, problems = load_all(directory)
    return list(configs.values()), problems


def _folder_stamp(directory: Path) -> frozenset[tuple[str, int, int]]:
    """Name, mtime and size of every YAML file in the folder: any edit, addition or removal changes it."""
    stamp = set()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return frozenset()
    for entry in entries:
        if entry.name.endswith(".yaml"):
            try:
                stat = entry.stat()
            except OSError:
                continue
            stamp.add((entry.name, stat.st_mtime_ns, stat.st_size))
    return frozenset(stamp)


def _airflow_state(
    dag_ids: list[str],
) -> tuple[dict[str, LastRun], dict[str, PendingRequest], dict[str, datetime | None]]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return _last_runs(session, dag_ids), _pending(session, dag_ids), _next_runs(session, dag_ids)


def _last_runs(session: Session, dag_ids: list[str]) -> dict[str, LastRun]:
    """The latest run of each DAG, with its validation failure and guardrail verdict from XCom."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, func, select

    validate, evaluate = Validated.STEP, Evaluated.STEP
    latest = (
        select(DagRun.dag_id, func.max(DagRun.run_after).label("run_after"))
        .where(DagRun.dag_id.in_(dag_ids))
        .group_by(DagRun.dag_id)
        .subquery()
    )
    runs = session.execute(
        select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.run_after).join(
            latest, and_(DagRun.dag_id == latest.c.dag_id, DagRun.run_after == latest.c.run_after)
        )
    ).all()
    xcoms: dict[tuple[str, str, str], Any] = {}
    run_ids = {r.run_id for r in runs}
    if run_ids:
        found = session.execute(
            select(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id.in_(dag_ids),
                XComModel.run_id.in_(run_ids),
                XComModel.task_id.in_((validate, evaluate)),
                XComModel.key.in_((FAILURE_KEY, "return_value")),
                XComModel.map_index == -1,
            )
        ).all()
        for row in found:
            if (row.task_id, row.key) in ((validate, FAILURE_KEY), (evaluate, "return_value")):
                xcoms[(row.dag_id, row.run_id, row.task_id)] = XComModel.deserialize_value(row)
    result = {}
    for run in runs:
        evaluation = xcoms.get((run.dag_id, run.run_id, evaluate))
        summary = (evaluation or {}).get("summary") or {} if isinstance(evaluation, dict) else {}
        failure = xcoms.get((run.dag_id, run.run_id, validate))
        result[run.dag_id] = LastRun(
            run_id=run.run_id,
            state=str(run.state),
            at=run.start_date or run.run_after,
            validation_failure=str(failure) if failure else None,
            verdict=summary.get("verdict"),
            failed_slices=tuple(f"{f['slice']} ({f['metric']})" for f in summary.get("failed") or ()),
        )
    return result


def _pending(session: Session, dag_ids: list[str]) -> dict[str, PendingRequest]:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    from airflow_ml_provider.core.digest import APPROVE_TASK, assigned_names

    found = session.execute(
        select(
            TaskInstance.dag_id, TaskInstance.run_id, HITLDetail.subject, HITLDetail.created_at, HITLDetail.assignees
        )
        .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
        .where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.task_id == APPROVE_TASK, ~HITLDetail.response_received)
        .order_by(HITLDetail.created_at)
    ).all()
    return {
        row.dag_id: PendingRequest(
            run_id=row.run_id,
            subject=row.subject,
            created_at=row.created_at,
            assigned=assigned_names(row.assignees),
        )
        for row in found
    }


def _next_runs(session: Session, dag_ids: list[str]) -> dict[str, datetime | None]:
    from airflow.models.dag import DagModel
    from sqlalchemy import select

    found = session.execute(
        select(DagModel.dag_id, DagModel.next_dagrun_create_after, DagModel.is_paused).where(
            DagModel.dag_id.in_(dag_ids)
        )
    ).all()
    return {row.dag_id: None if row.is_paused else row.next_dagrun_create_after for row in found}


class FleetPlugin(AirflowPlugin):
    """Registered through the ``airflow.plugins`` entry point: installing the package is enough."""

    name = "airflow_ml_fleet"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Model fleet"}]
    external_views = [
        {"name": "Model fleet", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "model-fleet"}
    ]
