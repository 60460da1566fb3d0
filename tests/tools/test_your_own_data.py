"""README "Your own data", followed literally: its commands, run as a new user would, on a table nothing like the demo's
(a CSV of shop orders: other column names, ISO 8601 string timestamps, a 0/1 target) end with a champion, with no
edit to the generated YAML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROJECT = Path(__file__).resolve().parents[2]
CLI = ".venv/bin/airflow-ml"


def walkthrough() -> list[str]:
    """The README section's airflow-ml commands, in order (the editor and `make airflow` are for people)."""
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README 'Your own data' has no bash block"
    commands = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [command for command in commands if command.startswith(CLI)]


def write_orders(path: Path, rows: int = 8000, days: int = 70) -> None:
    """Returned orders: more likely for big baskets, phone orders and at night."""
    rng = np.random.default_rng(7)
    placed = pd.Timestamp("2025-02-01") + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, rows)), unit="s")
    channel = rng.choice(["web", "app", "phone"], rows, p=[0.5, 0.3, 0.2])
    basket = rng.gamma(2.0, 30.0, rows)
    hour = placed.hour.to_numpy()
    logit = -2.5 + 0.03 * (basket - 60) + 1.0 * (channel == "phone") + 0.7 * (hour < 6)
    frame = pd.DataFrame(
        {
            "order_ref": [f"o-{i:06d}" for i in range(rows)],
            "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channel": channel,
            "basket_eur": basket.round(2),
            "items": rng.integers(1, 9, rows),
            "order_hour": hour,
            "returned": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def run(command: str, project: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """One README command in the project folder, in an environment without the test session's Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    argv = [str(Path(sys.executable).parent / "airflow-ml"), *command.split()[1:]]
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    with log.open("a") as out:
        out.write(f"$ {command}\n{done.stdout}{done.stderr}exit {done.returncode}\n\n")
    return done


@pytest.mark.slow
def test_readme_walkthrough_ends_with_a_champion(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    write_orders(project / "data" / "orders.csv")
    commands = walkthrough()
    assert [c.split()[1] for c in commands] == ["init", "lint", "run", "run"]
    artifacts = PROJECT / "test-artifacts" / "your-own-data"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = artifacts / "commands.log"
    log.unlink(missing_ok=True)

    try:
        follow(commands, project, log)
    finally:  # Airflow's and MLflow's logs of the runs, for a failure
        if (project / ".airflow-ml" / "run.log").exists():
            shutil.copy(project / ".airflow-ml" / "run.log", artifacts / "run.log")


def follow(commands: list[str], project: Path, log: Path) -> None:
    init, lint, stop_at_approval, approve = commands
    done = run(init, project, log)
    assert done.returncode == 0, done.stdout + done.stderr
    config = (project / "dags" / "configs" / "shop.yaml").read_text()
    assert "classification" in done.stdout and "HistGradientBoostingClassifier" in config

    done = run(lint, project, log)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shop" in done.stdout

    done = run(stop_at_approval, project, log)
    assert done.returncode == 0, f"see {log}"
    assert "PASS" in done.stdout and "waits at its approval" in done.stdout
    assert "--approve-as shop_ops" in done.stdout  # says how to answer

    done = run(approve, project, log)
    assert done.returncode == 0, f"see {log}"
    assert "answering it instead of retraining" in done.stdout
    assert re.search(r"promote\s+success\s+champion v1", done.stdout), done.stdout
    assert (project / "dags" / "configs" / "shop.yaml").read_text() == config  # no edit, not even by a tool
