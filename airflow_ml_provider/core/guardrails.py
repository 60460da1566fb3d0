"""Noise-aware guardrail verdicts: is the candidate worse than the champion on some slice, beyond tolerance?

Every check is a one-sided test on the same eval rows for both models (paired), and a slice fails only when the test
rejects "the regression is within tolerance" after a Holm correction over every test of the run (all guardrails x
slices x rules). So with 60 slices, two equally good models are blocked in about ``1 - confidence`` of runs at most,
while a real regression on a slice with enough rows is still caught. How each metric's per-slice values and standard
errors are computed is in guardrail_stats.py; what the verdicts look like is in verdicts.py.

Intervals are two-sided at ``confidence`` for each slice on its own; verdicts use the Holm-adjusted p-values. A metric
that is undefined on a slice (mape with a zero target, r2 of a constant target, roc_auc with one class) is not judged
there, and the reason is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from airflow_ml_provider.config import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    CityConfig,
    EvaluationConfig,
    GuardrailConfig,
    Tolerance,
)
from airflow_ml_provider.core.guardrail_stats import SliceGroups, SliceStats, holm, slice_stats
from airflow_ml_provider.core.metrics import compute, threshold_at_fpr, undefined_reason
from airflow_ml_provider.core.slices import OVERALL, slice_families
from airflow_ml_provider.core.verdicts import (
    FEW_ROWS,
    MAX_VALUE,
    MIN_VALUE,
    TOLERANCE,
    UNDEFINED,
    EvaluationReport,
    GuardrailResult,
    SliceResult,
)


def evaluate(
    config: CityConfig,
    eval_frame: pd.DataFrame,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    baseline: np.ndarray,
    *,
    tolerance_override: float | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Judge the candidate against the champion (or the baseline on a first run) on every configured slice.

    ``candidate``, ``champion`` and ``baseline`` are predictions for the rows of ``eval_frame`` (P(positive class) for
    classification). ``tolerance_override`` (the trigger form's value) replaces ``max_relative_regression`` of every
    guardrail that compares with the reference, except per-slice ``overrides``. ``seed`` drives the bootstrap of
    f1/precision/recall, so a rerun gives the same verdict.

    ``min_value``/``max_value`` are noise-aware too: a slice fails only when the candidate's value is below the floor
    (above the ceiling) with confidence, i.e. its one-sided bound is beyond the limit, Holm-corrected with the rest.
    """
    evaluation = config.evaluation
    if tolerance_override is not None and not tolerance_override >= 0:
        raise ValueError(f"tolerance_override must be a fraction >= 0 (0.05 allows 5% worse), got {tolerance_override}")
    y, candidate, champion, baseline = _inputs(config, eval_frame, candidate, champion, baseline)
    reference = champion if champion is not None else baseline
    threshold = None
    if config.task == "classification":
        threshold = threshold_at_fpr(y, champion, evaluation.threshold_fpr) if champion is not None else 0.5
    cut = 0.5 if threshold is None else threshold
    metrics = REGRESSION_METRICS if config.task == "regression" else CLASSIFICATION_METRICS
    undefined = {m: why for m in metrics if (why := undefined_reason(m, y)) is not None}
    overall = {
        name: _overall(metrics, undefined, y, p, cut)
        for name, p in {"candidate": candidate, "champion": champion, "baseline": baseline}.items()
    }

    families = slice_families(eval_frame, evaluation.slices)
    groups = [SliceGroups(f) for f in families]
    ids = [(f.label, slice_id) for f in families for slice_id in f.ids]
    rng = np.random.default_rng(seed)
    predictions = (candidate, reference, baseline)
    stats = [slice_stats(g.metric, y, predictions, groups, cut, rng) for g in evaluation.guardrails]
    # One family of tests for the whole run: every guardrail's raw p-values are Holm-adjusted together.
    raw = [
        _tests(g, s, ids, evaluation.min_slice_rows, tolerance_override)
        for g, s in zip(evaluation.guardrails, stats, strict=True)
    ]
    adjusted, tests = _holm_adjusted(raw)
    results = [
        _guardrail_result(g, s, t, ids, evaluation, has_champion=champion is not None, override=tolerance_override)
        for g, s, t in zip(evaluation.guardrails, stats, adjusted, strict=True)
    ]
    return EvaluationReport(
        city=config.city,
        model=config.model_name,
        task=config.task,
        primary_metric=evaluation.primary_metric,
        comparison="champion" if champion is not None else "baseline",
        confidence=evaluation.confidence,
        min_slice_rows=evaluation.min_slice_rows,
        threshold=threshold,
        tolerance_override=tolerance_override,
        rows=len(y),
        tests=tests,
        overall=overall,
        guardrails=tuple(results),
        undefined=undefined,
    )


def _overall(
    metrics: tuple[str, ...], undefined: dict[str, str], y: np.ndarray, predictions: np.ndarray | None, cut: float
) -> dict[str, float | None] | None:
    """Every metric of the task on all eval rows (None where undefined); None when there is no such model."""
    if predictions is None:
        return None
    return {m: None if m in undefined else _finite(compute(m, y, predictions, cut)) for m in metrics}


def _inputs(
    config: CityConfig,
    eval_frame: pd.DataFrame,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    baseline: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Target and predictions as float arrays, one value per eval row, checked."""
    if config.target not in eval_frame.columns:
        raise ValueError(f"the eval data has no target column {config.target!r} (the city config's `target`)")
    y = _checked("target column " + repr(config.target), eval_frame[config.target], len(eval_frame), config.task, True)
    candidate = _checked("candidate predictions", candidate, len(y), config.task, False)
    baseline = _checked("baseline predictions", baseline, len(y), config.task, False)
    if champion is not None:
        champion = _checked("champion predictions", champion, len(y), config.task, False)
    return y, candidate, champion, baseline


def _checked(what: str, values: Any, rows: int, task: str, labels: bool) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) != rows:
        raise ValueError(f"{what}: expected one value per eval row ({rows}), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: {int((~np.isfinite(array)).sum())} missing or infinite values; every row needs one")
    if task == "classification":
        if labels and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{what}: classification labels must be 0 or 1, got {np.unique(array)[:5].tolist()}")
        if not labels and ((array < 0) | (array > 1)).any():
            raise ValueError(f"{what}: must be probabilities of the positive class in [0, 1] (predict_proba[:, 1])")
    return array


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class _Tests:
    """Which slices a guardrail judges, the regression it allows on each, and the p-values of its regression and
    floor/ceiling tests (NaN: not tested); raw as computed, or Holm-adjusted over the run (``_holm_adjusted``)."""

    judged: np.ndarray
    allowed: np.ndarray
    p_regression: np.ndarray
    p_limit: np.ndarray


def _holm_adjusted(raw: list[_Tests]) -> tuple[list[_Tests], int]:
    """The guardrails' tests with Holm-adjusted p-values over all of them, and how many tests there were."""
    p_values = np.concatenate([np.empty(0), *(p for t in raw for p in (t.p_regression, t.p_limit))])
    tested = ~np.isnan(p_values)
    adjusted = np.full(len(p_values), np.nan)
    adjusted[tested] = holm(p_values[tested])
    result, offset = [], 0
    for t in raw:
        k = len(t.judged)
        result.append(_Tests(t.judged, t.allowed, adjusted[offset : offset + k], adjusted[offset + k : offset + 2 * k]))
        offset += 2 * k
    return result, int(tested.sum())


def _tolerance(guardrail: GuardrailConfig, slice_id: str, override: float | None) -> Tolerance | None:
    if slice_id in guardrail.overrides:
        return guardrail.overrides[slice_id]
    if guardrail.max_relative_regression is None and guardrail.max_absolute_regression is None:
        return None
    relative = guardrail.max_relative_regression if override is None else override
    return Tolerance(max_relative_regression=relative, max_absolute_regression=guardrail.max_absolute_regression)


def _allowed(tolerance: Tolerance, reference: float) -> float:
    """The larger of the allowed regressions in metric units; a tolerance with neither set allows none."""
    allowed = [0.0]
    if tolerance.max_relative_regression is not None:
        allowed.append(tolerance.max_relative_regression * abs(reference))
    if tolerance.max_absolute_regression is not None:
        allowed.append(tolerance.max_absolute_regression)
    return max(allowed)


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def _p_above(estimate: float, bound: float, se: float) -> float:
    """One-sided p-value of H0 "true value <= bound" for a normal estimate."""
    if not se > 0:
        return 0.0 if estimate > bound else 1.0
    return _upper_tail((estimate - bound) / se)


def _in_scope(guardrail: GuardrailConfig, slice_id: str) -> bool:
    return guardrail.scope == "slices" or slice_id == OVERALL


def _tests(
    guardrail: GuardrailConfig,
    stats: SliceStats,
    ids: list[tuple[str, str]],
    min_slice_rows: int,
    override: float | None,
) -> _Tests:
    k = len(ids)
    in_scope = np.array([_in_scope(guardrail, slice_id) for _, slice_id in ids], dtype=bool)
    judged = in_scope & (stats.rows >= min_slice_rows) & stats.defined
    allowed = np.full(k, np.nan)
    p_regression = np.full(k, np.nan)
    p_limit = np.full(k, np.nan)
    sign = -1.0 if guardrail.metric in HIGHER_IS_BETTER else 1.0
    for i in np.flatnonzero(judged):
        tolerance = _tolerance(guardrail, ids[i][1], override)
        if tolerance is not None:
            allowed[i] = _allowed(tolerance, stats.reference[i])
            p_regression[i] = _p_above(sign * stats.delta[i], allowed[i], stats.se_delta[i])
        limits = []
        if guardrail.min_value is not None:
            limits.append(_p_above(-stats.candidate[i], -guardrail.min_value, stats.se_candidate[i]))
        if guardrail.max_value is not None:
            limits.append(_p_above(stats.candidate[i], guardrail.max_value, stats.se_candidate[i]))
        if limits:
            p_limit[i] = min(limits)
    return _Tests(judged, allowed, p_regression, p_limit)


def _verdict(
    guardrail: GuardrailConfig, stats: SliceStats, tests: _Tests, i: int, evaluation: EvaluationConfig
) -> tuple[str, tuple[str, ...]]:
    """A slice's verdict and its reasons, from the Holm-adjusted p-values."""
    alpha = 1 - evaluation.confidence
    if not tests.judged[i]:
        return "too_small", (FEW_ROWS if stats.rows[i] < evaluation.min_slice_rows else UNDEFINED,)
    reasons = []
    if tests.p_regression[i] <= alpha:
        reasons.append(TOLERANCE)
    if tests.p_limit[i] <= alpha:
        if guardrail.min_value is not None and stats.candidate[i] < guardrail.min_value:
            reasons.append(MIN_VALUE)
        if guardrail.max_value is not None and stats.candidate[i] > guardrail.max_value:
            reasons.append(MAX_VALUE)
    return ("fail" if reasons else "pass"), tuple(reasons)


def _guardrail_result(
    guardrail: GuardrailConfig,
    stats: SliceStats,
    tests: _Tests,
    ids: list[tuple[str, str]],
    evaluation: EvaluationConfig,
    *,
    has_champion: bool,
    override: float | None,
) -> GuardrailResult:
    z = NormalDist().inv_cdf(1 - (1 - evaluation.confidence) / 2)
    rows = []
    for i, (family, slice_id) in enumerate(ids):
        if not _in_scope(guardrail, slice_id):
            continue
        verdict, reasons = _verdict(guardrail, stats, tests, i, evaluation)
        undefined = stats.undefined[i]
        shown = np.nan if undefined else 1.0  # an undefined metric's values mean nothing: reported as None
        delta, se = stats.delta[i] * shown, stats.se_delta[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = delta / abs(stats.reference[i])
        rows.append(
            SliceResult(
                slice=slice_id,
                family=family,
                rows=int(stats.rows[i]),
                candidate=_finite(stats.candidate[i] * shown),
                champion=_finite(stats.reference[i] * shown) if has_champion else None,
                baseline=_finite(stats.baseline[i] * shown),
                delta=_finite(delta),
                relative_delta=_finite(relative),
                ci_low=_finite(delta - z * se),
                ci_high=_finite(delta + z * se),
                allowed=_finite(tests.allowed[i]),
                p_value=_finite(tests.p_regression[i]),
                limit_p_value=_finite(tests.p_limit[i]),
                verdict=verdict,
                reasons=reasons,
                why_not_judged=(undefined or stats.untestable[i]) if verdict == "too_small" else None,
            )
        )
    relative = guardrail.max_relative_regression
    if override is not None and (relative is not None or guardrail.max_absolute_regression is not None):
        relative = override
    return GuardrailResult(
        metric=guardrail.metric,
        scope=guardrail.scope,
        method=stats.method,
        higher_is_better=guardrail.metric in HIGHER_IS_BETTER,
        max_relative_regression=relative,
        max_absolute_regression=guardrail.max_absolute_regression,
        min_value=guardrail.min_value,
        max_value=guardrail.max_value,
        overrides={k: v.model_dump() for k, v in guardrail.overrides.items()},
        slices=tuple(rows),
    )
