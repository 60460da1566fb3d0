"""``airflow-ml standalone``: Airflow standalone and the MLflow UI on the embedded default, for the interactive path."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from airflow_ml_provider.config import CityConfig, load_all
from airflow_ml_provider.tools import embedded

STOP_GRACE_SECONDS = 30.0  # the scheduler finishes its loop and the API server its requests before SIGKILL


def run_standalone(
    project_root: Path, api_port: int = embedded.API_PORT, mlflow_port: int = embedded.MLFLOW_PORT
) -> int:
    configs, problems = load_all(project_root / "dags" / "configs")
    users = embedded.demo_users(configs.values())
    env = embedded.apply(project_root / ".airflow-ml", project_root / "dags", users, api_port=api_port)
    for problem in problems:  # Airflow shows these as import errors of the city's file; say it here too
        print(f"config problem: {problem}")
    embedded.migrate_databases()
    embedded.create_pools({c.resources.pool for c in configs.values() if c.resources.pool})
    for city, path in write_missing_demo_data(configs.values()):
        print(f"{city}: no data at {path}; wrote demo rides there so its runs have something to read")
    bin_dir = Path(sys.executable).parent
    # `airflow standalone` starts its components as `airflow ...` from PATH, which `make` does not point at .venv/bin.
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["AIRFLOW__API__HOST"] = "127.0.0.1"  # demo users and passwords: loopback only, like the MLflow UI
    print(
        f"Airflow UI: http://localhost:{api_port}  (users: "
        + ", ".join(f"{user}/{embedded.password(user)}" for user in users)
        + f")\nMLflow UI:  http://localhost:{mlflow_port}\nStop with Ctrl-C.",
        flush=True,
    )
    mlflow_ui = [
        str(bin_dir / "mlflow"), "ui", "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
        "--host", "127.0.0.1", "--port", str(mlflow_port),
    ]  # fmt: skip
    # Each server in a session of its own: `airflow standalone` leaves its scheduler, API server and triggerer
    # running when it gets SIGTERM, and Airflow puts each task in a process group of its own; stopping a session
    # reaches them all.
    servers = [
        subprocess.Popen(command, start_new_session=True)
        for command in (mlflow_ui, [str(bin_dir / "airflow"), "standalone"])
    ]
    airflow = servers[-1]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_stop)
    try:
        return airflow.wait()
    except StopRequested as stop:
        return stop.exit_code
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not leave the servers half stopped
            signal.signal(signum, signal.SIG_IGN)
        stop_sessions([server.pid for server in servers])


class StopRequested(Exception):
    """SIGTERM or SIGINT arrived: stop the servers. Ctrl-C is the documented way out, so it exits 0."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 0 if signum == signal.SIGINT else 128 + signum


def _raise_stop(signum: int, _frame: object) -> None:
    raise StopRequested(signum)


def stop_sessions(session_ids: list[int], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process of the sessions, then SIGKILL whatever is still there after ``grace`` seconds."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for sid in session_ids:
            _signal_session(sid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for sid in session_ids:  # reap our own children (the session leaders) so they do not linger as zombies
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(sid, os.WNOHANG)
            if not any(session_members(sid) for sid in session_ids):
                return
            time.sleep(0.2)


def session_members(sid: int) -> list[int]:
    """The live processes of a session, from Linux's /proc (elsewhere: empty; see ``_signal_session``)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                members.append(int(stat.parent.name))
    return members


def _signal_session(sid: int, signum: int) -> None:
    """Every process of the session where /proc lists them; else the session leader's process group."""
    targets = [(os.kill, pid) for pid in session_members(sid)] or [(os.killpg, sid)]
    for send, target in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(target, signum)


def write_missing_demo_data(configs: Iterable[CityConfig]) -> list[tuple[str, Path]]:
    """Demo rides for cities whose data is a local file that does not exist yet (a fresh clone), ending today."""
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    written = []
    for config in configs:
        uri = config.data_uri
        if uri.startswith("s3://") or "{{" in uri or Path(uri).exists():
            continue
        write_city_data(make_city_data(config.city, end=datetime.now(timezone.utc).date()), uri)
        written.append((config.city, Path(uri)))
    return written
