"""``airflow-ml``: lint and schema for city configs, demo data, the demo, registry status and rollback."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
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
