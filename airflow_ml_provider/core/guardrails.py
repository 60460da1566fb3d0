"""Noise-aware guardrail verdicts: is the candidate worse than the champion on some slice, beyond tolerance?

Every check is a one-sided test on the same eval rows for both models (paired), and a slice fails only when the test
rejects "the regression is within tolerance" after a Holm correction over every test of the run (all guardrails x
slices x rules). So with 60 slices, two equally good models are blocked in about ``1 - confidence`` of runs at most,
while a real regression on a slice with enough rows is still caught.

How each metric is tested, cheapest first:

- mae, mape, log_loss, accuracy are means of per-row values: a normal (CLT) test on the per-row differences, with the
  sums for every slice of a family taken in one ``np.bincount`` pass (cost linear in rows, not slices x rows);
- rmse: the same sums, with the delta method for the square root;
- r2 is ``1 - mse / var(y)`` with the slice's target variance shared by both models: the paired mse test, rescaled;
- roc_auc: DeLong's paired test, with per-slice midranks from one sort per model and family;
- f1, precision, recall: a seeded paired Poisson bootstrap (``BOOTSTRAP_RESAMPLES`` resamples) with a normal interval
  from the bootstrap standard error. This is the slow path: the only one that resamples, so its p-values carry Monte
  Carlo noise (seeded, so a rerun agrees). It stays linear in rows by resampling per-slice confusion-cell counts.

Intervals are two-sided at ``confidence`` for each slice on its own; verdicts use the Holm-adjusted p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
from airflow_ml_provider.core.metrics import MEAN_METRICS, compute, row_values, threshold_at_fpr
from airflow_ml_provider.core.slices import OVERALL, SliceFamily, slice_families

BOOTSTRAP_RESAMPLES = 200
FIRST_RUN_NOTE = "first run: compared with the naive baseline, no champion yet"
# Reasons a slice row carries: why it failed, or why it could not be judged.
TOLERANCE, MIN_VALUE, MAX_VALUE, FEW_ROWS, UNDEFINED = "tolerance", "min_value", "max_value", "few_rows", "undefined"


@dataclass(frozen=True)
class SliceResult:
    """One guardrail on one slice. ``delta`` is candidate minus reference (champion, or baseline on a first run).

    ``allowed`` is the tolerated regression in metric units (None: no comparison rule), ``p_value`` and
    ``limit_p_value`` are Holm-adjusted p-values of the regression and floor/ceiling tests.
    """

    slice: str
    family: str
    rows: int
    candidate: float | None
    champion: float | None
    baseline: float | None
    delta: float | None
    relative_delta: float | None
    ci_low: float | None
    ci_high: float | None
    allowed: float | None
    p_value: float | None
    limit_p_value: float | None
    verdict: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class GuardrailResult:
    metric: str
    scope: str
    method: str
    higher_is_better: bool
    max_relative_regression: float | None
    max_absolute_regression: float | None
    min_value: float | None
    max_value: float | None
    overrides: dict[str, dict[str, float | None]]
    slices: tuple[SliceResult, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """The guardrail verdicts of one run; ``to_dict()`` is what the report renderers and MLflow store."""

    city: str
    model: str
    task: str
    primary_metric: str
    comparison: str
    confidence: float
    min_slice_rows: int
    threshold: float | None
    tolerance_override: float | None
    rows: int
    tests: int
    overall: dict[str, dict[str, float | None] | None]
    guardrails: tuple[GuardrailResult, ...]

    @property
    def verdict(self) -> str:
        """``fail`` when any slice of any guardrail failed, else ``pass``."""
        return "fail" if self.failures() else "pass"

    def failures(self) -> list[tuple[GuardrailResult, SliceResult]]:
        """Failed (guardrail, slice) pairs, the largest relative regression first."""
        failed = [(g, s) for g in self.guardrails for s in g.slices if s.verdict == "fail"]
        return sorted(failed, key=lambda gs: -_regression_share(gs[0], gs[1]))

    def counts(self) -> dict[str, int]:
        """Distinct slice ids: judged (passed or failed on some guardrail), failed on any, never judged (too small)."""
        every = {s.slice for g in self.guardrails for s in g.slices}
        judged = {s.slice for g in self.guardrails for s in g.slices if s.verdict != "too_small"}
        failed = {s.slice for g in self.guardrails for s in g.slices if s.verdict == "fail"}
        return {
            "slices": len(every),
            "judged": len(judged),
            "passed": len(judged - failed),
            "failed": len(failed),
            "too_small": len(every - judged),
            "tests": self.tests,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to re-render the report, JSON-serialisable (missing values are None)."""
        data = asdict(self)
        data["verdict"] = self.verdict
        data["note"] = FIRST_RUN_NOTE if self.comparison == "baseline" else None
        data["counts"] = self.counts()
        data["guardrails"] = [
            {**g, "slices": [{**s, "reasons": list(s["reasons"])} for s in g["slices"]]} for g in data["guardrails"]
        ]
        return data

    def summary(self) -> dict[str, Any]:
        """A compact dict for XCom (well under 2 KB): verdict, primary metric overall, counts, up to 10 failures."""
        primary = self.primary_metric
        counts = self.counts()
        return {
            "verdict": self.verdict,
            "comparison": self.comparison,
            "primary_metric": primary,
            "candidate": (self.overall["candidate"] or {}).get(primary),
            "champion": (self.overall["champion"] or {}).get(primary),
            "baseline": (self.overall["baseline"] or {}).get(primary),
            "slices_judged": counts["judged"],
            "slices_failed": counts["failed"],
            "slices_too_small": counts["too_small"],
            "failed": [
                {
                    "slice": s.slice if len(s.slice) <= 60 else s.slice[:57] + "...",
                    "metric": g.metric,
                    "delta": _round(s.delta),
                    "relative_delta": _round(s.relative_delta),
                }
                for g, s in self.failures()[:10]
            ],
        }


def _regression_share(guardrail: GuardrailResult, row: SliceResult) -> float:
    if row.relative_delta is None:
        return 0.0
    return -row.relative_delta if guardrail.higher_is_better else row.relative_delta


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


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
    if config.target not in eval_frame.columns:
        raise ValueError(f"the eval data has no target column {config.target!r} (the city config's `target`)")
    y = _checked("target column " + repr(config.target), eval_frame[config.target], len(eval_frame), config.task, True)
    candidate = _checked("candidate predictions", candidate, len(y), config.task, False)
    baseline = _checked("baseline predictions", baseline, len(y), config.task, False)
    if champion is not None:
        champion = _checked("champion predictions", champion, len(y), config.task, False)
    reference = champion if champion is not None else baseline

    threshold = None
    if config.task == "classification":
        threshold = threshold_at_fpr(y, champion, evaluation.threshold_fpr) if champion is not None else 0.5
    cut = 0.5 if threshold is None else threshold
    metrics = REGRESSION_METRICS if config.task == "regression" else CLASSIFICATION_METRICS
    predictions = {"candidate": candidate, "champion": champion, "baseline": baseline}
    overall = {
        name: None if p is None else {m: _finite(compute(m, y, p, cut)) for m in metrics}
        for name, p in predictions.items()
    }

    families = slice_families(eval_frame, evaluation.slices)
    groups = [_Groups(f) for f in families]
    rng = np.random.default_rng(seed)
    stats = [
        _slice_stats(g.metric, y, (candidate, reference, baseline), groups, cut, rng) for g in evaluation.guardrails
    ]

    # One family of tests for the whole run: collect raw p-values, Holm-adjust them together, then assemble.
    ids = [(f.label, slice_id) for f in families for slice_id in f.ids]
    plans = [
        _plan(g, s, ids, evaluation.min_slice_rows, tolerance_override)
        for g, s in zip(evaluation.guardrails, stats, strict=True)
    ]
    raw = np.concatenate([np.empty(0), *(p for plan in plans for p in (plan.p_regression, plan.p_limit))])
    tested = ~np.isnan(raw)
    adjusted = np.full(len(raw), np.nan)
    adjusted[tested] = holm(raw[tested])
    offset = 0
    for plan in plans:
        k = len(ids)
        plan.p_regression, plan.p_limit = adjusted[offset : offset + k], adjusted[offset + k : offset + 2 * k]
        offset += 2 * k
    results = [
        _guardrail_result(g, s, plan, ids, evaluation, has_champion=champion is not None, override=tolerance_override)
        for g, s, plan in zip(evaluation.guardrails, stats, plans, strict=True)
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
        tests=int(tested.sum()),
        overall=overall,
        guardrails=tuple(results),
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values: reject where adjusted <= alpha keeps the family-wise error rate at alpha."""
    p_values = np.asarray(p_values, dtype=np.float64)
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p_values[order]), 1.0)
    return adjusted


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


class _Groups:
    """Per-slice sums of per-row values for one slice family, all slices in one ``np.bincount`` pass."""

    def __init__(self, family: SliceFamily):
        self.family = family
        self.k = len(family.ids)
        self._bins = family.codes + 1  # bin 0 collects rows in no slice and is dropped
        self.rows = self.sum(None)

    def sum(self, weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(self._bins, weights, minlength=self.k + 1)[1:].astype(np.float64)

    def mean(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(values) / self.rows

    def at(self, per_slice: np.ndarray) -> np.ndarray:
        """Each row's slice value (NaN for rows in no slice)."""
        return np.r_[np.nan, per_slice][self._bins]

    def variance(self, values: np.ndarray, mean: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sample variance (ddof=1) per slice, centred on the slice mean first for accuracy; ``mask`` (0/1) keeps
        only some rows of each slice."""
        centred = values - self.at(mean)
        if mask is not None:
            centred *= mask
        rows = self.rows if mask is None else self.sum(mask)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(centred**2) / (rows - 1)


@dataclass
class _Stats:
    """Per-slice arrays over all families (overall first): values, paired delta and standard errors."""

    method: str
    rows: np.ndarray
    candidate: np.ndarray
    reference: np.ndarray
    baseline: np.ndarray
    se_delta: np.ndarray
    se_candidate: np.ndarray
    defined: np.ndarray

    @property
    def delta(self) -> np.ndarray:
        return self.candidate - self.reference


def _slice_stats(
    metric: str,
    y: np.ndarray,
    predictions: tuple[np.ndarray, np.ndarray, np.ndarray],
    groups: Sequence[_Groups],
    threshold: float,
    rng: np.random.Generator,
) -> _Stats:
    if metric in MEAN_METRICS or metric in ("rmse", "r2"):
        values = tuple(row_values(metric, y, p, threshold) for p in predictions)
        parts = [_moment_stats(metric, y, values, g) for g in groups]
        method = {"rmse": "paired z-test on squared errors, delta method", "r2": "paired z-test on squared errors"}
        name = method.get(metric, "paired z-test on per-row values")
    elif metric == "roc_auc":
        orders = [np.argsort(p, kind="stable") for p in predictions]
        parts = [_delong_stats(y, predictions, orders, g) for g in groups]
        name = "DeLong paired test"
    else:
        parts = _bootstrap_stats(metric, y, predictions, groups, threshold, rng)
        name = f"paired Poisson bootstrap, {BOOTSTRAP_RESAMPLES} resamples"
    return _Stats(name, *(np.concatenate(columns) for columns in zip(*parts, strict=True)))


def _moment_stats(metric: str, y: np.ndarray, values: tuple[np.ndarray, ...], g: _Groups) -> tuple[np.ndarray, ...]:
    """Metrics that are a function of a per-row mean (``row_values`` of candidate, reference, baseline); the paired
    variance comes from the linearised difference."""
    rows = g.rows
    means = [g.mean(v) for v in values]
    defined = rows >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "rmse":
            points = [np.sqrt(m) for m in means]
            slopes = [np.where(m > 0, 0.5 / np.sqrt(m), 0.0) for m in means[:2]]
        elif metric == "r2":
            y_mean = g.mean(y)
            y_var = g.mean((y - g.at(y_mean)) ** 2)
            points = [np.where(y_var > 0, 1 - m / y_var, np.where(m == 0, 1.0, 0.0)) for m in means]
            slopes = [-1 / y_var, -1 / y_var]
            defined &= y_var > 0
        else:
            points = means
            slopes = [np.ones(g.k), np.ones(g.k)]
        linear = g.at(slopes[0]) * values[0] - g.at(slopes[1]) * values[1]
        var_delta = g.variance(linear, slopes[0] * means[0] - slopes[1] * means[1])
        var_candidate = g.variance(values[0], means[0]) * slopes[0] ** 2
        return (
            rows,
            points[0],
            points[1],
            points[2],
            np.sqrt(var_delta / rows),
            np.sqrt(var_candidate / rows),
            defined,
        )


def _group_midranks(codes: np.ndarray, x: np.ndarray, order: np.ndarray) -> np.ndarray:
    """1-based midranks of ``x`` within each code, given ``order`` that sorts ``x``."""
    # Small integer codes let numpy's stable sort use a radix sort: linear, after the one sort of the scores.
    small = codes.astype(np.int16 if codes.max(initial=0) < 2**15 else np.int64)
    o = order[np.argsort(small[order], kind="stable")]
    cs, xs = codes[o], x[o]
    n = len(o)
    new_group = np.r_[True, cs[1:] != cs[:-1]]
    starts = np.flatnonzero(new_group | np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    group_starts = np.flatnonzero(new_group)
    run_group_start = group_starts[np.searchsorted(group_starts, starts, side="right") - 1]
    ranks = np.empty(n)
    ranks[o] = np.repeat((starts + ends + 1) / 2 - run_group_start, ends - starts)
    return ranks


def _delong_stats(
    y: np.ndarray, predictions: tuple[np.ndarray, ...], orders: list[np.ndarray], g: _Groups
) -> tuple[np.ndarray, ...]:
    """DeLong et al. (1988): AUC per slice and the variance of its paired difference from the structural components.

    A positive row's component is the share of the slice's negatives it outscores, a negative row's the share of
    positives it does not; both come from midranks within (slice) minus midranks within (slice, class).
    """
    positive = y == 1
    n_pos = g.sum(positive.astype(np.float64))
    n_neg = g.rows - n_pos
    codes = g.family.codes
    by_class = codes * 2 + positive
    components = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for p, order in zip(predictions, orders, strict=True):
            beaten = _group_midranks(codes, p, order) - _group_midranks(by_class, p, order)
            components.append(np.where(positive, beaten / g.at(n_neg), 1 - beaten / g.at(n_pos)))
        pos_mask, neg_mask = positive.astype(np.float64), (~positive).astype(np.float64)
        aucs = [g.sum(c * pos_mask) / n_pos for c in components]

        def variance(component: np.ndarray) -> np.ndarray:
            var_pos = g.variance(component, g.sum(component * pos_mask) / n_pos, pos_mask)
            var_neg = g.variance(component, g.sum(component * neg_mask) / n_neg, neg_mask)
            return var_pos / n_pos + var_neg / n_neg

        var_delta = variance(components[0] - components[1])
        var_candidate = variance(components[0])
    defined = (n_pos >= 2) & (n_neg >= 2)
    return g.rows, aucs[0], aucs[1], aucs[2], np.sqrt(var_delta), np.sqrt(var_candidate), defined


def _from_confusion(metric: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """precision, recall or f1 from counts, 0 where the denominator is empty (scikit-learn's zero_division)."""
    num, den = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}[metric]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _bootstrap_stats(
    metric: str,
    y: np.ndarray,
    predictions: tuple[np.ndarray, ...],
    groups: Sequence[_Groups],
    threshold: float,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, ...]]:
    """Seeded paired Poisson bootstrap of f1/precision/recall for every slice.

    These metrics depend only on how many rows of a slice fall in each joint (candidate, reference) confusion cell
    (4 x 4 cells), and a sum of independent Poisson(1) row weights is Poisson(cell count), so each resample draws 16
    counts per slice instead of a weight per row: exact for the Poisson bootstrap, linear in rows.
    """
    actual = y == 1
    cells = [2 * (p > threshold) + actual for p in predictions]  # 0 tn, 1 fn, 2 fp, 3 tp
    joint = 4 * cells[0] + cells[1]
    candidate_cell, reference_cell = np.arange(16) // 4, np.arange(16) % 4
    parts = []
    for g in groups:
        counts = np.bincount(g.family.codes * 16 + joint + 16, minlength=(g.k + 1) * 16).reshape(g.k + 1, 16)[1:]
        resampled = rng.poisson(counts, size=(BOOTSTRAP_RESAMPLES, *counts.shape))
        values = []
        for table in (counts, resampled):
            values.append(
                [
                    _from_confusion(metric, *(table[..., model_cell == c].sum(axis=-1) for c in (3, 2, 1)))
                    for model_cell in (candidate_cell, reference_cell)
                ]
            )
        baseline_counts = [g.sum((cells[2] == c) * 1.0) for c in (3, 2, 1)]
        (candidate, reference), (candidate_draws, reference_draws) = values
        parts.append(
            (
                g.rows,
                candidate,
                reference,
                _from_confusion(metric, *baseline_counts),
                (candidate_draws - reference_draws).std(axis=0, ddof=1),
                candidate_draws.std(axis=0, ddof=1),
                g.rows >= 2,
            )
        )
    return parts


@dataclass
class _Plan:
    """Which tests a guardrail runs on which slice, with their p-values (NaN: not tested), raw until ``evaluate``
    replaces them with the Holm-adjusted ones."""

    judged: np.ndarray
    allowed: np.ndarray
    p_regression: np.ndarray
    p_limit: np.ndarray


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


def _plan(
    guardrail: GuardrailConfig,
    stats: _Stats,
    ids: list[tuple[str, str]],
    min_slice_rows: int,
    override: float | None,
) -> _Plan:
    k = len(ids)
    in_scope = np.array([guardrail.scope == "slices" or slice_id == OVERALL for _, slice_id in ids])
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
    return _Plan(judged, allowed, p_regression, p_limit)


def _guardrail_result(
    guardrail: GuardrailConfig,
    stats: _Stats,
    plan: _Plan,
    ids: list[tuple[str, str]],
    evaluation: EvaluationConfig,
    *,
    has_champion: bool,
    override: float | None,
) -> GuardrailResult:
    alpha = 1 - evaluation.confidence
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p_regression, p_limit = plan.p_regression, plan.p_limit
    rows = []
    for i, (family, slice_id) in enumerate(ids):
        if not (guardrail.scope == "slices" or slice_id == OVERALL):
            continue
        reasons: list[str] = []
        if not plan.judged[i]:
            verdict = "too_small"
            reasons.append(FEW_ROWS if stats.rows[i] < evaluation.min_slice_rows else UNDEFINED)
        else:
            if p_regression[i] <= alpha:
                reasons.append(TOLERANCE)
            if p_limit[i] <= alpha:
                if guardrail.min_value is not None and stats.candidate[i] < guardrail.min_value:
                    reasons.append(MIN_VALUE)
                if guardrail.max_value is not None and stats.candidate[i] > guardrail.max_value:
                    reasons.append(MAX_VALUE)
            verdict = "fail" if reasons else "pass"
        delta, se = stats.delta[i], stats.se_delta[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = delta / abs(stats.reference[i])
        rows.append(
            SliceResult(
                slice=slice_id,
                family=family,
                rows=int(stats.rows[i]),
                candidate=_finite(stats.candidate[i]),
                champion=_finite(stats.reference[i]) if has_champion else None,
                baseline=_finite(stats.baseline[i]),
                delta=_finite(delta),
                relative_delta=_finite(relative),
                ci_low=_finite(delta - z * se),
                ci_high=_finite(delta + z * se),
                allowed=_finite(plan.allowed[i]),
                p_value=_finite(p_regression[i]),
                limit_p_value=_finite(p_limit[i]),
                verdict=verdict,
                reasons=tuple(reasons),
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
