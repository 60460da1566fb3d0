"""``airflow-ml``: scaffold, lint and run city configs; demo data, the demo, registry status and rollback."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.config import config_dir, json_schema, load_all
from airflow_ml_provider.tools import embedded

if TYPE_CHECKING:
    from airflow_ml_provider.tools.api_client import AirflowApi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-ml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    lint = commands.add_parser("lint", help="check every city config; exit 1 listing all problems")
    lint.add_argument(
        "directory", nargs="?", type=Path, help="config folder (default: $AIRFLOW_ML_CONFIG_DIR or dags/configs)"
    )

    schema = commands.add_parser("schema", help="print the JSON Schema of a city config (for editor completion)")
    schema.add_argument("--markdown", action="store_true", help="print the config reference (docs/) instead")

    make_data = commands.add_parser("make-data", help="write realistic demo ride data per city")
    make_data.add_argument("cities", nargs="*", help="default: every city in the config folder")
    make_data.add_argument(
        "--out",
        type=Path,
        default=Path(".airflow-ml/data"),
        help="folder; each city goes to <out>/<city>/rides.parquet",
    )
    make_data.add_argument(
        "--end",
        type=date.fromisoformat,
        default=datetime.now(timezone.utc).date(),
        help="day after the last ride (default: today, UTC)",
    )
    make_data.add_argument("--days", type=int, default=180)
    make_data.add_argument("--fault", help="inject a data-quality fault in the most recent days")
    make_data.add_argument(
        "--slice-regression", metavar="DISTRICT", help="corrupt the training-period labels of one district"
    )

    init = commands.add_parser(
        "init",
        help="write dags/configs/CITY.yaml and dags/CITY.py from a look at a table",
        description="Read a table (local or s3://, Parquet or CSV) and write a commented city config and its loader: "
        "timestamp and id columns, features by type, slices, expectations and windows that fit the data. "
        "Never overwrites a city.",
    )
    init.add_argument("city")
    init.add_argument("--data", required=True, metavar="URI", help="local path or s3://bucket/key (.parquet, .csv)")
    init.add_argument("--target", required=True, metavar="COLUMN", help="the column the model predicts")
    init.add_argument(
        "--task", choices=("regression", "classification"), help="default: classification for 0/1 targets"
    )
    init.add_argument("--timestamp", metavar="COLUMN", help="when each row happened (default: the datetime column)")
    init.add_argument("--approver", metavar="USER", help="who approves promotions (default: CITY_ops)")
    init.add_argument("--config-dir", type=Path, help="default: $AIRFLOW_ML_CONFIG_DIR or dags/configs")

    from airflow_ml_provider.tools.run import EXIT_CODES

    run = commands.add_parser(
        "run",
        help="run a city's retraining DAG on the embedded default, step by step",
        description=textwrap.fill(
            "Run retrain_CITY once with real Airflow and MLflow under .airflow-ml/ (no servers) and tell each step's "
            "outcome, the guardrail verdict and where the report is. Without --approve-as/--reject-as the run stops "
            "at its approval; the same command with --approve-as USER answers that waiting run and finishes it.",
            100,
        ),
        epilog="exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("city")
    run.add_argument(
        "--logical-date",
        type=_utc_datetime,
        metavar="DATE",
        help="where the windows end, e.g. 2025-06-01 (default: midnight after the data's last row)",
    )
    run.add_argument("--conf", type=_json_object, default={}, metavar="JSON", help="trigger-form params as JSON")
    answer = run.add_mutually_exclusive_group()
    answer.add_argument("--approve-as", metavar="USER", help="approve the candidate as this approver when asked")
    answer.add_argument("--reject-as", metavar="USER", help="reject the candidate as this approver when asked")
    run.add_argument("--reason", help="the answer's reason, recorded on the model version")

    commands.add_parser("demo", help="run the demo on the embedded default (Airflow + MLflow on SQLite)")
    standalone = commands.add_parser("standalone", help="Airflow standalone and the MLflow UI on the embedded default")
    standalone.add_argument("--port", type=int, default=embedded.API_PORT, help="Airflow UI and API port")
    standalone.add_argument("--mlflow-port", type=int, default=embedded.MLFLOW_PORT, help="MLflow UI port")

    status = commands.add_parser("status", help="champion, approver, challenger and age per city")
    status.add_argument("directory", nargs="?", type=Path)

    rollback = commands.add_parser("rollback", help="move a city's champion back in one step")
    rollback.add_argument("city")
    rollback.add_argument("--to", dest="to_version", help="version (default: previous_champion)")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by", default=getpass.getuser(), help="who rolls back (default: your login)")
    rollback.add_argument("--force", action="store_true", help="allow a version that was never approved")
    rollback.add_argument("--config-dir", type=Path)

    audit = commands.add_parser(
        "audit", help="check each city's registry: only approved, evaluated bits hold champion; exit 1 listing problems"
    )
    audit.add_argument("cities", nargs="*", help="default: every city in the config folder")
    audit.add_argument("--config-dir", type=Path)
    history = commands.add_parser("history", help="a city's promotion ledger: timeline, champion at a time, verify")
    history.add_argument("city")
    history.add_argument("--at", help="who was champion at this ISO date or timestamp (naive = UTC)")
    history.add_argument(
        "--verify", action="store_true", help="check the hash chain and the registry's champion; exit 1 on a problem"
    )
    history.add_argument("--config-dir", type=Path)

    approvals = commands.add_parser("approvals", help="approvals waiting in Airflow, every city you may see")
    _airflow_login_arguments(approvals)

    decide = commands.add_parser(
        "decide", help="approve or reject the waiting approval of several cities, as you, through Airflow"
    )
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", action="store_true")
    choice.add_argument("--reject", action="store_true")
    decide.add_argument("cities", nargs="+", metavar="CITY")
    decide.add_argument("--reason", required=True, help="recorded on every model version decided (required)")
    _airflow_login_arguments(decide)

    args = parser.parse_args(argv)
    handler = {
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
    }[args.command]
    return handler(args)


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


def _utc_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"train_window_days\": 60}'")
    return value


def _init(args: argparse.Namespace) -> int:
    from airflow_ml_provider.hooks.dataset import DatasetError
    from airflow_ml_provider.tools.scaffold import InitError, init_city

    command = " ".join(["airflow-ml", *sys.argv[1:]]) if sys.argv[1:2] == ["init"] else f"airflow-ml init {args.city}"
    try:
        config_path, loader_path, plan = init_city(
            args.city,
            args.data,
            args.target,
            task=args.task,
            timestamp=args.timestamp,
            approver=args.approver,
            directory=args.config_dir,
            command=command,
        )
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
    from airflow_ml_provider.tools.run import RunRequest, run_command
    from airflow_ml_provider.tools.runner import APPROVE, REJECT, Answer

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
    from airflow_ml_provider.core.ledger import ROLLBACK
    from airflow_ml_provider.core.registry import MODEL_SHA_TAG, RollbackRefused
    from airflow_ml_provider.hooks.ledger import record
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    try:
        config = load_city_config(args.city, args.config_dir)
    except ConfigError as exc:
        print(exc)
        return 1
    _use_embedded_store_if_unconfigured()
    hook = MlflowHook()
    try:
        plan = hook.rollback(
            config.model_name,
            to_version=args.to_version,
            decided_by=args.by,
            reason=args.reason,
            force=args.force,
            approvers=config.approval.approvers,
        )
    except (RollbackRefused, ValueError) as exc:
        print(f"rollback refused: {exc}")
        return 1
    record(
        config,
        ROLLBACK,
        version=plan.to_version,
        from_version=plan.from_version,
        to_version=plan.to_version,
        who=args.by,
        why=args.reason,
        model_sha256=hook.get_version(plan.model_name, plan.to_version).tags.get(MODEL_SHA_TAG),
    )
    print(f"{plan.model_name}: champion v{plan.from_version} -> v{plan.to_version} (by {args.by}: {args.reason})")
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


def _airflow_login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Airflow API server (default: $AIRFLOW_ML_API_URL or http://localhost:8080)")
    parser.add_argument("--user", help="your Airflow user (default: $AIRFLOW_ML_USER or your login)")
    parser.add_argument("--password", help="default: $AIRFLOW_ML_PASSWORD, else asked for")


def _airflow_api(args: argparse.Namespace) -> AirflowApi:
    """Log in to Airflow's API as the user: every answer is checked by Airflow against the city's approvers."""
    import os

    import httpx

    from airflow_ml_provider.tools.api_client import AirflowApi

    url = args.url or os.environ.get("AIRFLOW_ML_API_URL") or "http://localhost:8080"
    user = args.user or os.environ.get("AIRFLOW_ML_USER") or getpass.getuser()
    password = (
        args.password or os.environ.get("AIRFLOW_ML_PASSWORD") or getpass.getpass(f"Airflow password for {user}: ")
    )
    return AirflowApi(httpx.Client(base_url=url, timeout=30), user, password)


def _approvals(args: argparse.Namespace) -> int:
    import httpx

    from airflow_ml_provider.tools.api_client import AirflowApiError
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

    from airflow_ml_provider.tools.api_client import AirflowApiError
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


if __name__ == "__main__":
    sys.exit(main())
