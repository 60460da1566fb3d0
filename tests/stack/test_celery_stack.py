"""The production topology of docker-compose.yaml without Docker, on loopback only: a throwaway PostgreSQL cluster
(databases airflow and mlflow), Redis as Celery broker, moto's S3 server as the object store, an MLflow tracking
server on Postgres with artifacts in S3 behind basic authentication (its users made by deploy/mlflow_users.py, as
mlflow-init does), and Airflow with the CeleryExecutor (api-server, scheduler, dag-processor, triggerer and a
separate Celery worker) reaching MLflow as its own user through the mlflow_default connection. One retrain of berlin
runs end to end and is approved over REST; a user who may only read cannot move the champion.

Needs the Debian packages postgresql and redis-server (``make system-deps``) and the Python packages
apache-airflow-providers-celery, psycopg2-binary, redis and Flask-WTF (MLflow's auth extra). Every process started
here runs in its own process group and is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e import postgres

# A guard, not a speed check: on a busy 2-core machine starting eight servers takes minutes.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(2000, method="signal")]

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CITY = "berlin"
DAG_ID = f"retrain_{CITY}"
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
DATA_BUCKET = "airflow-ml"
MLFLOW_BUCKET = "mlflow"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TASKS = ("validate_data", "train", "evaluate", "register", "approve", "promote")
MLFLOW_ADMIN = ("admin", "stack-test-mlflow-admin-password")
MLFLOW_AIRFLOW = ("airflow", "stack-test-mlflow-airflow-password")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, check: Callable[[], Any], timeout: float, procs: Processes | None = None) -> Any:
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
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")


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
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")

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


@pytest.fixture
def stack_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="airflow-ml-stack-"))
    yield root
    if not os.environ.get("AIRFLOW_ML_KEEP_STACK"):  # set it to keep the logs for a post-mortem
        shutil.rmtree(root, ignore_errors=True)


def _start_postgres(procs: Processes, root: Path) -> int:
    port = _free_port()
    command, run_as = postgres.init_cluster(root, port)
    procs.start("postgres", command, env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}, user=run_as)
    _wait("postgres", lambda: postgres.create_databases(port, ("airflow", "mlflow")), 60, procs)
    return port


def _start_redis(procs: Processes, root: Path) -> int:
    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(root)]  # fmt: skip
    procs.start("redis", args, env={"PATH": os.environ["PATH"]})

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    _wait("redis", ping, 30, procs)
    return port


def _write_dag_folder(root: Path) -> Path:
    """berlin only (manual schedule), data and run storage in S3."""
    dags = root / "dags"
    shutil.copytree(PROJECT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    for loader in dags.glob("*.py"):
        if loader.stem != CITY:
            loader.unlink()
    defaults_path = dags / "configs" / "_defaults.yaml"
    defaults = yaml.safe_load(defaults_path.read_text())
    defaults["storage"]["base_uri"] = f"s3://{DATA_BUCKET}/runs"
    defaults["data"]["uri"] = f"s3://{DATA_BUCKET}/data/{{city}}/rides.parquet"
    defaults_path.write_text(yaml.safe_dump(defaults, sort_keys=False))
    city_path = dags / "configs" / f"{CITY}.yaml"
    city = yaml.safe_load(city_path.read_text())
    city["schedule"] = None  # only the run triggered here
    city_path.write_text(yaml.safe_dump(city, sort_keys=False))
    return dags


def _mlflow_as(user: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow clients in this process authenticate as ``user`` (how MlflowHook passes the connection's login)."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])


def test_retrain_on_celery_postgres_redis_mlflow_s3(stack_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    if postgres.bin_dir() is None or shutil.which("redis-server") is None:
        pytest.skip("needs the Debian packages postgresql and redis-server (make system-deps)")
    for module in ("airflow.providers.celery", "psycopg2", "redis", "flask_wtf"):
        pytest.importorskip(module)

    import boto3
    import httpx
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(PROJECT / "deploy"))  # deploy/mlflow_users.py: the script mlflow-init runs
    import mlflow_users

    from airflow_ml_provider.core.demo_data import make_city_data
    from airflow_ml_provider.core.snapshot import to_parquet_bytes
    from airflow_ml_provider.core.storage import run_uri
    from airflow_ml_provider.hooks.api_client import AirflowApi
    from airflow_ml_provider.tools import embedded

    logs = stack_root / "logs"
    logs.mkdir()
    procs = Processes(logs)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    moto.start()
    try:
        # ----- S3 (moto), Postgres, Redis -----
        s3_url = f"http://127.0.0.1:{moto._server.server_port}"  # type: ignore[union-attr]
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        for bucket in (DATA_BUCKET, MLFLOW_BUCKET):
            s3.create_bucket(Bucket=bucket)
        frame = make_city_data(CITY, end=END.date())
        s3.put_object(Bucket=DATA_BUCKET, Key=f"data/{CITY}/rides.parquet", Body=to_parquet_bytes(frame))

        pg_port = _start_postgres(procs, stack_root)
        redis_port = _start_redis(procs, stack_root)
        airflow_db, mlflow_db = postgres.url(pg_port, "airflow"), postgres.url(pg_port, "mlflow")

        # ----- MLflow tracking server on Postgres, artifacts in S3, basic authentication -----
        mlflow_port = _free_port()
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_"))}
        auth_ini = stack_root / "mlflow-basic-auth.ini"
        auth_ini.write_text(
            (PROJECT / "deploy" / "mlflow-basic-auth.ini")
            .read_text()
            .replace("sqlite:////home/mlflow/auth/", f"sqlite:///{stack_root}/")
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
        dags = _write_dag_folder(stack_root)
        api_port = _free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        env = {**base_env, **AWS_ENV, **embedded.environment(stack_root, dags)}
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "stack-test-jwt-secret-" + "x" * 64,
            "AIRFLOW__API__SECRET_KEY": "stack-test-api-secret",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
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
        airflow_home = Path(env["AIRFLOW_HOME"])
        airflow_home.mkdir(parents=True)
        embedded.write_passwords(env)

        migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=stack_root,
                                 capture_output=True, text=True, timeout=240)  # fmt: skip
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        airflow = str(BIN / "airflow")
        procs.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                   "--workers", "1"], env)  # fmt: skip
        procs.start("scheduler", [airflow, "scheduler"], env)
        procs.start("dag-processor", [airflow, "dag-processor"], env)
        procs.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        procs.start("celery-worker", [airflow, "celery", "worker", "--skip-serve-logs", "--concurrency", "2",
                                      "--celery-hostname", "stackworker@%h", "--without-gossip"], env)  # fmt: skip

        http = httpx.Client(base_url=api_url, timeout=30)
        _wait("Airflow's health endpoint", lambda: http.get("/api/v2/monitor/health").status_code == 200, 180, procs)
        _wait("the MLflow server", lambda: httpx.get(f"{mlflow_url}/health", timeout=5).status_code == 200, 120, procs)
        search = f"{mlflow_url}/api/2.0/mlflow/registered-models/search"
        assert httpx.get(search, timeout=30).status_code == 401  # nobody gets in without a user
        # what mlflow-init does: the admin creates the user Airflow works as
        _mlflow_as(MLFLOW_ADMIN, monkeypatch)
        assert mlflow_users.ensure_user(mlflow_url, *MLFLOW_AIRFLOW) == "created"
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        admin = AirflowApi(http, "admin", "admin")
        headers = admin._headers
        pool = {"name": "ml_training", "slots": 4, "description": "train and evaluate slots", "include_deferred": False}
        assert http.post("/api/v2/pools", json=pool, headers=headers).status_code in (201, 409)
        _wait(f"{DAG_ID} parsed", lambda: http.get(f"/api/v2/dags/{DAG_ID}", headers=headers).status_code == 200,
              120, procs)  # fmt: skip
        assert http.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}, headers=headers).status_code == 200

        # ----- the run: trigger, approve as berlin_ops, success -----
        conf = {"reason": "stack test", "estimator_params": {"max_iter": 50}}
        run_id = admin.trigger(DAG_ID, conf=conf, logical_date=END.isoformat())
        pending = _wait("the approval request", lambda: admin.pending_approvals(DAG_ID), 1200, procs)
        assert pending[0]["task_instance"]["dag_run_id"] == run_id
        approver = AirflowApi(http, "berlin_ops", embedded.password("berlin_ops"))
        approver.answer(DAG_ID, run_id, "Approve", "stack test approved")

        def finished() -> str | None:
            state = admin.dag_run(DAG_ID, run_id)["state"]
            return state if state in ("success", "failed") else None

        assert _wait("the run to finish", finished, 300, procs) == "success"

        # ----- where the tasks ran: the Celery worker -----
        tis = http.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", headers=headers).json()
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        assert all(states[t] == "success" for t in TASKS), states
        for ti in tis["task_instances"]:
            assert ti["queue"] == "default" and ti["hostname"], ti
        worker_log = procs.log("celery-worker")
        ran_on_worker = [t for t in TASKS if t != "approve" and f"task_id='{t}'" in worker_log]
        # approve defers to the triggerer and resumes on the worker; every task went through Celery
        assert set(ran_on_worker) == set(TASKS) - {"approve"}, worker_log[-4000:]
        assert "task_id='approve'" in worker_log
        assert "LocalExecutor" not in procs.log("scheduler")

        # ----- MLflow: champion is the version of this run, registered by the airflow user -----
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth.client import AuthServiceClient

        from airflow_ml_provider.core import registry

        client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        _mlflow_as(MLFLOW_AIRFLOW, monkeypatch)
        champion = client.get_model_version_by_alias(f"eta_{CITY}", registry.CHAMPION)
        assert champion.version == "1"
        assert champion.tags[registry.DECISION_TAG] == "approved"
        assert champion.tags[registry.DECIDED_BY_TAG] == "berlin_ops"
        assert run_id in champion.tags.values()
        assert champion.user_id in (None, "", MLFLOW_AIRFLOW[0])

        # ----- a logged-in user who may only read (default_permission READ) cannot move the champion -----
        _mlflow_as(MLFLOW_ADMIN, monkeypatch)
        AuthServiceClient(mlflow_url).create_user("viewer", "stack-test-viewer-password")
        _mlflow_as(("viewer", "stack-test-viewer-password"), monkeypatch)
        assert client.get_model_version_by_alias(f"eta_{CITY}", registry.CHAMPION).version == "1"
        with pytest.raises(MlflowException, match=r"403|Permission denied"):
            client.set_registered_model_alias(f"eta_{CITY}", registry.CHAMPION, "1")

        # ----- S3: the run's snapshot and model, and MLflow's model artifacts -----
        def keys(bucket: str, prefix: str = "") -> set[str]:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

        run_prefix = run_uri(f"s3://{DATA_BUCKET}/runs", CITY, run_id, "")[len(f"s3://{DATA_BUCKET}/") :]
        run_keys = keys(DATA_BUCKET, run_prefix)
        # Named by their sha256: snapshots/<sha256>.parquet and models/<sha256>.pkl
        assert any(k.startswith(run_prefix + "snapshots/") and k.endswith(".parquet") for k in run_keys), run_keys
        assert any(k.startswith(run_prefix + "models/") and k.endswith(".pkl") for k in run_keys), run_keys
        mlflow_keys = keys(MLFLOW_BUCKET)
        assert any(k.endswith("/MLmodel") for k in mlflow_keys), sorted(mlflow_keys)[:50]
        assert any(k.endswith("model.pkl") or k.endswith(".pkl") for k in mlflow_keys), sorted(mlflow_keys)[:50]
    except BaseException:
        for name in ("scheduler", "celery-worker", "triggerer", "dag-processor", "mlflow"):
            if (logs / f"{name}.log").exists():
                print(f"----- last lines of {name}.log -----\n{procs.log(name)[-3000:]}")
        raise
    finally:
        procs.stop()
        moto.stop()
        print(f"stack test wall time: {time.monotonic() - started:.1f} s (logs were in {logs})")
