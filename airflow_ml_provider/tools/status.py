"""``airflow-ml status``: per city, what serves now, who approved it and when, what waits, and how old it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from airflow_ml_provider.config import CityConfig
from airflow_ml_provider.core import registry
from airflow_ml_provider.hooks.mlflow import MlflowHook


@dataclass
class CityStatus:
    city: str
    model_name: str
    champion: str
    promoted_by: str
    promoted_at: str
    challenger: str
    last_candidate: str
    age_days: int | None
    warning: str


def city_status(config: CityConfig, hook: MlflowHook | None = None) -> CityStatus:
    hook = hook or MlflowHook()
    name = config.model_name
    champion = hook.version_by_alias(name, registry.CHAMPION)
    challenger = hook.version_by_alias(name, registry.CHALLENGER)
    latest = next(iter(hook.versions(name)), None)
    age = None
    warning = ""
    promoted_at = promoted_by = "-"
    if champion is not None:
        tags = champion.tags
        promoted_at = tags.get(registry.PROMOTED_AT_TAG, "-")
        promoted_by = tags.get(registry.PROMOTED_BY_TAG, "-")
        age = (datetime.now(timezone.utc) - champion.created_at).days
        limit = config.registry.max_model_age_days
        if limit is not None and age > limit:
            warning = f"champion is {age} days old (max_model_age_days {limit}): retrain"
    last = "-"
    if latest is not None:
        last = f"v{latest.version} {latest.tags.get(registry.DECISION_TAG, 'pending')}"
        last += f" ({latest.tags.get(registry.VERDICT_TAG, '?')} guardrails)"
    return CityStatus(
        city=config.city,
        model_name=name,
        champion=f"v{champion.version}" if champion else "none",
        promoted_by=promoted_by,
        promoted_at=promoted_at[:19],
        challenger=f"v{challenger.version}" if challenger else "-",
        last_candidate=last,
        age_days=age,
        warning=warning,
    )


def format_status(rows: list[CityStatus]) -> str:
    headers = (
        "city",
        "model",
        "champion",
        "promoted by",
        "promoted at (UTC)",
        "challenger",
        "last candidate",
        "age (days)",
        "",
    )
    table = [
        (
            r.city,
            r.model_name,
            r.champion,
            r.promoted_by,
            r.promoted_at,
            r.challenger,
            r.last_candidate,
            "-" if r.age_days is None else str(r.age_days),
            r.warning,
        )
        for r in rows
    ]
    return format_table(headers, table)


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A plain-text table with aligned columns, for terminals and logs."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([line.format(*headers), line.format(*("-" * w for w in widths))] + [line.format(*r) for r in rows])
