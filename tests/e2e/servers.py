"""Real servers for the end-to-end tests: Airflow 3.3 (api-server, scheduler, dag-processor; LocalExecutor on a
throwaway PostgreSQL) and an MLflow tracking server, on a throwaway folder, loopback only.

The servers get an environment of their own, built from ``embedded.environment``: the root conftest points this
process at another session folder for the in-process tests. Every server runs in a session of its own, and a
watchdog (``reaper.py``) stops them all when the stack is left or the test process dies (pytest-timeout exits hard).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from airflow_ml_provider.hooks.api_client import AirflowApi
from airflow_ml_provider.tools import embedded

from . import postgres

PROJECT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT / "test-artifacts" / "e2e"
BIN = Path(sys.executable).parent

# The demo data of the trained cities ends here (exclusive); runs use it as their logical date.
DATA_END = datetime(2026, 6, 1, tzinfo=timezone.utc)
TIMEOUT_CITY = "oslo"
# 18 s, not the in-process tests' 2 s: with a real executor, a sweep that resumes the task before the scheduler has
# processed the executor's event for the task's own deferral exit makes the scheduler fail it (seen with ~5 s lag).
TIMEOUT_HOURS = 0.005
CRON_CITY = "bergen"  # every minute; no data on purpose, so its run fails at once and costs nothing
STARTUP_TIMEOUT = 300  # seconds, for migrations, servers and the first parse of every DAG file
RUN_TIMEOUT = 480  # seconds for one run to train and reach its approval on a busy 2-core machine
ANSWER_AFTER = 8  # seconds after the request appears; see Stack.wait_for_approval
STUCK = {"failed", "upstream_failed", "skipped", "up_for_retry"}

T = TypeVar("T")


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path
    args: list[str] = field(default_factory=list)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"----- {self.name} (exit code {self.process.poll()})\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """The running servers and how to talk to them."""

    root: Path
    dags: Path
    env: dict[str, str]
    reaper: subprocess.Popen
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    servers: list[Server] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api_url = self.env["AIRFLOW__API__BASE_URL"]
        self.mlflow_url = self.env["MLFLOW_TRACKING_URI"]
        self.http = httpx.Client(base_url=self.api_url, timeout=60)

    # ----- processes -------------------------------------------------------------------------------------------------

    def start(self, name: str, args: list[str], run_as: str | None = None) -> Server:
        """A process in a session of its own (so its own process group), registered with the watchdog first thing."""
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, user=run_as,
            )  # fmt: skip
        self.watch(process.pid)
        server = Server(name, process, log, args)
        self.servers.append(server)
        return server

    def stop(self, server: Server, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop a server and every process of its session (an outage); ``restart`` brings it back."""
        self.servers.remove(server)  # stopped on purpose: wait_until must not take it for a crash
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, sig)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)

    def restart(self, server: Server) -> Server:
        """The stopped server again, same command and ports; the stopped one's log is kept as <name>.<pid>.log."""
        log = server.log.with_name(f"{server.name}.{server.process.pid}.log")
        server.log.rename(log)  # keep the stopped process's log beside the new one
        return self.start(server.name, server.args)

    def watch(self, sid: int) -> None:
        """Have the watchdog stop every process of this session at the end."""
        assert self.reaper.stdin is not None
        self.reaper.stdin.write(f"{sid}\n".encode())
        self.reaper.stdin.flush()

    def close(self) -> None:
        """Leave the stack: the watchdog stops everything, keeps the logs and removes the folder."""
        self.http.close()
        assert self.reaper.stdin is not None
        self.reaper.stdin.close()
        self.reaper.wait(timeout=120)

    def logs(self) -> str:
        return "\n".join(server.tail() for server in self.servers)

    def wait_until(self, check: Callable[[], T], timeout: float, what: str, every: float = 1.0) -> T:
        """Poll ``check`` until it returns something truthy; fail with the servers' logs after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            dead = [s.name for s in self.servers if s.name != "migrate" and s.process.poll() is not None]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited while waiting for {what}\n{self.logs()}")
            try:
                result = check()
            except (httpx.HTTPError, OSError) as exc:  # a server still starting, or busy
                last_error, result = exc, None
            if result:
                return result
            time.sleep(every)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})\n{self.logs()}")

    # ----- Airflow REST ----------------------------------------------------------------------------------------------

    def api(self, user: str = "admin") -> AirflowApi:
        return AirflowApi(self.http, user, embedded.password(user))

    def rest(self, method: str, url: str, user: str = "admin", **kwargs: Any) -> httpx.Response:
        """Any REST route as ``user``, for the routes AirflowApi has no method for."""
        if user not in self._tokens:
            password = embedded.password(user)
            response = self.http.post("/auth/token", json={"username": user, "password": password})
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return self.http.request(method, url, headers={"Authorization": f"Bearer {self._tokens[user]}"}, **kwargs)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        response = self.rest("GET", url, **kwargs)
        response.raise_for_status()
        return response.json()

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def task_logs(self, dag_id: str, run_id: str, lines: int = 30) -> str:
        """The end of every task log of a run (the LocalExecutor writes them under AIRFLOW_HOME/logs)."""
        folder = Path(self.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return "\n".join(
            f"----- {path.parent.name}/{path.name}\n"
            + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in sorted(folder.glob("*/*.log"))
        )

    def fail_if_stuck(self, dag_id: str, run_id: str) -> None:
        """A failed, skipped or retried step means the approval will never come: fail now, with the task logs."""
        states = self.task_states(dag_id, run_id)
        stuck = {task: state for task, state in states.items() if state in STUCK}
        if stuck:
            pytest.fail(f"{dag_id} {run_id}: {stuck} (all: {states})\n{self.task_logs(dag_id, run_id)}")

    def wait_for_approval(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """The run's approval request, once ``approve`` is awaiting input and safe to answer.

        Safe means a few seconds old. Airflow 3.3.2 fails the task when an answer resumes it before the scheduler has
        processed the executor's event for the task's own exit into ``awaiting_input``: the scheduler takes that late
        event for the resumed try (seen with answers given within a second). A person never answers that fast.
        """
        admin = self.api("admin")

        def pending() -> dict[str, Any] | None:
            found = [p for p in admin.pending_approvals(dag_id) if p["task_instance"]["dag_run_id"] == run_id]
            if not found:
                self.fail_if_stuck(dag_id, run_id)
            return found[0] if found else None

        request = self.wait_until(pending, timeout, f"the approval of {dag_id} {run_id}", every=2)
        self.wait_for_scheduler_to_see_parked(dag_id, run_id)
        asked_at = datetime.fromisoformat(request["created_at"].replace("Z", "+00:00"))
        time.sleep(max(0.0, ANSWER_AFTER - (datetime.now(timezone.utc) - asked_at).total_seconds()))
        return request

    def wait_for_scheduler_to_see_parked(self, dag_id: str, run_id: str, timeout: float = 180) -> None:
        """Wait until the scheduler logged the executor's event for the approve task's exit into awaiting_input.

        A fixed pause is not enough on a loaded machine: that event was seen 13 s late at load 28, and an answer
        before it fails the resumed task (the flaky e2e failure). When no server log shows scheduler lines (a log
        format this test does not know), the fixed pause alone applies.
        """
        ti = self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve")
        event = (
            "Received executor event with state success for task instance TaskInstanceKey("
            f"dag_id='{dag_id}', task_id='approve', run_id='{run_id}', try_number={ti['try_number']},"
        )

        def seen() -> bool | None:
            texts = [s.log.read_text(errors="replace") for s in self.servers if s.log.exists()]
            if not any("Received executor event" in text for text in texts):
                return None
            return any(event in text for text in texts)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not seen():
            time.sleep(1)

    def wait_for_run_end(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """The finished run, which must have succeeded (else fail with the task logs)."""
        admin = self.api("admin")
        run = self.wait_until(
            lambda: (r := admin.dag_run(dag_id, run_id))["state"] in ("success", "failed") and r,
            timeout, f"the end of {dag_id} {run_id}", every=2,
        )  # fmt: skip
        assert run["state"] == "success", f"{self.task_states(dag_id, run_id)}\n{self.task_logs(dag_id, run_id)}"
        return run

    # ----- MLflow ----------------------------------------------------------------------------------------------------

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow_url, registry_uri=self.mlflow_url)


def start_watchdog(root: Path, artifacts: Path) -> subprocess.Popen:
    """The watchdog (reaper.py) that stops every registered session and keeps the logs when its stdin closes."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(root), str(artifacts)],
        stdin=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


@contextmanager
def project_copy(name: str, environment: Callable[[Path], dict[str, str]]) -> Iterator[Stack]:
    """A folder holding a copy of this project's dags/ (for ``airflow-ml standalone``), a watchdog that stops whatever
    a test leaves behind and keeps the logs under ``ARTIFACTS/<name>``, and an environment without this shell's
    AIRFLOW* and MLFLOW* settings, plus ``environment(folder)``. No server is started."""
    root = Path(tempfile.mkdtemp(prefix=f"airflow-ml-{name}-"))
    shutil.copytree(PROJECT / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    reaper = start_watchdog(root, ARTIFACTS / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    env.update({"PYTHONUNBUFFERED": "1", **environment(root)})
    stack = Stack(root=root, dags=root / "dags", env=env, reaper=reaper)
    try:
        yield stack
    finally:
        stack.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_dags_copy(root: Path) -> Path:
    """This project's dags/ with absolute data and storage paths and the shipped cities manual-only (their weekly
    cron would start a run as soon as the DAG appears), plus a city whose approval times out and one on a 1-minute
    cron."""
    dags = root / "dags"
    shutil.copytree(PROJECT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    configs = dags / "configs"
    defaults = yaml.safe_load((configs / "_defaults.yaml").read_text())
    defaults["schedule"] = None
    defaults["storage"]["base_uri"] = str(root / "runs")
    defaults["data"]["uri"] = str(root / "data" / "{city}" / "rides.parquet")
    (configs / "_defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    for path in configs.glob("[!_]*.yaml"):
        city = yaml.safe_load(path.read_text())
        city["schedule"] = None
        path.write_text(yaml.safe_dump(city, sort_keys=False))
    (configs / f"{TIMEOUT_CITY}.yaml").write_text(
        f"city: {TIMEOUT_CITY}\napproval: {{approvers: [ops_lead], timeout_hours: {TIMEOUT_HOURS}}}\n"
    )
    # Retries keep its one failed run "running" (up for retry) for minutes, so max_active_runs=1 stops the cron
    # from starting a new run every minute.
    (configs / f"{CRON_CITY}.yaml").write_text(
        f'city: {CRON_CITY}\nschedule: "* * * * *"\nretries: 5\napproval: {{approvers: [ops_lead]}}\n'
    )
    loader = (dags / "berlin.py").read_text()
    for city in (TIMEOUT_CITY, CRON_CITY):
        (dags / f"{city}.py").write_text(loader)
    return dags


def write_demo_data(root: Path) -> None:
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    for city in ("berlin", TIMEOUT_CITY):
        write_city_data(make_city_data(city, end=DATA_END.date()), root / "data" / city / "rides.parquet")


def server_environment(root: Path, dags: Path, database_url: str, api_port: int, mlflow_port: int) -> dict[str, str]:
    """embedded.environment() for real servers: Postgres, loopback ports, short scheduler intervals."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    env.update(embedded.environment(root, dags))
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_ML_CONFIG_DIR": str(dags / "configs"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__EXPOSE_STACKTRACE": "True",  # a failed request says why in the test's output
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # New DAG files are seen within seconds; unchanged ones are re-parsed once a minute.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            # The approval timeout sweep (default every 15 s) and an idle scheduler's loop.
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
                {"conn_type": "mlflow", "host": mlflow_url, "extra": {"artifact_root": str(root / "mlartifacts")}}
            ),
            "MLFLOW_TRACKING_URI": mlflow_url,
            # MLflow's job runner (GenAI scorers) would start a dozen worker processes on this small machine.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
    )
    return env


def _airflow_healthy(stack: Stack) -> bool:
    health = stack.http.get("/api/v2/monitor/health").json()
    components = ("metadatabase", "scheduler", "dag_processor")
    return all((health.get(name) or {}).get("status") == "healthy" for name in components)


def _databases_created(port: int) -> bool:
    import psycopg2

    try:
        return postgres.create_databases(port, ("airflow",))
    except psycopg2.OperationalError:  # still starting
        return False


def _dags_parsed(stack: Stack, dag_ids: list[str]) -> bool:
    return all(stack.rest("GET", f"/api/v2/dags/{dag_id}").status_code == 200 for dag_id in dag_ids)


def write_e2e_dags(root: Path) -> Path:
    """The end-to-end tests' DAG folder (see write_dags_copy) and the demo data of its trained cities."""
    dags = write_dags_copy(root)
    write_demo_data(root)
    return dags


E2E_DAG_IDS = ("retrain_berlin", f"retrain_{TIMEOUT_CITY}", f"retrain_{CRON_CITY}")


@contextmanager
def running_stack(
    write_dags: Callable[[Path], Path] = write_e2e_dags,
    dag_ids: Sequence[str] = E2E_DAG_IDS,
    extra_env: dict[str, str] | None = None,
    scheduler: Sequence[str] = (str(BIN / "airflow"),),
    artifacts: Path = ARTIFACTS,
) -> Iterator[Stack]:
    """Airflow and MLflow servers on free loopback ports, with a DAG folder and data from ``write_dags(root)``
    (default: this project's DAGs and demo data), ready once ``dag_ids`` are parsed. ``scheduler`` is the command
    before ``scheduler`` (another interpreter set-up, say); ``extra_env`` is added to every server's environment;
    the logs are kept under ``artifacts``.

    Separate processes rather than ``airflow standalone``: each has its own log, and the scheduler runs with
    ``--skip-serve-logs`` (the log server binds every interface; the api-server reads the local task logs).
    No triggerer: in 3.3 an approval waits in ``awaiting_input``; the API resumes it, the scheduler times it out.
    """
    root = Path(tempfile.mkdtemp(prefix="airflow-ml-e2e-"))
    reaper = start_watchdog(root, artifacts)
    dags = write_dags(root)
    db_port = free_port()
    env = server_environment(
        root, dags, postgres.url(db_port, "airflow"), api_port=free_port(), mlflow_port=free_port()
    )
    env.update(extra_env or {})
    stack = Stack(root=root, dags=dags, env=env, reaper=reaper)
    try:
        stack.start("postgres", *postgres.init_cluster(root, db_port))
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
        embedded.write_passwords(env)
        # MLflow creates its SQLite store while Airflow migrates its own.
        stack.start(
            "mlflow",
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--default-artifact-root", str(root / "mlartifacts"), "--host", "127.0.0.1",
             "--port", env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1], "--workers", "1"],
        )  # fmt: skip
        stack.wait_until(lambda: _databases_created(db_port), STARTUP_TIMEOUT, "PostgreSQL")
        migrate = stack.start("migrate", [str(BIN / "airflow"), "db", "migrate"])
        if migrate.process.wait(timeout=STARTUP_TIMEOUT) != 0:
            pytest.fail(f"airflow db migrate failed\n{migrate.tail(80)}")
        stack.start("api-server", [str(BIN / "airflow"), "api-server"])
        stack.start("scheduler", [*scheduler, "scheduler", "--skip-serve-logs"])
        stack.start("dag-processor", [str(BIN / "airflow"), "dag-processor"])

        stack.wait_until(lambda: _airflow_healthy(stack), STARTUP_TIMEOUT, "Airflow health")
        with httpx.Client(base_url=stack.mlflow_url, timeout=10) as mlflow_http:
            stack.wait_until(lambda: mlflow_http.get("/health").status_code == 200, STARTUP_TIMEOUT, "MLflow health")
        pool = {"name": "ml_training", "slots": 2, "description": "train and evaluate slots shared by every city"}
        created = stack.rest("POST", "/api/v2/pools", json=pool)
        assert created.status_code in (200, 201, 409), created.text
        stack.wait_until(lambda: _dags_parsed(stack, list(dag_ids)), STARTUP_TIMEOUT, f"the DAGs {list(dag_ids)}")
        yield stack
    finally:
        stack.close()
