"""Lineage: which code trained a model version (the DAG bundle's version, else the git checkout's commit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from airflow_ml_provider.hooks.git import code_commit


def test_code_commit_is_the_dag_bundle_version_when_airflow_knows_it(tmp_path: Path) -> None:
    assert code_commit("4f1c2d9", str(tmp_path / "berlin.py")) == "4f1c2d9"


def test_code_commit_is_the_commit_of_the_git_checkout_holding_the_dag_file(tmp_path: Path) -> None:
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "berlin.py").write_text("# loader\n")
    subprocess.run([*git, "add", "berlin.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "berlin"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert code_commit(None, str(tmp_path / "berlin.py")) == head


def test_code_commit_is_unknown_outside_a_checkout(tmp_path: Path) -> None:
    assert code_commit(None, str(tmp_path / "berlin.py")) is None
