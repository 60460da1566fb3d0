"""DAG parsing at fleet scale: our YAML -> DAG factory against dag-factory 1.1.0 building equivalent DAGs.

Run with ``.venv/bin/python benchmarks/parse.py`` (``--cities 100 300 1000``, ``--repeat 3``). For each size it
generates N cities: ours as ``dags/<city>.py`` + ``configs/<city>.yaml`` copied from berlin (two DAGs per city,
retrain and rollback); dag-factory's as one loader ``dags/<city>.py`` + ``configs/<city>.yml`` per city with a shared
``configs/defaults.yml``, each a six-task DAG with the same schedule, default_args, tags and typed trigger-form Params.

Every measurement runs in a fresh subprocess that has imported Airflow before the clock starts, alternating ours and
dag-factory's so both see the same machine load; the medians and the ratio (ours / dag-factory) are printed.

- **fill**: ``DagBag(folder)`` over all N files in one process (what ``airflow dags list`` or a test does).
- **single file**: ``DagBag(one file)`` in a fresh process, the first file of its kind. The DAG processor parses
  every file in its own forked process, so this (importing our package included) is what each file costs it.

dag-factory is never a dependency of ours: it is installed on first use into a throwaway virtualenv,
``.airflow-ml/bench-venv`` (``uv venv`` + ``uv pip install dag-factory==1.1.0`` constrained by requirements.lock, so the
same Airflow), and only ever runs there. Goals (issue 14): ratio <= 0.5 at 300 cities, 1,000 cities under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".airflow-ml" / "bench-venv"
DAG_FACTORY = "dag-factory==1.1.0"

# Runs in the measured subprocess: Airflow imported first (the DAG processor's parent has it), then the clock.
FILL = """
import json, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(sys.argv[1])
seconds = time.perf_counter() - started
errors = {k: v[-600:] for k, v in bag.import_errors.items()}
print(json.dumps({"seconds": seconds, "dags": len(bag.dags), "errors": errors}))
"""

DAG_FACTORY_DEFAULTS = """\
default_args:
  owner: marketplace-ml
  retries: 2
  retry_delay: {__type__: datetime.timedelta, minutes: 1}
  retry_exponential_backoff: true
  max_retry_delay: {__type__: datetime.timedelta, minutes: 30}
  start_date: 2024-01-01
catchup: false
max_active_runs: 1
"""

DAG_FACTORY_LOADER = '''\
"""Airflow DAG retrain_{city} built by dag-factory from configs/{city}.yml."""

from pathlib import Path

from dagfactory import load_yaml_dags

configs = Path(__file__).parent / "configs"
load_yaml_dags(globals_dict=globals(), config_filepath=str(configs / "{city}.yml"), defaults_config_path=str(configs))
'''

# The same six steps, schedule, tags, doc and typed trigger form as our retrain DAG; BashOperator stands in for ours.
DAG_FACTORY_CITY = """\
retrain_{city}:
  schedule: "0 2 * * 1"
  tags: [retraining, {city}, marketplace-ml]
  doc_md: "### Retrain eta_{city} for {city}, built from configs/{city}.yml"
  params:
    train_window_days:
      {{__type__: airflow.sdk.Param, __args__: [90], type: integer, minimum: 1, maximum: 3650,
        title: Training window (days), section: Data}}
    eval_window_days:
      {{__type__: airflow.sdk.Param, __args__: [14], type: integer, minimum: 1, maximum: 365,
        title: Evaluation window (days), section: Data}}
    estimator_params:
      {{__type__: airflow.sdk.Param, __args__: [{{}}], type: object, title: Estimator parameter overrides,
        section: Model}}
    guardrail_tolerance:
      {{__type__: airflow.sdk.Param, __args__: [null], type: ["null", number], minimum: 0, maximum: 1,
        title: Guardrail tolerance override, section: Guardrails}}
    dry_run: {{__type__: airflow.sdk.Param, __args__: [false], type: boolean, title: Dry run}}
    reason: {{__type__: airflow.sdk.Param, __args__: [null], type: ["null", string], title: Reason for this run}}
  tasks:
    validate_data:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo validate {city} data/{city}/rides.parquet"
    train:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo train {city}"
      pool: ml_training
      dependencies: [validate_data]
    evaluate:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo evaluate {city}"
      pool: ml_training
      dependencies: [train]
    register:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo register {city}"
      dependencies: [evaluate]
    approve:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo approve {city}"
      dependencies: [register]
    promote:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo promote {city}"
      dependencies: [approve]
"""


def city_names(n: int) -> list[str]:
    return [f"city{i:04d}" for i in range(n)]


def make_ours(folder: Path, n: int) -> Path:
    """``n`` copies of berlin: its loader file and YAML with the city renamed, and the shipped ``_defaults.yaml``."""
    dags = folder / "ours"
    configs = dags / "configs"
    configs.mkdir(parents=True)
    loader = (ROOT / "dags" / "berlin.py").read_text()
    city_yaml = (ROOT / "dags" / "configs" / "berlin.yaml").read_text()
    shutil.copy(ROOT / "dags" / "configs" / "_defaults.yaml", configs / "_defaults.yaml")
    for city in city_names(n):
        (dags / f"{city}.py").write_text(loader.replace("berlin", city))
        (configs / f"{city}.yaml").write_text(city_yaml.replace("berlin", city))
    return dags


def make_dag_factory(folder: Path, n: int) -> Path:
    dags = folder / "dag_factory"
    configs = dags / "configs"
    configs.mkdir(parents=True)
    (configs / "defaults.yml").write_text(DAG_FACTORY_DEFAULTS)
    for city in city_names(n):
        (dags / f"{city}.py").write_text(DAG_FACTORY_LOADER.format(city=city))
        (configs / f"{city}.yml").write_text(DAG_FACTORY_CITY.format(city=city))
    return dags


def dag_factory_python() -> Path:
    """The throwaway virtualenv's interpreter, with dag-factory and the same Airflow pins as ours."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        uv = [sys.executable, "-m", "uv"]
        if subprocess.run([*uv, "--version"], capture_output=True).returncode != 0:
            uv = ["python3", "-m", "uv"]
        print(f"Installing {DAG_FACTORY} into {BENCH_VENV} (once) ...", flush=True)
        subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(BENCH_VENV)], check=True)
        constraints = ["-c", str(ROOT / "requirements.lock")] if (ROOT / "requirements.lock").exists() else []
        subprocess.run([*uv, "pip", "install", "-q", "-p", str(python), DAG_FACTORY, *constraints], check=True)
    return python


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        # dag-factory reports usage to a telemetry endpoint unless told not to
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="1",
    )
    return env


def fill(python: Path, path: Path, env: dict[str, str], expected_dags: int, *, code: Path | None = None) -> float:
    """Seconds to fill a DagBag from ``path`` in a fresh process (Airflow already imported).

    ``code``: the checkout whose airflow_ml_provider is imported (not the virtualenv's editable install).
    """
    if code:
        env = {**env, "PYTHONPATH": str(code)}
    # cwd: `python -c` puts it first on sys.path, where a checkout would shadow PYTHONPATH
    command = [str(python), "-c", FILL, str(path)]
    done = subprocess.run(command, env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{python} failed on {path}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"] or result["dags"] != expected_dags:
        first = next(iter(result["errors"].items()), None)
        raise SystemExit(f"{path}: {result['dags']} DAGs (expected {expected_dags}); first import error: {first}")
    return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size and tool (medians are printed)")
    parser.add_argument("--single-repeat", type=int, default=5, help="fresh processes for the single-file cost")
    parser.add_argument("--no-dag-factory", action="store_true", help="only ours (no throwaway virtualenv)")
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="another checkout of this project (e.g. `git worktree add /tmp/before <commit>`), measured interleaved "
        "with this one on the same files: before/after numbers from one run (repeatable)",
    )
    args = parser.parse_args()

    ours_python = Path(sys.executable)
    contenders: list[Contender] = [("ours", ours_python, ROOT, 2)]
    contenders += [(f"baseline {path.name}", ours_python, path.resolve(), 2) for path in args.baseline]
    if not args.no_dag_factory:
        contenders.append(("dag-factory", dag_factory_python(), None, 1))
    with tempfile.TemporaryDirectory(prefix="parse-bench-") as tmp:
        work = Path(tmp)
        env = environment(work / "airflow")
        (work / "airflow").mkdir()
        print("seconds to fill a DagBag (median), ms per city; ratio = ours / other")
        for n in args.cities:
            folder = work / f"n{n}"
            ours, theirs = make_ours(folder, n), make_dag_factory(folder, n)
            paths = {name: theirs if name == "dag-factory" else ours for name, *_ in contenders}
            _report(f"{n} cities", _interleaved(contenders, paths, n, env, args.repeat), per=n)

        one = work / "one"
        ours, theirs = make_ours(one, 1) / "city0000.py", make_dag_factory(one, 1) / "city0000.py"
        paths = {name: theirs if name == "dag-factory" else ours for name, *_ in contenders}
        times = _interleaved(contenders, paths, 1, env, args.single_repeat)
        _report("single file (fresh process, Airflow imported)", times, per=1)
    print("ours and baseline build two DAGs per city (retrain, rollback); dag-factory one")


Contender = tuple[str, Path, Path | None, int]  # name, interpreter, checkout to import, DAGs per city


def _interleaved(
    contenders: list[Contender], paths: dict[str, Path], n: int, env: dict[str, str], repeat: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, *_ in contenders}
    for _ in range(repeat):  # interleaved, so all see the same machine load
        for name, python, code, dags_per_city in contenders:
            times[name].append(fill(python, paths[name], env, dags_per_city * n, code=code))
    return times


def _report(title: str, times: dict[str, list[float]], per: int) -> None:
    ours = statistics.median(times["ours"])
    parts = [f"ours {ours:.2f} s ({1000 * ours / per:.1f} ms/city)"]
    for name, values in times.items():
        if name != "ours":
            other = statistics.median(values)
            parts.append(f"{name} {other:.2f} s ({1000 * other / per:.1f} ms/city, ratio {ours / other:.2f})")
    print(f"{title}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
