"""docker-compose.yaml: valid for Compose, shaped the way docs/deployment.md says, and refusing to start insecure.

Needs no Docker engine: `docker-compose config` (Debian: `apt-get install -y docker-compose`) or `docker compose
config` parses, interpolates and validates the file offline. The structural checks read Compose's resolved output
for a .env made by deploy/new_env.py, so anchors, merges and `${VAR:-default}` are checked as Compose applies them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))
from new_env import new_env  # noqa: E402 - deploy/ is not a package

COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

ONE_SHOT = {"airflow-init", "minio-init", "mlflow-init"}
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


def env_settings(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def env_names() -> list[str]:
    return list(env_settings(ENV_EXAMPLE.read_text()))


# The secrets: left empty in .env.example, no default in docker-compose.yaml.
SECRETS = sorted(name for name, value in env_settings(ENV_EXAMPLE.read_text()).items() if not value)


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
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `python3 deploy/new_env.py > .env` writes."""
    path = tmp_path_factory.mktemp("compose") / "generated.env"
    path.write_text(new_env(ENV_EXAMPLE.read_text()))
    return path


@pytest.fixture(scope="module")
def settings(generated_env: Path) -> dict[str, str]:
    return env_settings(generated_env.read_text())


@pytest.fixture(scope="module")
def resolved(generated_env: Path) -> dict[str, Any]:
    result = run_config(generated_env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


# ----- Compose itself ----------------------------------------------------------------------------------------------


@requires_compose
def test_config_is_valid_with_a_generated_env(generated_env: Path) -> None:
    result = run_config(generated_env, "-q")
    assert result.returncode == 0, result.stderr
    # Compose warns "The X variable is not set" for a ${X} without a default: every other variable has one.
    assert "is not set" not in result.stderr, result.stderr


@requires_compose
@pytest.mark.parametrize("env_file", ["empty", "example"])
def test_refuses_to_start_without_secrets(tmp_path: Path, env_file: str) -> None:
    """No .env, or .env.example copied as is: Compose stops and says which secret to set."""
    path = ENV_EXAMPLE if env_file == "example" else tmp_path / "empty.env"
    if env_file == "empty":
        path.write_text("")
    result = run_config(path, "-q")
    assert result.returncode != 0
    assert any(f"set {name} in .env" in result.stderr for name in SECRETS), result.stderr


@requires_compose
@pytest.mark.parametrize("secret", SECRETS)
def test_each_secret_is_required(tmp_path: Path, settings: dict[str, str], secret: str) -> None:
    missing = tmp_path / "missing.env"
    missing.write_text("".join(f"{k}={'' if k == secret else v}\n" for k, v in settings.items()))
    result = run_config(missing, "-q")
    assert result.returncode != 0, f"{secret} is empty and Compose still starts"
    assert f"set {secret} in .env" in result.stderr, result.stderr


def test_no_secret_has_a_default_and_the_example_holds_none() -> None:
    text = COMPOSE_FILE.read_text()
    assert len(SECRETS) >= 12, SECRETS
    for name in SECRETS:
        uses = re.findall(r"(?<!\$)\$\{" + name + r"(:?[-?=+]?)", text)  # $${X} is the shell's, not Compose's
        assert uses and set(uses) == {":?"}, f"{name} must be written ${{{name}:?message}} everywhere: {uses}"
    old_defaults = ("airflow-local", "minioadmin-local", "change-me", "admin:admin,ops_lead:ops_lead", "S3oo4Jl99a")
    for public in old_defaults:
        assert public not in text and public not in ENV_EXAMPLE.read_text(), public


def test_generated_env_fills_every_secret_with_a_fresh_value(settings: dict[str, str]) -> None:
    again = env_settings(new_env(ENV_EXAMPLE.read_text()))
    for name in SECRETS:
        assert len(settings[name]) >= 24 and settings[name] != again[name], name
        assert re.fullmatch(r"[A-Za-z0-9_\-=:,]+", settings[name]), name  # safe inside URLs and JSON
    from cryptography.fernet import Fernet

    Fernet(settings["AIRFLOW_FERNET_KEY"].encode())  # a valid key
    users = [pair.split(":")[0] for pair in settings["AIRFLOW_USERS"].split(",")]
    assert [pair.split(":")[0] for pair in settings["AIRFLOW_USER_PASSWORDS"].split(",")] == users


@requires_compose
def test_config_uses_the_env_values(tmp_path: Path, generated_env: Path) -> None:
    changed = tmp_path / "changed.env"
    changed.write_text(
        re.sub(r"(?m)^REDIS_PASSWORD=.*$", "REDIS_PASSWORD=other-secret", generated_env.read_text()).replace(
            "AIRFLOW_PORT=8080", "AIRFLOW_PORT=18080"
        )
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
    assert {"mlflow-init", "minio-init", "airflow-api-server"} <= set(services["airflow-worker"]["depends_on"])
    assert {"postgres", "minio-init"} <= set(services["mlflow"]["depends_on"])
    assert set(services["minio-init"]["depends_on"]) == {"minio"}
    assert set(services["mlflow-init"]["depends_on"]) == {"mlflow"}


@requires_compose
def test_airflow_services_share_one_image_executor_connections_and_dags(
    resolved: dict[str, Any], settings: dict[str, str]
) -> None:
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
        # the workers' preload (docs/scaling.md); every component reads the same Celery configuration
        assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "airflow_ml_provider.celery_config.CELERY_CONFIG", name
        assert env["AIRFLOW_ML_CONFIG_DIR"] == "/opt/airflow/dags/configs", name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], f"{name}: components must share one JWT secret"

        aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws["conn_type"] == "aws"
        assert aws["extra"]["endpoint_url"] == "http://minio:9000"
        # Airflow's own S3 key, not MLflow's
        assert (aws["login"], aws["password"]) == (
            settings["AIRFLOW_S3_ACCESS_KEY_ID"],
            settings["AIRFLOW_S3_SECRET_ACCESS_KEY"],
        )
        mlflow = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert mlflow == {
            "conn_type": "mlflow",
            "host": "http://mlflow:5000",
            "login": settings["MLFLOW_AIRFLOW_USER"],
            "password": settings["MLFLOW_AIRFLOW_PASSWORD"],
        }
        assert not any(k.startswith(("AWS_", "MLFLOW_S3")) for k in env), f"{name}: S3 keys only via aws_default"

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
    buckets = _text(services["minio-init"]["command"]).replace("$$", "$")  # Compose v1 keeps the escapes
    # one key per service, read-write on its own bucket only
    assert 'grant "${AIRFLOW_S3_ACCESS_KEY_ID}" "${AIRFLOW_S3_SECRET_ACCESS_KEY}" airflow-ml' in buckets
    assert 'grant "${MLFLOW_S3_ACCESS_KEY_ID}" "${MLFLOW_S3_SECRET_ACCESS_KEY}" mlflow' in buckets
    assert "arn:aws:s3:::%s/*" in buckets and "readwrite --user" not in buckets
    assert services["minio-init"]["image"].startswith("minio/mc:")
    users = services["mlflow-init"]
    assert users["command"] == ["python", "/home/mlflow/mlflow_users.py", "http://mlflow:5000"]
    assert users["image"] == services["mlflow"]["image"]
    assert {"MLFLOW_ADMIN_PASSWORD", "MLFLOW_AIRFLOW_USER", "MLFLOW_AIRFLOW_PASSWORD"} <= set(users["environment"])


@requires_compose
def test_backing_services(resolved: dict[str, Any], settings: dict[str, str]) -> None:
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
    assert command[command.index("--app-name") + 1] == "basic-auth"  # every request needs a user
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == settings["MLFLOW_ADMIN_PASSWORD"]
    assert mlflow["environment"]["MLFLOW_FLASK_SERVER_SECRET_KEY"] == settings["MLFLOW_FLASK_SECRET_KEY"]
    assert mlflow["environment"]["AWS_ACCESS_KEY_ID"] == settings["MLFLOW_S3_ACCESS_KEY_ID"]
    assert settings["MLFLOW_S3_ACCESS_KEY_ID"] != settings["AIRFLOW_S3_ACCESS_KEY_ID"]
    assert [_mount(v)[1] for v in mlflow["volumes"]] == ["/home/mlflow/auth"]
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
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in mlflow  # Flask-WTF, for --app-name basic-auth
    assert "psycopg2-binary" in mlflow and "boto3" in mlflow
    assert "mlflow-basic-auth.ini mlflow_users.py" in mlflow and "MLFLOW_AUTH_CONFIG_PATH" in mlflow
    auth = (ROOT / "deploy" / "mlflow-basic-auth.ini").read_text()
    assert "default_permission = READ" in auth and "sqlite:////home/mlflow/auth/" in auth


def _mount(volume: Any) -> tuple[str, str]:
    """(source, target) of a volume in short (`src:dst[:mode]`) or long syntax."""
    if isinstance(volume, dict):
        return str(volume.get("source")), str(volume.get("target"))
    source, target = volume.split(":")[:2]
    return source, target


def _text(command: Any) -> str:
    return " ".join(command) if isinstance(command, list) else str(command)
