"""What Airflow adds to a city's run: the steps in one process against the DAG on the embedded default's scheduler.

Run with ``.venv/bin/python benchmarks/orchestration.py`` (one city of demo rides, ~80k rows) or
``.venv/bin/python benchmarks/orchestration.py --cities 50 --days 120`` (throughput: every city triggered at once).

Everything lives in a fresh folder (``--root``, default a temporary one): a DAG folder of generated cities copied
from berlin, their demo rides, and the embedded default (Airflow on SQLite with the PreloadingLocalExecutor, MLflow on
SQLite; ``airflow_ml_provider/tools/embedded.py``), both databases migrated before any clock starts.

- **(a) one process**: a fresh Python process builds the city's DAG and calls each step's ``execute`` in order
  (validate_data, train, evaluate, register) with the previous steps' return values: the same code, data and
  config as a task, without Airflow around it. Its time includes importing pandas, scikit-learn, GE and MLflow once.
- **(b) scheduler**: ``airflow standalone`` (scheduler + its executor, API server, DAG processor, triggerer) runs
  the DAG; the run's wall time is from the run's start to the end of ``register`` (``approve`` then waits for a
  person). Per task: Airflow's duration, the same step's time in (a), and the difference, the task's fixed overhead
  (process start, imports, DAG parse, API calls); plus the scheduler's gap before each task starts.

Throughput (``--cities N``): N cities triggered at once; cities per minute to the approval, peak memory (PSS of
every process of the standalone session, so shared pages count once) and how many train/evaluate tasks ran at once
under the shipped pool (``ml_training``, ``embedded.POOL_SLOTS`` slots).

``--celery``: (b) on the production topology instead, the stack test's harness (tests/stack/celery_stack.py:
Postgres, Redis, moto S3, MLflow server, Airflow with the CeleryExecutor and one Celery worker running
``--concurrency`` tasks at once, preloading the steps' libraries unless ``--no-preload``); data and runs in S3, no (a).
Memory is the PSS of every process of the stack, and of the Celery worker (its main process, pool and task processes).

Goals (issue 14): ratio (b)/(a) <= 1.5 and fixed overhead <= 1 s per task.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's airflow_ml_provider, not the venv's editable install

from airflow_ml_provider.tools import embedded  # noqa: E402 (stdlib only; sets no Airflow state)

STEPS = ("validate_data", "train", "evaluate", "register")
POLL_SECONDS = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_cities(root: Path, cities: list[str]) -> Path:
    """A DAG folder of berlin copies; data and run storage are relative paths under ``root`` (every process's cwd)."""
    dags = root / "dags"
    configs = dags / "configs"
    configs.mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "configs" / "_defaults.yaml", configs / "_defaults.yaml")
    loader = (ROOT / "dags" / "berlin.py").read_text()
    city_yaml = (ROOT / "dags" / "configs" / "berlin.yaml").read_text()
    # Manual runs only: unpausing a scheduled DAG would start a scheduled run too, and the triggered run would wait
    # behind it (one active run per DAG) until its approval is answered.
    city_yaml = re.sub(r"^schedule:.*$", "", city_yaml, flags=re.MULTILINE) + "schedule: null\n"
    for city in cities:
        (dags / f"{city}.py").write_text(loader.replace("berlin", city))
        (configs / f"{city}.yaml").write_text(city_yaml.replace("berlin", city))
    return dags


def write_data(root: Path, cities: list[str], days: int) -> int:
    from airflow_ml_provider.config import load_city_config
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    rows = 0
    for city in cities:
        config = load_city_config(city, root / "dags" / "configs")
        frame = make_city_data(city, end=date.today(), days=days)
        write_city_data(frame, str(root / config.data_uri))
        rows = len(frame)
    return rows


def prepare(root: Path, cities: list[str], days: int, api_port: int, executor: str | None) -> dict[str, str]:
    """The embedded default under ``root/.airflow-ml``: databases migrated, pools created, data written."""
    dags = write_cities(root, cities)
    env = embedded.apply(root / ".airflow-ml", dags, api_port=api_port)
    if executor:
        os.environ["AIRFLOW__CORE__EXECUTOR"] = executor
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["AIRFLOW__API__HOST"] = "127.0.0.1"
    os.environ["PYTHONPATH"] = str(ROOT)
    os.chdir(root)  # the configs' relative data and storage paths resolve here, in every process started from here
    rows = write_data(root, cities, days)
    print(f"{len(cities)} city(ies), {rows} rows each; migrating Airflow and MLflow databases ...", flush=True)
    embedded.migrate_databases()
    embedded.create_pools({"ml_training"})
    subprocess.run(
        [sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # MLflow's first use runs its migrations: not part of anyone's step
    return env


# ----- (a) one process -----------------------------------------------------------------------------------------------


class StepRunner:
    """A city's steps called like Airflow calls them, without Airflow around them: upstream results from memory,
    XCom pushes kept in memory, the context fields the steps read."""

    def __init__(self, city: str, run_id: str | None = None, results: dict[str, Any] | None = None) -> None:
        from airflow_ml_provider.factory import city_dags

        self.dag = city_dags(str(Path("dags") / f"{city}.py"))[f"retrain_{city}"]
        self.now = datetime.now(timezone.utc)
        self.run_id = run_id or f"in_process__{self.now:%Y%m%dT%H%M%S}"
        self.results: dict[str, Any] = dict(results or {})
        self.pushed: dict[tuple[str, str], Any] = {}

    def context(self, task_id: str) -> dict[str, Any]:
        from airflow.sdk.definitions.param import process_params
        from airflow.sdk.definitions.xcom_arg import XComArg

        task = self.dag.get_task(task_id)
        for field in task.template_fields:  # upstream outputs instead of XCom: the previous steps' return values
            value = getattr(task, field)
            if isinstance(value, XComArg):
                setattr(task, field, self.results[value.operator.task_id])
        runner, now = self, self.now

        class TaskInstance:  # what the steps use of Airflow's: XCom by key, the attempt number
            try_number = 1

            def __init__(self, task_id: str) -> None:
                self.task_id = task_id

            def xcom_push(self, key: str, value: Any) -> None:
                runner.pushed[(self.task_id, key)] = value

            def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
                return runner.results.get(task_ids) if key == "return_value" else runner.pushed.get((task_ids, key))

        class DagRun:
            run_after = now
            bundle_version = None

        return {
            "dag": self.dag,
            "task": task,
            "run_id": self.run_id,
            "logical_date": now,
            "dag_run": DagRun(),
            "ti": TaskInstance(task_id),
            "params": process_params(self.dag, task, {}, suppress_exception=False),
        }

    def run(self, task_id: str) -> float:
        """Call the step's ``execute``; the seconds it took (its result is kept for the next steps)."""
        context = self.context(task_id)
        started = time.perf_counter()
        self.results[task_id] = context["task"].execute(context)
        return time.perf_counter() - started


def in_process(city: str) -> dict[str, float]:
    """Runs in its own fresh process: the city's steps called one after the other; seconds per step."""
    runner = StepRunner(city)
    return {task_id: runner.run(task_id) for task_id in STEPS}


def run_in_process(city: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--in-process", city], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the in-process run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----- (b) the scheduler ---------------------------------------------------------------------------------------------


class Standalone:
    """``airflow standalone`` in a session of its own, its output in ``root/standalone.log``; REST as admin."""

    def __init__(self, root: Path, api_port: int) -> None:
        import httpx

        self.log_path = root / "standalone.log"
        self.log = self.log_path.open("wb")
        airflow = str(Path(sys.executable).parent / "airflow")
        self.process = subprocess.Popen(
            [airflow, "standalone"], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60)
        self._token: str | None = None

    def rest(self, method: str, url: str, **kwargs: Any) -> Any:
        if self._token is None:
            user = embedded.ADMIN
            response = self.http.post("/auth/token", json={"username": user, "password": embedded.password(user)})
            response.raise_for_status()
            self._token = response.json()["access_token"]
        response = self.http.request(method, url, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_until(self, check: Any, timeout: float, what: str) -> Any:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"airflow standalone exited while waiting for {what}; see {self.log_path}")
            try:
                result = check()
            except httpx.HTTPError:  # still starting, or busy
                result = None
            if result:
                return result
            time.sleep(POLL_SECONDS)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}; see {self.log_path}")

    def memory_groups(self) -> dict[str, list[int]]:
        from airflow_ml_provider.tools.standalone import session_members

        return {"the standalone session": session_members(self.process.pid)}

    @property
    def task_logs(self) -> str:
        return f"{os.environ['AIRFLOW_HOME']}/logs"

    def stop(self) -> None:
        from airflow_ml_provider.tools.standalone import stop_sessions

        stop_sessions([self.process.pid], grace=10)
        self.log.close()


class CeleryAirflow:
    """The Celery stack of tests/stack/celery_stack.py behind what the measurements use of :class:`Standalone`."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = stack.http

    def rest(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.http.request(method, url, headers=self.stack.admin._headers, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_until(self, check: Any, timeout: float, what: str) -> Any:
        from celery_stack import wait

        return wait(what, check, timeout, self.stack.procs)

    def memory_groups(self) -> dict[str, list[int]]:
        from airflow_ml_provider.tools.standalone import session_members

        sessions = {name: session_members(proc.pid) for name, proc in self.stack.procs.started}
        return {"the whole stack": [pid for pids in sessions.values() for pid in pids],
                "the Celery worker": sessions["celery-worker"]}  # fmt: skip

    @property
    def task_logs(self) -> str:
        return f"{self.stack.env['AIRFLOW_HOME']}/logs"


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of the processes: shared pages (forked libraries) split between them, counted once."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb / 1024


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def trigger_all(airflow: Standalone | CeleryAirflow, cities: list[str], timeout: float) -> dict[str, str]:
    dag_ids = [f"retrain_{city}" for city in cities]

    def parsed() -> bool:
        found = airflow.rest("GET", "/api/v2/dags", params={"limit": 1000, "dag_id_pattern": "retrain_%"})
        return {d["dag_id"] for d in found["dags"]} >= set(dag_ids)

    airflow.wait_until(parsed, timeout, f"the DAG processor to parse {len(dag_ids)} DAG(s)")
    for dag_id in dag_ids:
        airflow.rest("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    runs = {}
    for dag_id in dag_ids:
        run = airflow.rest("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})
        runs[dag_id] = run["dag_run_id"]
    return runs


class Sampler(threading.Thread):
    """Every second: memory of the standalone session, and how many pooled tasks run at once."""

    def __init__(self, airflow: Standalone | CeleryAirflow) -> None:
        super().__init__(daemon=True)
        self.airflow = airflow
        self.stop = threading.Event()
        self.peak_mb: dict[str, float] = {}
        self.peak_pooled = 0
        self.peak_running = 0

    def run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            for group, pids in self.airflow.memory_groups().items():
                self.peak_mb[group] = max(self.peak_mb.get(group, 0.0), pss_mb(pids))
            try:
                running = self.airflow.rest(
                    "GET", "/api/v2/dags/~/dagRuns/~/taskInstances", params={"state": "running", "limit": 1000}
                )["task_instances"]
            except Exception:  # a busy API server: sample again next second
                continue
            self.peak_running = max(self.peak_running, len(running))
            self.peak_pooled = max(self.peak_pooled, sum(ti["pool"] == "ml_training" for ti in running))


def wait_for_steps(
    airflow: Standalone | CeleryAirflow, runs: dict[str, str], timeout: float
) -> dict[str, list[dict[str, Any]]]:
    """Every run's task instances once its ``register`` succeeded; fails on a failed or retried step."""
    done: dict[str, list[dict[str, Any]]] = {}

    def all_registered() -> bool:
        for dag_id, run_id in runs.items():
            if dag_id in done:
                continue
            tis = airflow.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
            states = {ti["task_id"]: ti["state"] for ti in tis}
            # up_for_retry is waited out: on a loaded machine a task's API calls can time out and Airflow retries it
            bad = {t: s for t, s in states.items() if s in ("failed", "upstream_failed", "skipped")}
            if bad:
                raise SystemExit(f"{dag_id} {run_id}: {bad}; task logs under {airflow.task_logs}")
            if states.get("register") == "success":
                done[dag_id] = tis
        return len(done) == len(runs)

    airflow.wait_until(all_registered, timeout, f"register in {len(runs)} run(s)")
    return done


def run_on_scheduler(root: Path, cities: list[str], api_port: int, timeout: float) -> dict[str, Any]:
    airflow = Standalone(root, api_port)
    try:
        airflow.wait_until(
            lambda: all(
                (component or {}).get("status") == "healthy"
                for component in (
                    airflow.http.get("/api/v2/monitor/health").json().get(name)
                    for name in ("metadatabase", "scheduler", "dag_processor")
                )
            ),
            timeout,
            "airflow standalone to be healthy",
        )
        return measure_runs(airflow, cities, timeout)
    finally:
        airflow.stop()


def measure_runs(airflow: Standalone | CeleryAirflow, cities: list[str], timeout: float) -> dict[str, Any]:
    """Trigger every city at once and wait for every ``register``; task instances, runs and the sampler's peaks."""
    sampler = Sampler(airflow)
    sampler.start()
    runs = trigger_all(airflow, cities, timeout)
    triggered = datetime.now(timezone.utc)
    tis = wait_for_steps(airflow, runs, timeout)
    sampler.stop.set()
    sampler.join()
    dag_runs = {
        dag_id: airflow.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}") for dag_id, run_id in runs.items()
    }
    return {
        "triggered": triggered,
        "tis": tis,
        "dag_runs": dag_runs,
        "peak_mb": sampler.peak_mb,
        "peak_pooled": sampler.peak_pooled,
        "peak_running": sampler.peak_running,
    }


def run_on_celery(root: Path, cities: list[str], days: int, concurrency: int, preload: bool, timeout: float) -> dict:
    """(b) on the stack test's Celery stack: the cities' data in its S3, one worker of ``concurrency`` slots."""
    sys.path[:0] = [str(ROOT / "tests" / "stack"), str(ROOT / "tests")]  # celery_stack and its e2e.postgres
    import celery_stack

    from airflow_ml_provider.core.demo_data import make_city_data

    if reason := celery_stack.missing_requirements():
        raise SystemExit(reason)
    os.environ["PYTHONPATH"] = str(ROOT)  # the stack's processes run this checkout's package, as in prepare()
    dags = celery_stack.write_dag_folder(root, cities)
    with celery_stack.running(root, dags, concurrency=concurrency, preload=preload) as stack:
        for city in cities:
            stack.put_city_data(city, make_city_data(city, end=date.today(), days=days))
        airflow = CeleryAirflow(stack)
        # the worker has started (and preloaded) before any clock starts, as the scheduler has in (b) of standalone
        airflow.wait_until(lambda: re.search(r"@\S+ ready\.", stack.procs.log("celery-worker")), timeout,
                           "the Celery worker to be ready")  # fmt: skip
        preloaded = [line for line in stack.procs.log("celery-worker").splitlines()
                     if celery_stack.PRELOAD_LOG_LINE in line]  # fmt: skip
        print("    worker: " + (preloaded[0].strip() if preloaded else "no preload"), flush=True)
        return measure_runs(airflow, cities, timeout)


# ----- reports -------------------------------------------------------------------------------------------------------


def report_memory(scheduled: dict[str, Any]) -> None:
    for group, peak in scheduled["peak_mb"].items():
        print(f"peak memory of {group} (PSS): {peak:.0f} MB")


def report_single(in_proc: dict[str, float] | None, scheduled: dict[str, Any], executor: str) -> None:
    """(a) and (b) side by side; without (a), (b)'s task times and the scheduler's gaps alone."""
    ((dag_id, tis),) = scheduled["tis"].items()
    by_task = {ti["task_id"]: ti for ti in tis}
    run_start = parse_time(scheduled["dag_runs"][dag_id]["start_date"])
    wall_b = (parse_time(by_task["register"]["end_date"]) - run_start).total_seconds()
    own = in_proc or {}
    print(f"\n(b) scheduler ({executor}), run start -> register done: {wall_b:.1f} s")
    if in_proc:
        wall_a = sum(in_proc[step] for step in STEPS)
        print(f"(a) one process, steps called in order: {wall_a:.1f} s")
        print(f"ratio (b)/(a): {wall_b / wall_a:.2f}")
    print(f"\n{'task':<14} {'(a) s':>7} {'(b) task s':>11} {'overhead s':>11} {'gap before s':>13}")
    previous_end, overheads = run_start, []
    for step in STEPS:
        start, end = parse_time(by_task[step]["start_date"]), parse_time(by_task[step]["end_date"])
        duration = (end - start).total_seconds()
        gap = (start - previous_end).total_seconds()
        previous_end = end
        if step in own:
            overheads.append(duration - own[step])
            print(f"{step:<14} {own[step]:>7.1f} {duration:>11.1f} {overheads[-1]:>11.1f} {gap:>13.1f}")
        else:
            print(f"{step:<14} {'-':>7} {duration:>11.1f} {'-':>11} {gap:>13.1f}")
    if overheads:
        print(f"mean fixed overhead per task: {sum(overheads) / len(overheads):.1f} s (task time minus its own work)")
    report_memory(scheduled)


def report_throughput(cities: list[str], scheduled: dict[str, Any], pool_slots: int) -> None:
    triggered = scheduled["triggered"]
    ends = sorted(
        parse_time({ti["task_id"]: ti for ti in tis}["register"]["end_date"]) for tis in scheduled["tis"].values()
    )
    minutes = (ends[-1] - triggered).total_seconds() / 60
    print(f"\n{len(cities)} cities triggered at once: all registered after {minutes:.1f} min")
    print(f"throughput: {len(cities) / minutes:.1f} cities per minute (to the approval)")
    first = (ends[0] - triggered).total_seconds()
    print(
        f"first city registered after {first:.0f} s, median {(ends[len(ends) // 2] - triggered).total_seconds():.0f} s"
    )
    report_memory(scheduled)
    print(
        f"peak tasks running at once: {scheduled['peak_running']}; in the ml_training pool (train, evaluate): "
        f"{scheduled['peak_pooled']} of {pool_slots} slots"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, default=1, help="1: overhead of one city; more: throughput")
    parser.add_argument("--days", type=int, default=180, help="days of demo rides per city (180: ~80k rows)")
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for any stage")
    parser.add_argument(
        "--executor",
        help="Airflow executor for (b), e.g. LocalExecutor to compare with Airflow's own "
        "(default: the embedded default's airflow_ml_provider.executors.PreloadingLocalExecutor)",
    )
    parser.add_argument("--skip-in-process", action="store_true", help="only (b), e.g. to compare executors")
    parser.add_argument("--celery", action="store_true", help="(b) on the Celery stack of tests/stack instead")
    parser.add_argument("--concurrency", type=int, default=2, help="with --celery: the worker's worker_concurrency")
    parser.add_argument("--no-preload", action="store_true", help="with --celery: workers without celery_config")
    parser.add_argument("--in-process", metavar="CITY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        print(json.dumps(in_process(args.in_process)))
        return

    cities = ["bench"] if args.cities == 1 else [f"city{i:03d}" for i in range(args.cities)]
    with tempfile.TemporaryDirectory(prefix="orchestration-bench-") as tmp:
        root = (args.root or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        in_proc = None
        if args.celery:
            preload = "without preload" if args.no_preload else "preloading"
            executor = f"CeleryExecutor, 1 worker, concurrency {args.concurrency}, {preload}"
            print(f"(b) the Celery stack ({executor}), logs in {root / 'logs'} ...", flush=True)
            scheduled = run_on_celery(root, cities, args.days, args.concurrency, not args.no_preload, args.timeout)
            from celery_stack import POOL_SLOTS as pool_slots  # on the path since run_on_celery
        else:
            api_port = free_port()
            prepare(root, cities, args.days, api_port, args.executor)
            if len(cities) == 1 and not args.skip_in_process:
                print("(a) one process ...", flush=True)
                in_proc = run_in_process(cities[0])
                print("    " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in in_proc.items()), flush=True)
            executor = os.environ["AIRFLOW__CORE__EXECUTOR"]
            print(
                f"(b) airflow standalone ({executor}), port {api_port}, log {root / 'standalone.log'} ...", flush=True
            )
            scheduled = run_on_scheduler(root, cities, api_port, args.timeout)
            pool_slots = embedded.POOL_SLOTS
        if len(cities) == 1:
            report_single(in_proc, scheduled, executor)
        else:
            report_throughput(cities, scheduled, pool_slots)
        os.chdir(ROOT)


if __name__ == "__main__":
    main()
