"""``airflow-ml``: scaffold, lint and run city configs; the demo; status, audit, history, rollback; approvals."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path

from airflow_ml_provider.tools import embedded
from airflow_ml_provider.tools.cli_commands import HANDLERS


# The command line only: what each subcommand does is in cli_commands.py.
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
    return HANDLERS[args.command](args)


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


def _airflow_login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Airflow API server (default: $AIRFLOW_ML_API_URL or http://localhost:8080)")
    parser.add_argument("--user", help="your Airflow user (default: $AIRFLOW_ML_USER or your login)")
    parser.add_argument("--password", help="default: $AIRFLOW_ML_PASSWORD, else asked for")


if __name__ == "__main__":
    sys.exit(main())
