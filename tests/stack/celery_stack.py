"""The production topology of docker-compose.yaml without Docker, on loopback only, for the stack test and
``benchmarks/orchestration.py --celery``: a throwaway PostgreSQL cluster (databases airflow and mlflow), Redis as
Celery broker, moto's S3 server as the object store, an MLflow tracking server on Postgres with artifacts in S3 behind
basic authentication (its users made by deploy/mlflow_users.py, as mlflow-init does), and Airflow with the
CeleryExecutor (api-server, scheduler, dag-processor, triggerer and a separate Celery worker) reaching MLflow as its
own user through the mlflow_default connection. The Airflow components name the workers' preload
(``airflow_ml_provider.celery_config.CELERY_CONFIG``) as the compose stack does, unless ``preload=False``.

Needs the Debian packages postgresql and redis-server (``make system-deps``) and the Python packages
apache-airflow-providers-celery, psycopg2-binary, redis and Flask-WTF (MLflow's auth extra). Every process started
here runs in its own process group and is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from e2e import postgres

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATA_BUCKET = "airflow-ml"
MLFLOW_BUCKET = "mlflow"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
MLFLOW_ADMIN = ("admin", "stack-test-mlflow-admin-password")
MLFLOW_AIRFLOW = ("airflow", "stack-test-mlflow-airflow-password")
POOL_SLOTS = 4  # ml_training, as ML_TRAINING_POOL_SLOTS in .env.example
CELERY_CONFIG = "airflow_ml_provider.celery_config.CELERY_CONFIG"
PRELOAD_LOG_LINE = "Imported the ML steps' libraries in"  # what celery_config logs in the worker's main process


class StackError(AssertionError):
    """A server died or did not come up in time; the message carries its log's end."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(what: str, check: Callable[[], Any], timeout: float, procs: Processes | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the logs of dead processes after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if procs is not None:
            procs.assert_alive()
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(1)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")


class Processes:
    """Started processes, each in its own process group, with logs in files; stop() ends all of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str], user: str | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, user=user, cwd=self.log_dir,
        )  # fmt: skip
        log.close()
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def assert_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")

    def stop(self) -> None:
        """SIGTERM every process group (newest first), wait, then SIGKILL whatever is left."""
        for _, proc in reversed(self.started):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in reversed(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _, proc in reversed(self.started):
            _signal_group(proc, signal.SIGKILL)  # also children that outlived their group leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def missing_requirements() -> str | None:
    """Why the stack cannot run here, or None."""
    import importlib.util

    if postgres.bin_dir() is None or shutil.which("redis-server") is None:
        return "needs the Debian packages postgresql and redis-server (make system-deps)"
    for module in ("airflow.providers.celery", "psycopg2", "redis", "flask_wtf"):
        if importlib.util.find_spec(module) is None:
            return f"needs the Python package that provides {module} (pip install -e '.[dev]')"
    return None


def write_dag_folder(root: Path, cities: list[str]) -> Path:
    """One loader and config per city, berlin's (other names replace "berlin"), manual schedule; data and run storage
    in S3 (``s3://airflow-ml/data/<city>/rides.parquet``, ``s3://airflow-ml/runs``)."""
    dags = root / "dags"
    configs = dags / "configs"
    configs.mkdir(parents=True)
    defaults = yaml.safe_load((PROJECT / "dags" / "configs" / "_defaults.yaml").read_text())
    defaults["storage"]["base_uri"] = f"s3://{DATA_BUCKET}/runs"
    defaults["data"]["uri"] = f"s3://{DATA_BUCKET}/data/{{city}}/rides.parquet"
    (configs / "_defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    loader = (PROJECT / "dags" / "berlin.py").read_text()
    berlin = yaml.safe_load((PROJECT / "dags" / "configs" / "berlin.yaml").read_text())
    berlin["schedule"] = None  # only the runs triggered here
    city_yaml = yaml.safe_dump(berlin, sort_keys=False)
    for city in cities:
        (dags / f"{city}.py").write_text(loader.replace("berlin", city))
        (configs / f"{city}.yaml").write_text(city_yaml.replace("berlin", city))
    return dags


@dataclass
class CeleryStack:
    """The running stack and how to reach it."""

    root: Path
    procs: Processes
    env: dict[str, str]
    s3: Any  # boto3 S3 client on moto
    s3_url: str
    mlflow_url: str
    api_url: str
    http: Any  # httpx.Client on the api-server
    admin: Any  # AirflowApi as admin

    def put_city_data(self, city: str, frame: Any) -> None:
        from airflow_ml_provider.core.snapshot import to_parquet_bytes

        self.s3.put_object(Bucket=DATA_BUCKET, Key=f"data/{city}/rides.parquet", Body=to_parquet_bytes(frame))

    def unpause(self, dag_ids: list[str], timeout: float = 300) -> None:
        """Wait until the DAG processor has parsed the DAGs, then unpause them."""
        headers = self.admin._headers

        def parsed() -> bool:
            found = self.http.get("/api/v2/dags", params={"limit": 1000, "dag_id_pattern": "retrain_%"},
                                  headers=headers).json()  # fmt: skip
            return {d["dag_id"] for d in found["dags"]} >= set(dag_ids)

        wait(f"{len(dag_ids)} DAG(s) parsed", parsed, timeout, self.procs)
        for dag_id in dag_ids:
            response = self.http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}, headers=headers)
            assert response.status_code == 200, response.text

    def print_logs(self) -> None:
        for name in ("scheduler", "celery-worker", "triggerer", "dag-processor", "mlflow"):
            if (self.procs.log_dir / f"{name}.log").exists():
                print(f"----- last lines of {name}.log -----\n{self.procs.log(name)[-3000:]}")


@contextlib.contextmanager
def running(root: Path, dags: Path, *, concurrency: int = 2, preload: bool = True) -> Iterator[CeleryStack]:
    """Start the stack on ``dags`` (from :func:`write_dag_folder`) under ``root``; stop it on leaving. The Celery
    worker runs ``concurrency`` tasks at once; ``preload`` names the workers' preload (celery_config)."""
    import boto3
    import httpx
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(PROJECT / "deploy"))  # deploy/mlflow_users.py: the script mlflow-init runs
    import mlflow_users

    from airflow_ml_provider.hooks.api_client import AirflowApi
    from airflow_ml_provider.tools import embedded

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server, in this process: a line per request
    logs = root / "logs"
    logs.mkdir()
    procs = Processes(logs)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    try:
        # ----- S3 (moto), Postgres, Redis -----
        s3_url = f"http://127.0.0.1:{moto._server.server_port}"  # type: ignore[union-attr]
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        for bucket in (DATA_BUCKET, MLFLOW_BUCKET):
            s3.create_bucket(Bucket=bucket)
        pg_port = _start_postgres(procs, root)
        redis_port = _start_redis(procs, root)
        airflow_db, mlflow_db = postgres.url(pg_port, "airflow"), postgres.url(pg_port, "mlflow")

        # ----- MLflow tracking server on Postgres, artifacts in S3, basic authentication -----
        mlflow_port = free_port()
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_"))}
        auth_ini = root / "mlflow-basic-auth.ini"
        auth_ini.write_text(
            (PROJECT / "deploy" / "mlflow-basic-auth.ini")
            .read_text()
            .replace("sqlite:////home/mlflow/auth/", f"sqlite:///{root}/")
        )
        mlflow_env = {
            **base_env, **AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_url, "GIT_PYTHON_REFRESH": "quiet",
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini), "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_ADMIN[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "stack-test-flask-secret",
        }  # fmt: skip
        procs.start("mlflow", [
            str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri", mlflow_db,
            "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/", "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
            "--allowed-hosts", f"127.0.0.1:{mlflow_port},localhost:{mlflow_port}",
        ], env=mlflow_env)  # fmt: skip

        # ----- Airflow with the CeleryExecutor -----
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        env = {**base_env, **AWS_ENV, **embedded.environment(root, dags)}
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "stack-test-jwt-secret-" + "x" * 64,
            "AIRFLOW__API__SECRET_KEY": "stack-test-api-secret",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_ML_CONFIG_DIR": str(dags / "configs"),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
                "conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
            }),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({
                "conn_type": "mlflow", "host": mlflow_url, "login": MLFLOW_AIRFLOW[0], "password": MLFLOW_AIRFLOW[1],
            }),
            "MLFLOW_TRACKING_URI": mlflow_url,
        })  # fmt: skip
        if preload:
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = CELERY_CONFIG
        airflow_home = Path(env["AIRFLOW_HOME"])
        airflow_home.mkdir(parents=True)
        embedded.write_passwords(env)

        migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=root,
                                 capture_output=True, text=True, timeout=240)  # fmt: skip
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        airflow = str(BIN / "airflow")
        procs.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                   "--workers", "1"], env)  # fmt: skip
        procs.start("scheduler", [airflow, "scheduler"], env)
        procs.start("dag-processor", [airflow, "dag-processor"], env)
        procs.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        procs.start("celery-worker", [airflow, "celery", "worker", "--skip-serve-logs", "--concurrency",
                                      str(concurrency), "--celery-hostname", "stackworker@%h", "--without-gossip"],
                    env)  # fmt: skip

        http = httpx.Client(base_url=api_url, timeout=30)
        wait("Airflow's health endpoint", lambda: http.get("/api/v2/monitor/health").status_code == 200, 180, procs)
        wait("the MLflow server", lambda: httpx.get(f"{mlflow_url}/health", timeout=5).status_code == 200, 120, procs)
        search = f"{mlflow_url}/api/2.0/mlflow/registered-models/search"
        assert httpx.get(search, timeout=30).status_code == 401  # nobody gets in without a user
        # what mlflow-init does: the admin creates the user Airflow works as
        with mlflow_user(MLFLOW_ADMIN):
            assert mlflow_users.ensure_user(mlflow_url, *MLFLOW_AIRFLOW) == "created"
        admin = AirflowApi(http, "admin", "admin")
        pool = {"name": "ml_training", "slots": POOL_SLOTS, "description": "train and evaluate slots",
                "include_deferred": False}  # fmt: skip
        assert http.post("/api/v2/pools", json=pool, headers=admin._headers).status_code in (201, 409)
        stack = CeleryStack(root, procs, env, s3, s3_url, mlflow_url, api_url, http, admin)
        try:
            yield stack
        except BaseException:
            stack.print_logs()
            raise
    finally:
        procs.stop()
        moto.stop()


@contextlib.contextmanager
def mlflow_user(user: tuple[str, str]) -> Iterator[None]:
    """MLflow clients in this process authenticate as ``user`` (how MlflowHook passes the connection's login)."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_postgres(procs: Processes, root: Path) -> int:
    port = free_port()
    command, run_as = postgres.init_cluster(root, port)
    procs.start("postgres", command, env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}, user=run_as)
    wait("postgres", lambda: postgres.create_databases(port, ("airflow", "mlflow")), 60, procs)
    return port


def _start_redis(procs: Processes, root: Path) -> int:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(root)]  # fmt: skip
    procs.start("redis", args, env={"PATH": os.environ["PATH"]})

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait("redis", ping, 30, procs)
    return port
