"""Which code trained a model: the DAG bundle's version, or the commit of the git checkout holding the DAG file."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_commit(bundle_version: str | None, dag_file: str) -> str | None:
    """The DAG bundle's version (the git commit, with Airflow's GitDagBundle), else ``git rev-parse HEAD`` in the
    folder of the DAG file; None when neither is known."""
    if bundle_version:
        return str(bundle_version)
    try:
        found = subprocess.run(
            ["git", "-C", str(Path(dag_file).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git on the worker
        return None
    return found.stdout.strip() if found.returncode == 0 else None
