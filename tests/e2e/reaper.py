"""Stops the end-to-end servers when the test process goes away, however it goes.

pytest-timeout's thread method ends a hung test with ``os._exit``: no fixture teardown runs, and servers started in
sessions of their own would outlive it. So the fixture starts this watchdog first and writes the session id of every
process it starts to the watchdog's stdin. When stdin closes (normal teardown, or the test process died), the
watchdog sends SIGTERM to every process of those sessions, SIGKILL after a grace period, keeps the logs under
``artifacts`` and deletes ``root``.

Usage: python reaper.py ROOT ARTIFACTS  (session ids on stdin, one a line)
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from airflow_ml_provider.tools.standalone import stop_sessions

GRACE_SECONDS = 15.0


def keep_logs(root: Path, artifacts: Path) -> None:
    """Server logs and Airflow's task logs, for a failed CI run."""
    target = artifacts / "logs"
    shutil.rmtree(target, ignore_errors=True)
    airflow_homes = (root / "airflow" / "logs", root / ".airflow-ml" / "airflow" / "logs")  # servers, `make airflow`
    for source, name in ((root / "logs", "servers"), *((home, "airflow") for home in airflow_homes)):
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops pytest; this process cleans up after it
    root, artifacts = Path(sys.argv[1]), Path(sys.argv[2])
    sids: set[int] = set()
    for line in sys.stdin:  # until the test process closes the pipe or dies
        if line.strip().isdigit():
            sids.add(int(line))
    stop_sessions(sorted(sids), grace=GRACE_SECONDS)  # what `airflow-ml standalone` does on Ctrl-C
    keep_logs(root, artifacts)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
