"""Per-slice statistics for the guardrails: each model's metric value and the standard errors of the paired
difference, for every slice of every family at once. The decisions (tolerances, Holm, verdicts) are in guardrails.py.

How each metric is tested, cheapest first:

- mae, mape, log_loss, accuracy are means of per-row values: a normal (CLT) test on the per-row differences, with the
  sums for every slice of a family taken in one ``np.bincount`` pass (cost linear in rows, not slices x rows);
- rmse: the same sums, with the delta method for the square root;
- r2 is ``1 - mse / var(y)`` with the slice's target variance shared by both models: the paired mse test, rescaled;
- roc_auc: DeLong's paired test, with per-slice midranks from one sort per model and family;
- f1, precision, recall: a seeded paired Poisson bootstrap (``BOOTSTRAP_RESAMPLES`` resamples) with a normal interval
  from the bootstrap standard error. This is the slow path: the only one that resamples, so its p-values carry Monte
  Carlo noise (seeded, so a rerun agrees). It stays linear in rows by resampling per-slice confusion-cell counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from airflow_ml_provider.core.metrics import (
    MEAN_METRICS,
    constant_target_reason,
    one_class_reason,
    row_values,
    zero_targets_reason,
)
from airflow_ml_provider.core.slices import SliceFamily

BOOTSTRAP_RESAMPLES = 200
_EPS = np.finfo(np.float64).eps
_FEW_OF_A_CLASS = "fewer than 2 positive or 2 negative rows: no interval"


class SliceGroups:
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


@dataclass(frozen=True)
class SliceStats:
    """One metric per slice, arrays aligned with the slice ids (overall first once families are joined): each model's
    value and the standard errors of the paired delta and of the candidate's value. ``undefined`` says why the metric
    itself has no meaning on a slice (its values are then not reported), ``untestable`` why it has no interval; both
    None where the slice can be judged."""

    rows: np.ndarray
    candidate: np.ndarray
    reference: np.ndarray
    baseline: np.ndarray
    se_delta: np.ndarray
    se_candidate: np.ndarray
    undefined: tuple[str | None, ...]
    untestable: tuple[str | None, ...]
    method: str = ""

    @property
    def delta(self) -> np.ndarray:
        return self.candidate - self.reference

    @property
    def defined(self) -> np.ndarray:
        return np.array([u is None and t is None for u, t in zip(self.undefined, self.untestable, strict=True)])

    @classmethod
    def joined(cls, parts: Sequence[SliceStats], method: str) -> SliceStats:
        """The families' stats end to end, in family order."""
        arrays = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in ("rows", "candidate", "reference", "baseline", "se_delta", "se_candidate")
        }
        return cls(
            **arrays,
            undefined=tuple(why for p in parts for why in p.undefined),
            untestable=tuple(why for p in parts for why in p.untestable),
            method=method,
        )


def _few_rows(rows: np.ndarray) -> tuple[str | None, ...]:
    """An interval needs at least 2 rows."""
    return tuple("fewer than 2 rows: no interval" if n < 2 else None for n in rows.tolist())


def slice_stats(
    metric: str,
    y: np.ndarray,
    predictions: tuple[np.ndarray, np.ndarray, np.ndarray],
    groups: Sequence[SliceGroups],
    threshold: float,
    rng: np.random.Generator,
) -> SliceStats:
    """``metric`` on every slice of ``groups`` for (candidate, reference, baseline) ``predictions``."""
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
    return SliceStats.joined(parts, name)


def _moment_stats(metric: str, y: np.ndarray, values: tuple[np.ndarray, ...], g: SliceGroups) -> SliceStats:
    """Metrics that are a function of a per-row mean (``row_values`` of candidate, reference, baseline); the paired
    variance comes from the linearised difference."""
    rows = g.rows
    means = [g.mean(v) for v in values]
    why: list[str | None] = [None] * g.k  # why the metric is undefined on each slice
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "rmse":
            points = [np.sqrt(m) for m in means]
            slopes = [np.where(m > 0, 0.5 / np.sqrt(m), 0.0) for m in means[:2]]
        elif metric == "r2":
            y_mean = g.mean(y)
            y_var = g.mean((y - g.at(y_mean)) ** 2)
            points = [np.where(y_var > 0, 1 - m / y_var, np.where(m == 0, 1.0, 0.0)) for m in means]
            slopes = [-1 / y_var, -1 / y_var]
            why = [None if v > 0 or n < 2 else constant_target_reason(int(n)) for v, n in zip(y_var, rows, strict=True)]
        else:
            if metric == "mape":
                zeros = g.sum((np.abs(y) < _EPS).astype(np.float64))
                why = [zero_targets_reason(int(z), int(n)) for z, n in zip(zeros, rows, strict=True)]
            points = means
            slopes = [np.ones(g.k), np.ones(g.k)]
        linear = g.at(slopes[0]) * values[0] - g.at(slopes[1]) * values[1]
        var_delta = g.variance(linear, slopes[0] * means[0] - slopes[1] * means[1])
        var_candidate = g.variance(values[0], means[0]) * slopes[0] ** 2
        return SliceStats(
            rows=rows,
            candidate=points[0],
            reference=points[1],
            baseline=points[2],
            se_delta=np.sqrt(var_delta / rows),
            se_candidate=np.sqrt(var_candidate / rows),
            undefined=tuple(why),
            untestable=_few_rows(rows),
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
    y: np.ndarray, predictions: tuple[np.ndarray, ...], orders: list[np.ndarray], g: SliceGroups
) -> SliceStats:
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
    counts = list(zip(n_pos.tolist(), n_neg.tolist(), strict=True))
    one_class = [one_class_reason(int(p), int(p + n)) if p + n >= 2 else None for p, n in counts]
    few = [_FEW_OF_A_CLASS if min(p, n) < 2 else None for p, n in counts]
    return SliceStats(
        rows=g.rows,
        candidate=aucs[0],
        reference=aucs[1],
        baseline=aucs[2],
        se_delta=np.sqrt(var_delta),
        se_candidate=np.sqrt(var_candidate),
        undefined=tuple(one_class),
        untestable=tuple(f or r for f, r in zip(few, _few_rows(g.rows), strict=True)),
    )


def _from_confusion(metric: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """precision, recall or f1 from counts, 0 where the denominator is empty (scikit-learn's zero_division)."""
    num, den = {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn)}[metric]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _bootstrap_stats(
    metric: str,
    y: np.ndarray,
    predictions: tuple[np.ndarray, ...],
    groups: Sequence[SliceGroups],
    threshold: float,
    rng: np.random.Generator,
) -> list[SliceStats]:
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
            SliceStats(
                rows=g.rows,
                candidate=candidate,
                reference=reference,
                baseline=_from_confusion(metric, *baseline_counts),
                se_delta=(candidate_draws - reference_draws).std(axis=0, ddof=1),
                se_candidate=candidate_draws.std(axis=0, ddof=1),
                undefined=(None,) * g.k,
                untestable=_few_rows(g.rows),
            )
        )
    return parts


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values: reject where adjusted <= alpha keeps the family-wise error rate at alpha."""
    p_values = np.asarray(p_values, dtype=np.float64)
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p_values[order]), 1.0)
    return adjusted
