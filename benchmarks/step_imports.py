"""What each step imports when it runs, and what that costs: seconds of imports inside each step's ``execute``.

Run with ``.venv/bin/python benchmarks/step_imports.py`` (one city of demo rides, ~80k rows; ``--days`` for more or
fewer). Each step (validate_data, train, evaluate, register) runs in its own fresh process under
``python -X importtime``, after that process has imported ``airflow.sdk`` and the task runner and parsed the city's
DAG file: what a task process forked by an Airflow worker has before ``execute``. The previous steps' results come
from the earlier processes (same DAG run, same MLflow store and snapshot). For each step it prints the time of
``execute``, the part of it spent importing (the roots of the importtime tree between two markers; importtime's own
bookkeeping inflates both a little) and the heaviest packages imported.

Everything lives in a fresh folder (``--root``, default a temporary one): the city copied from berlin, its demo
rides, MLflow on SQLite (the embedded default's layout, ``airflow_ml_provider/tools/embedded.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # orchestration.py, this checkout's package

from orchestration import ROOT, STEPS, StepRunner, write_cities, write_data

from airflow_ml_provider.tools import embedded  # stdlib only; sets no Airflow state

CITY = "bench"
START, END = "@@ execute starts", "@@ execute ends"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def child(step: str, state_path: Path, preloaded: bool) -> None:
    """One step in this fresh process, as a task process runs it; appends its result to the state file."""
    # What the worker's task process has imported before execute.
    import airflow.sdk
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    if preloaded:  # what PreloadingLocalExecutor (or the Celery preload) imported before forking
        from airflow_ml_provider.executors import preload

        preload()

    state = json.loads(state_path.read_text())
    runner = StepRunner(CITY, run_id=state["run_id"], results=state["results"])  # parses the city's DAG file
    print(START, file=sys.stderr, flush=True)
    seconds = runner.run(step)
    print(END, file=sys.stderr, flush=True)
    state["results"][step] = runner.results[step]
    state_path.write_text(json.dumps(state))
    print(json.dumps({"seconds": seconds}))


def imports_during_execute(stderr: str) -> tuple[float, dict[str, float], dict[str, float]]:
    """Between the markers: seconds of imports (the roots of the importtime tree), the roots' seconds by top-level
    package (who triggered the imports) and every module's own seconds by top-level package (what was imported)."""
    lines = stderr.split(START, 1)[1].split(END, 1)[0].splitlines()
    entries = [(int(m[1]), int(m[2]), len(m[3]), m[4]) for m in map(IMPORT_LINE.match, lines) if m]
    if not entries:
        return 0.0, {}, {}
    root_depth = min(depth for _, _, depth, _ in entries)
    roots: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)
    for self_us, cumulative_us, depth, name in entries:
        package = name.split(".")[0]
        own[package] += self_us / 1e6
        if depth == root_depth:
            roots[package] += cumulative_us / 1e6
    return sum(roots.values()), dict(roots), dict(own)


def heaviest(seconds: dict[str, float], top: int) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in sorted(seconds.items(), key=lambda item: -item[1])[:top])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=180, help="days of demo rides (180: ~80k rows)")
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--top", type=int, default=6, help="heaviest packages to list per step")
    parser.add_argument(
        "--preload", action="store_true", help="as under the preloading executor: executors.step_modules() imported"
    )
    parser.add_argument("--keep", type=Path, help="folder to keep each step's importtime output in")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.preload)
        return

    with tempfile.TemporaryDirectory(prefix="step-imports-") as tmp:
        root = (args.root or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        write_cities(root, [CITY])
        embedded.apply(root / ".airflow-ml", root / "dags")
        os.environ["PYTHONPATH"] = str(ROOT)
        os.chdir(root)  # the config's relative data and storage paths resolve here
        rows = write_data(root, [CITY], args.days)
        subprocess.run(
            [sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # MLflow's first use runs its migrations: not part of any step
        state_path = root / "state.json"
        state_path.write_text(json.dumps({"run_id": f"step_imports__{time.strftime('%Y%m%dT%H%M%S')}", "results": {}}))
        preloaded = " (executors.step_modules() preloaded)" if args.preload else ""
        print(f"one city, {rows} rows{preloaded}; load average {load_average()}", flush=True)
        print(f"{'step':<14} {'execute s':>10} {'imports s':>10}  imported (own seconds by package) / triggered by")
        for step in STEPS:
            done = subprocess.run(
                [sys.executable, "-X", "importtime", __file__, "--child", step, str(state_path)]
                + (["--preload"] if args.preload else []),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{step} failed:\n{done.stderr[-4000:]}")
            if args.keep:
                (args.keep / f"{step}.importtime").write_text(done.stderr)
            seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            total, roots, own = imports_during_execute(done.stderr)
            print(f"{step:<14} {seconds:>10.2f} {total:>10.2f}  {heaviest(own, args.top)}", flush=True)
            print(f"{'':<37}/ {heaviest(roots, args.top)}", flush=True)
        print(f"load average after: {load_average()}")
        os.chdir(ROOT)


if __name__ == "__main__":
    main()
