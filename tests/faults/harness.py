"""The fault-injection suite's harness: one set of real servers (tests/e2e/servers.py: Airflow api-server, scheduler
and dag-processor on PostgreSQL with the LocalExecutor, an MLflow tracking server, and a second one for the city whose
MLflow is restarted) plus moto's S3 server in this process, one small city per fault so the scenarios run side by
side, and the moves and checks of the scenarios.

Test-only settings that keep the suite within minutes on a 2-core machine, none of which changes what is tested:
- retries 3 s apart instead of Airflow's minutes, and more of them (the fault cities' DAG loader sets them);
- MLflow's client gives up on a dead server after three quick retries (1, 2, 4 s) instead of minutes of back-off,
  so an outage fails the task and Airflow's retry is what recovers;
- the scheduler imports the ML libraries once and its LocalExecutor workers fork task processes with them loaded.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e.servers import ARTIFACTS, BIN, PROJECT, Stack, free_port

FAULT_ARTIFACTS = ARTIFACTS.parent / "faults"
APPROVER = "ops_lead"
BUCKET = "rides"
ANSWER_AFTER = 3  # seconds after the scheduler saw the approval task park itself; see Faults.approve
RUN_TIMEOUT = 420  # seconds for one run, faults and retries included, on a busy 2-core machine
FAILED = {"failed", "upstream_failed"}

# One city per fault: (extra YAML, whether its data lives on moto's S3).
CITIES: dict[str, dict[str, Any]] = {
    "fault_mlflow": {},
    "fault_s3": {"data": {"uri": f"s3://{BUCKET}/fault_s3/rides.parquet", "aws_conn_id": "moto_s3"}},
    "fault_kill": {},
    "fault_smtp": {"approval": {"notifiers": [{"kind": "smtp", "conn_id": "smtp_closed", "to": ["ops@example.com"]}]}},
    "fault_rerun": {},
    "fault_twice": {},
}

# Loaded by the scheduler before Airflow: its executor's workers fork every task process from it.
PRELOAD = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot, pandas, pyarrow.parquet, scipy.stats
import sklearn.compose, sklearn.ensemble, sklearn.linear_model, sklearn.pipeline, sklearn.preprocessing
import mlflow, mlflow.sklearn, great_expectations
import sys
from airflow.__main__ import main
sys.exit(main())
"""

LOADER = '''"""Fault-injection city: the shipped loader, with retries seconds apart (tests only; see tests/faults)."""

from datetime import timedelta

from airflow_ml_provider.factory import city_dags

dags = city_dags(__file__)
for dag in dags.values():
    for task in dag.tasks:
        if task.retries:  # not approve: a retry would ask the approvers again
            task.retries = 40  # enough to ride out an MLflow restart that takes minutes on a loaded machine
        task.retry_delay = timedelta(seconds=3)
        task.retry_exponential_backoff = False
        if hasattr(task, "mlflow_conn_id"):
            task.mlflow_conn_id = {conn_id!r}
globals().update(dags)
'''
# The city whose MLflow server is stopped and started again has one of its own, so the outages hit only its runs.
OWN_MLFLOW = {"fault_mlflow": "mlflow_faults"}
OWN_MLFLOW_SERVER = "mlflow-faults"


def data_end() -> datetime:
    """Runs are triggered without a logical date, so their windows end now: the data ends at midnight."""
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def city_data(city: str, seed: int | None = None) -> bytes:
    """A small rides file for ``city``; another ``seed`` is the same city's data, changed upstream."""
    import io

    from airflow_ml_provider.core.demo_data import make_city_data

    frame = make_city_data(city, end=data_end().date(), days=40, seed=seed)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_fault_dags(root: Path) -> Path:
    """Only the fault cities: small windows and models, lenient guardrails (a rerun on other data must not be
    blocked: these tests are about faults, not guardrails), manual triggers."""
    dags = root / "dags"
    configs = dags / "configs"
    configs.mkdir(parents=True)
    defaults = yaml.safe_load((PROJECT / "dags" / "configs" / "_defaults.yaml").read_text())
    defaults.update(schedule=None)
    defaults["storage"]["base_uri"] = str(root / "runs")
    defaults["data"].update(
        uri=str(root / "data" / "{city}" / "rides.parquet"), train_window_days=21, eval_window_days=7
    )
    defaults["model"]["params"] = {"max_iter": 20}
    defaults["evaluation"]["guardrails"] = [{"metric": "mae", "max_relative_regression": 1.0}]
    defaults["approval"] = {"approvers": [APPROVER], "timeout_hours": 1}
    (configs / "_defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    for city, extra in CITIES.items():
        (configs / f"{city}.yaml").write_text(yaml.safe_dump({"city": city, **extra}, sort_keys=False))
        (dags / f"{city}.py").write_text(LOADER.format(conn_id=OWN_MLFLOW.get(city, "mlflow_default")))
        if "data" not in extra:
            path = root / "data" / city / "rides.parquet"
            path.parent.mkdir(parents=True)
            path.write_bytes(city_data(city))
    return dags


class MotoS3:
    """moto's S3 server in this process, stoppable: ``stop`` closes its socket (connections are refused), ``start``
    listens on the same port again. Its buckets live in this process, so they survive the outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._server._server.server_close()  # stop() leaves the socket listening: requests would hang, not fail

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )  # fmt: skip


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Faults:
    """The running stack and the moves of the fault scenarios, in terms of cities and their runs."""

    stack: Stack
    s3: MotoS3
    config_dir: Path
    own_mlflow_url: str  # the MLflow server of the cities in OWN_MLFLOW
    mlflow_bounces: list[str] = field(default_factory=list)

    # ----- Airflow ---------------------------------------------------------------------------------------------------

    @staticmethod
    def dag(city: str) -> str:
        return f"retrain_{city}"

    def trigger(self, city: str, reason: str = "faults") -> str:
        return self.stack.api("admin").trigger(self.dag(city), {"reason": reason})

    def task(self, city: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.stack.get_json(f"/api/v2/dags/{self.dag(city)}/dagRuns/{run_id}/taskInstances/{task_id}")

    def wait_task(
        self, city: str, run_id: str, task_id: str, states: set[str], timeout: float = RUN_TIMEOUT, every: float = 0.5
    ) -> dict[str, Any]:
        """The task instance once its state is one of ``states``; fails at once if the run fails."""

        def reached() -> dict[str, Any] | None:
            ti = self.task(city, run_id, task_id)
            if ti["state"] in states:
                return ti
            if ti["state"] in FAILED and not states & FAILED:
                self.fail(city, run_id, f"{task_id} is {ti['state']} (waiting for {sorted(states)})")
            return None

        return self.stack.wait_until(reached, timeout, f"{self.dag(city)} {run_id} {task_id} in {states}", every)

    def xcom(self, city: str, run_id: str, task_id: str) -> Any:
        url = f"/api/v2/dags/{self.dag(city)}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.stack.get_json(url)["value"]

    def approve(self, city: str, run_id: str) -> None:
        """Answer Approve as a listed approver once the scheduler has seen the task park itself.

        Airflow 3.3.2 fails the task when the answer resumes it before the scheduler has processed the executor's
        event for the task's exit into ``awaiting_input`` (see Stack.wait_for_approval); on a loaded machine that
        event came 13 s late. So wait for the scheduler to log it, then a little more.
        """
        ti = self.wait_task(city, run_id, "approve", {"awaiting_input"})
        event = (
            "Received executor event with state success for task instance TaskInstanceKey("
            f"dag_id='{self.dag(city)}', task_id='approve', run_id='{run_id}', try_number={ti['try_number']},"
        )
        scheduler_log = self.stack.root / "logs" / "scheduler.log"
        self.stack.wait_until(
            lambda: event in scheduler_log.read_text(errors="replace"), 300, f"the scheduler to see {run_id} park"
        )
        time.sleep(ANSWER_AFTER)
        self.stack.api(APPROVER).answer(self.dag(city), run_id, "Approve", "fault suite")

    def clear_from_validate_data(self, city: str, run_id: str) -> None:
        """What docs/runbooks.md tells a user after fixing data upstream: clear validate_data with downstream."""
        body = {
            "dag_run_id": run_id, "task_ids": ["validate_data"], "include_downstream": True, "only_failed": False,
            "dry_run": False, "reset_dag_runs": True,
        }  # fmt: skip
        response = self.stack.rest("POST", f"/api/v2/dags/{self.dag(city)}/clearTaskInstances", json=body)
        assert response.status_code == 200, response.text

    def finish(self, city: str, run_id: str) -> dict[str, Any]:
        """The run once it ended, which must be a success with a champion promoted (else fail with task logs)."""
        run = self.stack.wait_for_run_end(self.dag(city), run_id, timeout=RUN_TIMEOUT)
        assert self.task(city, run_id, "promote")["state"] == "success", self.stack.task_logs(self.dag(city), run_id)
        return run

    def run_to_champion(self, city: str) -> str:
        """A whole run, approved: the city's 'next run succeeds' after a fault."""
        run_id = self.trigger(city, "next run after the fault")
        self.approve(city, run_id)
        self.finish(city, run_id)
        return run_id

    def fail(self, city: str, run_id: str, what: str) -> None:
        states = self.stack.task_states(self.dag(city), run_id)
        pytest.fail(
            f"{self.dag(city)} {run_id}: {what} (all: {states})\n{self.stack.task_logs(self.dag(city), run_id)}"
        )

    # ----- outages ---------------------------------------------------------------------------------------------------

    def bounce_mlflow(self, why: str) -> None:
        """Stop the MLflow server of OWN_MLFLOW's cities and start it again (an outage as long as its start-up),
        then wait until it serves."""
        server = next(server for server in self.stack.servers if server.name == OWN_MLFLOW_SERVER)
        self.stack.stop(server)
        self.mlflow_bounces.append(why)
        self.stack.restart(server)
        with httpx.Client(base_url=self.own_mlflow_url, timeout=10) as http:
            self.stack.wait_until(lambda: http.get("/health").status_code == 200, 180, "MLflow after its restart")

    # ----- MLflow ----------------------------------------------------------------------------------------------------

    def mlflow_url(self, city: str) -> str:
        return self.own_mlflow_url if city in OWN_MLFLOW else self.stack.mlflow_url

    def mlflow(self, city: str) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow_url(city), registry_uri=self.mlflow_url(city))

    # ----- invariants ------------------------------------------------------------------------------------------------

    def audit(self, *cities: str) -> tuple[int, str]:
        """``airflow-ml audit`` as a user runs it (its own process), against the cities' MLflow server."""
        import subprocess

        urls = {self.mlflow_url(city) for city in cities}
        assert len(urls) == 1, f"{cities} use different MLflow servers: audit them one server at a time"
        env = {k: v for k, v in self.stack.env.items() if k != "AIRFLOW_CONN_MLFLOW_DEFAULT"}
        env.update(PYTHONPATH=str(PROJECT), MLFLOW_TRACKING_URI=urls.pop())
        done = subprocess.run(
            [str(BIN / "airflow-ml"), "audit", *cities, "--config-dir", str(self.config_dir)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    def assert_invariants(self, city: str, approved_runs: list[str]) -> None:
        """After a fault: audit passes, one version per distinct model per DAG run, and the champion holds the bits
        the last approved run's approval was about."""
        from airflow_ml_provider.core import registry

        client = self.mlflow(city)
        model = f"eta_{city}"
        versions = client.search_model_versions(f"name = '{model}'")
        seen: dict[tuple[str, str], str] = {}
        for version in versions:
            key = (version.tags.get(registry.DAG_RUN_TAG, ""), version.tags.get(registry.MODEL_SHA_TAG, ""))
            assert key not in seen, f"{model} v{version.version} and v{seen[key]}: same bits of one DAG run {key}"
            seen[key] = str(version.version)
        champion = client.get_model_version_by_alias(model, registry.CHAMPION)
        assert champion.tags[registry.DECISION_TAG] == registry.APPROVED, champion.tags
        assert champion.tags[registry.DECIDED_BY_TAG] == APPROVER, champion.tags
        decision = self.xcom(city, approved_runs[-1], "approve")
        registered = self.xcom(city, approved_runs[-1], "register")
        assert str(registered["version"]) == str(champion.version), (registered, champion.version)
        evaluated_sha = registered.get("model_sha256") or decision.get("model_sha256")
        assert champion.tags.get(registry.MODEL_SHA_TAG) == evaluated_sha, (champion.tags, registered)
        code, output = self.audit(city)
        assert code == 0, output
