"""``airflow-ml history CITY [--at T] [--verify]``: the promotion ledger as a timeline, who was champion at T, and
whether the chain (and the registry's champion alias) still agree with what was recorded."""

from __future__ import annotations

from datetime import datetime

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core import ledger, registry
from airflow_ml_provider.core.ledger import LedgerEvent, StoredEvent
from airflow_ml_provider.hooks.ledger import city_ledger
from airflow_ml_provider.tools.status import format_table


def format_timeline(stored: list[StoredEvent]) -> str:
    headers = ("#", "when (UTC)", "event", "version", "champion", "who", "why", "DAG run")
    rows = []
    for item in stored:
        event = item.event
        if event is None:
            rows.append(("?", "-", "unreadable", "-", "-", "-", item.problem or "", item.uri))
            continue
        rows.append(
            (
                str(event.sequence),
                event.at_datetime.strftime("%Y-%m-%d %H:%M:%S"),
                event.kind,
                f"v{event.version}",
                f"{_v(event.from_version)} -> {_v(event.to_version)}",
                event.who,
                event.why or "-",
                f"{event.dag_id}/{event.dag_run_id}" if event.dag_run_id else "-",
            )
        )
    return format_table(headers, rows)


def champion_line(config: CityConfig, events: list[LedgerEvent], when: datetime) -> str:
    event = ledger.champion_at(events, when)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S %Z")
    if event is None:
        first = f" (the ledger starts {events[0].at_datetime:%Y-%m-%d %H:%M:%S})" if events else ""
        return f"champion of {config.city} at {stamp}: none recorded{first}"
    return (
        f"champion of {config.city} at {stamp}: {config.model_name} v{event.to_version}, "
        f"put there by {event.who} on {event.at_datetime:%Y-%m-%d %H:%M:%S} UTC "
        f"({event.kind}, event {event.sequence}): {event.why or 'no reason given'}"
    )


def history(config: CityConfig, *, at: datetime | None = None, verify: bool = False) -> tuple[str, int]:
    """The text to print and the exit code (1 when ``verify`` finds a problem)."""
    book = city_ledger(config)
    stored = book.read()
    lines = [f"{config.city} ({config.model_name}): {len(stored)} event(s) in {book.uri}"]
    if stored:
        lines.append(format_timeline(stored))
    else:
        lines.append("no promotion, rejection or rollback recorded yet")
    if at is not None:
        lines.append("")
        lines.append(champion_line(config, [s.event for s in stored if s.event is not None], at))
    code = 0
    if verify:
        from airflow_ml_provider.hooks.mlflow import MlflowHook

        champion = MlflowHook().version_by_alias(config.model_name, registry.CHAMPION)
        problems = [
            f"{config.city}: {problem}"
            for problem in ledger.chain_problems(stored, champion.version if champion else None)
        ]
        lines.append("")
        lines.extend(problems or [f"{config.city}: chain of {len(stored)} event(s) intact; agrees with the registry"])
        code = 1 if problems else 0
    return "\n".join(lines), code


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"
