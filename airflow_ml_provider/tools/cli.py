"""``airflow-ml``: scaffold, lint and run city configs; demo data, the demo, registry status and rollback."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path

from airflow_ml_provider.config import config_dir, json_schema, load_all


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
    commands.add_parser("standalone", help="Airflow standalone and the MLflow UI on the embedded default")

    status = commands.add_parser("status", help="champion, approver, challenger and age per city")
    status.add_argument("directory", nargs="?", type=Path)

    rollback = commands.add_parser("rollback", help="move a city's champion back in one step")
    rollback.add_argument("city")
    rollback.add_argument("--to", dest="to_version", help="version (default: previous_champion)")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by", default=getpass.getuser(), help="who rolls back (default: your login)")
    rollback.add_argument("--force", action="store_true", help="allow a version that was never approved")
    rollback.add_argument("--config-dir", type=Path)

    history = commands.add_parser("history", help="a city's promotion ledger: timeline, champion at a time, verify")
    history.add_argument("city")
    history.add_argument("--at", help="who was champion at this ISO date or timestamp (naive = UTC)")
    history.add_argument(
        "--verify", action="store_true", help="check the hash chain and the registry's champion; exit 1 on a problem"
    )
    history.add_argument("--config-dir", type=Path)

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
        "history": _history,
    }[args.command]
    return handler(args)


def _lint(args: argparse.Namespace) -> int:
    from airflow_ml_provider.tools.lint import lint_directory

    directory = args.directory or config_dir()
    problems, cities = lint_directory(directory)
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

    return run_standalone(Path.cwd())


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
    from airflow_ml_provider.core.registry import RollbackRefused
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    try:
        config = load_city_config(args.city, args.config_dir)
    except ConfigError as exc:
        print(exc)
        return 1
    _use_embedded_store_if_unconfigured()
    try:
        plan = MlflowHook().rollback(
            config.model_name, to_version=args.to_version, decided_by=args.by, reason=args.reason, force=args.force
        )
    except (RollbackRefused, ValueError) as exc:
        print(f"rollback refused: {exc}")
        return 1
    print(f"{plan.model_name}: champion v{plan.from_version} -> v{plan.to_version} (by {args.by}: {args.reason})")
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


if __name__ == "__main__":
    sys.exit(main())
