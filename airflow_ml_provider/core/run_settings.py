"""What one run does: the YAML's settings with the trigger form's overrides applied. Airflow-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_ml_provider.config import CityConfig


@dataclass(frozen=True)
class RunSettings:
    train_window_days: int
    eval_window_days: int
    estimator_params: dict[str, Any] = field(default_factory=dict)
    tolerance_override: float | None = None
    dry_run: bool = False
    reason: str = ""


def resolve(config: CityConfig, params: dict[str, Any]) -> RunSettings:
    """Apply trigger-form params (already type-checked by Airflow) over the city's YAML."""
    overrides = params.get("estimator_params") or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"param estimator_params must be an object, got {overrides!r}")
    tolerance = params.get("guardrail_tolerance")
    return RunSettings(
        train_window_days=int(params.get("train_window_days") or config.data.train_window_days),
        eval_window_days=int(params.get("eval_window_days") or config.data.eval_window_days),
        estimator_params={**config.model.params, **overrides},
        tolerance_override=None if tolerance is None else float(tolerance),
        dry_run=bool(params.get("dry_run", False)),
        reason=str(params.get("reason") or ""),
    )
