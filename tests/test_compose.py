"""docker-compose.yaml: valid for Compose, and shaped the way docs/deployment.md says.

Needs no Docker engine: `docker-compose config` (Debian: `apt-get install -y docker-compose`) or `docker compose
config` parses, interpolates and validates the file offline. The structural checks read Compose's resolved output,
so anchors, merges and `${VAR:-default}` are checked as Compose applies them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

ONE_SHOT = {"airflow-init", "minio-init"}
AIRFLOW_COMMANDS = {
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
LONG_RUNNING = {"postgres", "redis", "minio", "mlflow", *AIRFLOW_COMMANDS}


@cache
def compose_command() -> tuple[str, ...] | None:
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return ("docker", "compose")
    return None


requires_compose = pytest.mark.skipif(
    compose_command() is None,
    reason="no docker-compose binary (Debian/Ubuntu: apt-get update && apt-get install -y docker-compose)",
)


def env_names() -> list[str]:
    names = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.append(line.split("=", 1)[0].strip())
    return names


def run_config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`config` with only `env_file` as the source of variables (no developer .env, no stray shell variables)."""
    command = compose_command()
    assert command is not None
    names = set(env_names())
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.pop("COMPOSE_FILE", None)
    env.pop("COMPOSE_PROJECT_NAME", None)
    return subprocess.run(
        [
            *command,
            "--env-file",
            str(env_file),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def empty_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def resolved(empty_env: Path) -> dict[str, Any]:
    result = run_config(empty_env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


# ----- Compose itself ----------------------------------------------------------------------------------------------


@requires_compose
def test_config_is_valid_without_an_env_file(empty_env: Path) -> None:
    result = run_config(empty_env, "-q")
    assert result.returncode == 0, result.stderr
    # Compose warns "The X variable is not set" for a ${X} without a default: every variable needs one.
    assert "is not set" not in result.stderr, result.stderr


@requires_compose
def test_config_is_valid_with_the_env_example_and_uses_its_values(tmp_path: Path) -> None:
    result = run_config(ENV_EXAMPLE, "-q")
    assert result.returncode == 0, result.stderr

    changed = tmp_path / "changed.env"
    changed.write_text(
        ENV_EXAMPLE.read_text()
        .replace("AIRFLOW_PORT=8080", "AIRFLOW_PORT=18080")
        .replace("REDIS_PASSWORD=redis-local", "REDIS_PASSWORD=other-secret")
    )
    result = run_config(changed)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    published = [str(p) for p in services["airflow-api-server"]["ports"]]
    assert any("18080" in p for p in published), published
    assert services["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == (
        "redis://:other-secret@redis:6379/0"
    )


def test_env_example_lists_every_variable_the_compose_file_uses() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    listed = set(env_names())
    assert used - listed == set(), "add these to .env.example"
    assert listed - used == set(), "these .env.example entries are not used by docker-compose.yaml"


# ----- structure ---------------------------------------------------------------------------------------------------


@requires_compose
def test_every_long_running_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert services[name].get("restart") == "always", name
    for name in ONE_SHOT:
        assert services[name].get("restart") in ("no", None), name


@requires_compose
def test_depends_on_waits_for_health_or_completion(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dependency}: {spec}"
    for name in AIRFLOW_COMMANDS:
        depends = services[name]["depends_on"]
        assert {"postgres", "redis", "airflow-init"} <= set(depends), name
    assert {"mlflow", "minio-init", "airflow-api-server"} <= set(services["airflow-worker"]["depends_on"])
    assert {"postgres", "minio-init"} <= set(services["mlflow"]["depends_on"])
    assert set(services["minio-init"]["depends_on"]) == {"minio"}


@requires_compose
def test_airflow_services_share_one_image_executor_connections_and_dags(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, command in AIRFLOW_COMMANDS.items():
        service = services[name]
        assert _text(service["command"]) == command, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager"), name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"], name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"], name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW_ML_CONFIG_DIR"] == "/opt/airflow/dags/configs", name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], f"{name}: components must share one JWT secret"

        aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws["conn_type"] == "aws"
        assert aws["extra"]["endpoint_url"] == "http://minio:9000"
        assert aws["login"] and aws["password"]
        mlflow = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert mlflow == {"conn_type": "mlflow", "host": "http://mlflow:5000"}

        mounts = [_mount(v) for v in service["volumes"]]
        assert (str(ROOT / "dags"), "/opt/airflow/dags") in mounts, f"{name}: dags folder not mounted"
        assert service["image"] == services["airflow-init"]["image"], name
        assert service["build"]["dockerfile"] == "Dockerfile"


@requires_compose
def test_one_shot_inits_migrate_create_the_pool_and_the_buckets(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    init = _text(services["airflow-init"]["command"])
    assert "airflow db migrate" in init
    assert "airflow pools set ml_training" in init
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in init
    buckets = _text(services["minio-init"]["command"])
    assert "local/mlflow" in buckets and "local/airflow-ml" in buckets
    assert services["minio-init"]["image"].startswith("minio/mc:")


@requires_compose
def test_backing_services(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    mounts = [_mount(v) for v in services["postgres"]["volumes"]]
    assert (str(ROOT / "deploy" / "postgres"), "/docker-entrypoint-initdb.d") in mounts
    sql = (ROOT / "deploy" / "postgres" / "10-mlflow.sql").read_text()
    assert "CREATE DATABASE mlflow" in sql

    mlflow = services["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://mlflow:")
    assert command[command.index("--backend-store-uri") + 1].endswith("@postgres:5432/mlflow")
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow/"
    assert "--serve-artifacts" in command
    assert "mlflow:5000" in command[command.index("--allowed-hosts") + 1].split(",")
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["build"]["dockerfile"] == "mlflow.Dockerfile"


def test_dockerfiles_pin_the_stack() -> None:
    airflow = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", airflow, re.M)
    assert "COPY" in airflow and "airflow_ml_provider/" in airflow and "pyproject.toml" in airflow
    assert re.search(r"pip install --no-cache-dir .*apache-airflow==\$\{AIRFLOW_VERSION\}", airflow)
    mlflow = (ROOT / "deploy" / "mlflow.Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", mlflow, re.M)
    assert "MLFLOW_VERSION=3.17.2" in mlflow
    assert "psycopg2-binary" in mlflow and "boto3" in mlflow


def _mount(volume: Any) -> tuple[str, str]:
    """(source, target) of a volume in short (`src:dst[:mode]`) or long syntax."""
    if isinstance(volume, dict):
        return str(volume.get("source")), str(volume.get("target"))
    source, target = volume.split(":")[:2]
    return source, target


def _text(command: Any) -> str:
    return " ".join(command) if isinstance(command, list) else str(command)
