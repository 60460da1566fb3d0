"""What each ``airflow-ml`` subcommand does once cli.py has parsed its arguments: print, and return the exit code.

Kept apart from the parser so that cli.py reads as the command line's reference; each command imports what it needs
when it runs, so ``airflow-ml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.config import config_dir, json_schema, load_all

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.api_client import AirflowApi


def _lint(args: argparse.Namespace) -> int:
    from airflow_ml_provider.tools.lint import lint_directory, metric_warnings

    directory = args.directory or config_dir()
    problems, cities = lint_directory(directory)
    if directory.is_dir():  # warnings do not fail lint: whether the metric is defined depends on the data
        for warning in metric_warnings(load_all(directory)[0]):
            print(warning)
    if problems:
        print("\n".join(problems))
        print(f"\n{len(problems)} problem(s) in {directory}")
        return 1
    print(f"{len(cities)} city config(s) OK in {directory}: {', '.join(cities)}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from airflow_ml_provider.tools.config_reference import render_markdown

        print(render_markdown(), end="")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


def _make_data(args: argparse.Namespace) -> int:
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    cities = args.cities or sorted(load_all()[0])
    if not cities:
        print(f"no cities given and none configured in {config_dir()}")
        return 1
    for city in cities:
        frame = make_city_data(
            city, end=args.end, days=args.days, fault=args.fault, slice_regression=args.slice_regression
        )
        path = write_city_data(frame, args.out / city / "rides.parquet")
        print(f"{city}: {len(frame)} rides, {args.days} days to {args.end} -> {path}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from airflow_ml_provider.hooks.dataset import DatasetError
    from airflow_ml_provider.tools.scaffold import init_city
    from airflow_ml_provider.tools.table_inference import Choices, InitError

    command = " ".join(["airflow-ml", *sys.argv[1:]]) if sys.argv[1:2] == ["init"] else f"airflow-ml init {args.city}"
    try:
        choices = Choices(args.city, args.data, args.target, args.task, args.timestamp, args.approver)
        config_path, loader_path, plan = init_city(choices, directory=args.config_dir, command=command)
    except (InitError, DatasetError) as exc:
        print(f"airflow-ml init: {exc}")
        return 1
    features = len(plan.named("numeric")) + len(plan.named("categorical"))
    print(
        f"{args.city}: {plan.task} of {plan.target!r} on {plan.rows:,} rows, {features} features, "
        f"windows {plan.train_days} + {plan.eval_days} days ending {plan.end:%Y-%m-%d}\n"
        f"wrote {config_path} (every choice commented: review it) and {loader_path}\n"
        f"next: airflow-ml lint, then airflow-ml run {args.city} --approve-as {plan.approver}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from airflow_ml_provider.core.registry import APPROVE, REJECT
    from airflow_ml_provider.tools.run import RunRequest, run_command
    from airflow_ml_provider.tools.runner import Answer

    answer = None
    if args.approve_as or args.reject_as:
        option = APPROVE if args.approve_as else REJECT
        user = args.approve_as or args.reject_as
        answer = Answer(user, option, args.reason or f"airflow-ml run: {option.lower()}d by {user}")
    request = RunRequest(args.city, args.logical_date, args.conf, answer)
    return run_command(Path.cwd(), request)


def _demo(args: argparse.Namespace) -> int:
    from airflow_ml_provider.tools.demo import run_demo

    return run_demo(Path.cwd())


def _standalone(args: argparse.Namespace) -> int:
    from airflow_ml_provider.tools.standalone import run_standalone

    return run_standalone(Path.cwd(), api_port=args.port, mlflow_port=args.mlflow_port)


def _use_embedded_store_if_unconfigured() -> None:
    """After ``make demo``, ``status`` and ``rollback`` talk to the embedded MLflow store unless told otherwise."""
    import os

    embedded_db = Path(".airflow-ml") / "mlflow.db"
    configured = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("AIRFLOW_CONN_MLFLOW_DEFAULT")
    if not configured and embedded_db.exists():
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{embedded_db.resolve()}"


def _status(args: argparse.Namespace) -> int:
    from airflow_ml_provider.tools.status import city_status, format_status

    _use_embedded_store_if_unconfigured()
    configs, problems = load_all(args.directory)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    rows = [city_status(config) for config in configs.values()]
    print(format_status(rows))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from airflow_ml_provider.config import ConfigError, load_city_config
    from airflow_ml_provider.core.rollback import RollbackRefused
    from airflow_ml_provider.hooks.ledger import roll_back
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    try:
        config = load_city_config(args.city, args.config_dir)
    except ConfigError as exc:
        print(exc)
        return 1
    _use_embedded_store_if_unconfigured()
    try:
        plan = roll_back(
            config, MlflowHook(), to_version=args.to_version, who=args.by, why=args.reason, force=args.force
        )
    except (RollbackRefused, ValueError) as exc:
        print(f"rollback refused: {exc}")
        return 1
    # Who and why as recorded: running the command again after a crash finishes the first request.
    how = f"by {plan.who}: {plan.why}" + ("; an interrupted rollback, now finished" if plan.resumed else "")
    print(f"{plan.model_name}: champion v{plan.from_version} -> v{plan.to_version} ({how})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 listing each violation, 2 when a config or a registry could not be read."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.tools.audit import audit_city, read_city_registry

    _use_embedded_store_if_unconfigured()
    configs, problems = load_all(args.config_dir)
    unknown = sorted(set(args.cities) - set(configs))
    for problem in problems:
        print(f"cannot audit: {problem}", file=sys.stderr)
    for city in unknown:
        print(f"cannot audit {city}: no {city}.yaml in {args.config_dir or config_dir()}", file=sys.stderr)
    hook = MlflowHook()
    audits, unreadable = [], []
    for city in args.cities or sorted(configs):
        if city not in configs:
            continue
        try:
            audits.append(audit_city(read_city_registry(hook, configs[city])))
        except Exception as exc:  # an outage or a permission problem: say so, never report clean
            unreadable.append(city)
            print(f"cannot audit {city}: could not read {configs[city].model_name} from MLflow: {exc}", file=sys.stderr)
    violations = [violation for audit in audits for violation in audit.violations]
    for violation in violations:
        print(violation)
    for audit in audits:
        print(audit.summary(), file=sys.stderr if violations else sys.stdout)
    if violations:
        print(f"\n{len(violations)} violation(s) in {sum(bool(a.violations) for a in audits)} city(ies)")
        return 1
    if problems or unknown or unreadable:
        return 2
    print(f"audit: {len(audits)} city(ies) clean")
    return 0


def _history(args: argparse.Namespace) -> int:
    from airflow_ml_provider.config import ConfigError, load_city_config
    from airflow_ml_provider.core.ledger import parse_when
    from airflow_ml_provider.tools.history import history

    try:
        config = load_city_config(args.city, args.config_dir)
        at = parse_when(args.at) if args.at else None
    except (ConfigError, ValueError) as exc:
        print(exc)
        return 1
    _use_embedded_store_if_unconfigured()
    text, code = history(config, at=at, verify=args.verify)
    print(text)
    return code


def _airflow_api(args: argparse.Namespace) -> AirflowApi:
    """Log in to Airflow's API as the user: every answer is checked by Airflow against the city's approvers."""
    import os

    import httpx

    from airflow_ml_provider.hooks.api_client import AirflowApi

    url = args.url or os.environ.get("AIRFLOW_ML_API_URL") or "http://localhost:8080"
    user = args.user or os.environ.get("AIRFLOW_ML_USER") or getpass.getuser()
    password = (
        args.password or os.environ.get("AIRFLOW_ML_PASSWORD") or getpass.getpass(f"Airflow password for {user}: ")
    )
    return AirflowApi(httpx.Client(base_url=url, timeout=30), user, password)


def _approvals(args: argparse.Namespace) -> int:
    import httpx

    from airflow_ml_provider.hooks.api_client import AirflowApiError
    from airflow_ml_provider.tools.approvals import pending_approvals
    from airflow_ml_provider.tools.status import format_table

    try:
        api = _airflow_api(args)
        pending = pending_approvals(api)
    except (AirflowApiError, httpx.HTTPError) as exc:
        print(f"cannot list approvals from {args.url or 'Airflow'}: {exc}")
        return 1
    if not pending:
        print("no approval is waiting")
        return 0
    rows = [
        (
            p.city,
            p.subject,
            "failed: reason required" if p.guardrails_failed else "pass",
            ", ".join(p.approvers),
            p.created_at[:19],
            p.run_id,
        )
        for p in pending
    ]
    print(format_table(("city", "request", "guardrails", "approvers", "asked at (UTC)", "DAG run"), rows))
    mine = [p.city for p in pending if api.username in p.approvers]
    print(f"\n{len(pending)} waiting; {len(mine)} for you ({api.username}): {' '.join(mine) or '-'}")
    return 0


def _decide(args: argparse.Namespace) -> int:
    import httpx

    from airflow_ml_provider.hooks.api_client import AirflowApiError
    from airflow_ml_provider.tools.approvals import decide

    if not args.reason.strip():
        print("a batch decision needs a reason: --reason TEXT")
        return 1
    try:
        answers = decide(_airflow_api(args), args.cities, approve=args.approve, reason=args.reason)
    except (AirflowApiError, httpx.HTTPError) as exc:
        print(f"cannot decide through {args.url or 'Airflow'}: {exc}")
        return 1
    for answer in answers:
        print(f"{answer.city}: {answer.message}")
    failed = [a.city for a in answers if not a.ok]
    if failed:
        print(f"\nnot decided: {' '.join(failed)}")
    return 1 if failed else 0


# cli.py's subcommand names: each is parsed there and run here.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": _init,
    "run": _run,
    "lint": _lint,
    "schema": _schema,
    "make-data": _make_data,
    "demo": _demo,
    "standalone": _standalone,
    "status": _status,
    "rollback": _rollback,
    "audit": _audit,
    "history": _history,
    "approvals": _approvals,
    "decide": _decide,
}
