"""`airflow-ml standalone` stops everything it started: SIGTERM (`kill`) or SIGINT (Ctrl-C) to it leaves no Airflow
component, MLflow UI or task process behind and frees its ports, so the next `make airflow` starts.

`airflow standalone` alone leaves its scheduler, API server and triggerer running on SIGTERM (docs/runbooks.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import BIN, STARTUP_TIMEOUT, Stack, free_port, project_copy

pytestmark = pytest.mark.e2e

COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] not in ("Z", "X"):
                tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def project() -> Iterator[Stack]:
    """A folder holding this project's dags/, and a watchdog that stops whatever a failing test leaves behind."""

    def environment(root: Path) -> dict[str, str]:
        return {
            # Both tests use the same ports: the second start also shows the first stop freed them.
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{free_port()}",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_HOME": str(root / ".airflow-ml" / "airflow"),  # for the watchdog's copy of the logs
        }

    with project_copy("standalone-stop", environment) as stack:
        yield stack


@pytest.mark.timeout(1200, method="thread")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_standalone_started(project: Stack, signum: int) -> None:
    stack = project
    api_port, mlflow_port = (int(url.rsplit(":", 1)[1]) for url in (stack.api_url, stack.mlflow_url))
    standalone = stack.start(
        f"standalone-{signal.Signals(signum).name}",
        [str(BIN / "airflow-ml"), "standalone", "--port", str(api_port), "--mlflow-port", str(mlflow_port)],
    )

    def healthy() -> bool:
        health = stack.http.get("/api/v2/monitor/health").json()
        return all((health.get(c) or {}).get("status") == "healthy" for c in COMPONENTS)

    # Twice the servers' start-up allowance: standalone migrates, then starts four components at once.
    stack.wait_until(healthy, 2 * STARTUP_TIMEOUT, "Airflow standalone's scheduler, dag-processor and triggerer")
    stack.wait_until(lambda: httpx.get(f"{stack.mlflow_url}/health").status_code == 200, 120, "the MLflow UI")
    started = descendants(standalone.process.pid)
    for pid in started:  # the servers run in sessions of their own: have the watchdog stop them if this test fails
        with contextlib.suppress(ProcessLookupError):
            stack.watch(os.getsid(pid))
    assert len(started) >= 6, started  # mlflow ui, airflow standalone, api-server, scheduler, dag-processor, triggerer

    standalone.process.send_signal(signum)
    code = standalone.process.wait(timeout=120)

    assert code == (0 if signum == signal.SIGINT else 128 + signum), standalone.tail()
    left = sorted(pid for pid in started if alive(pid))
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in left]
    assert not listening(api_port) and not listening(mlflow_port)
    stack.servers.remove(standalone)  # it exited on purpose: the next test's waits must not take it for a crash
