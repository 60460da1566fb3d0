"""Model metrics and their per-row decompositions.

Every value equals scikit-learn's on the same rows; the functions are re-implemented here because the guardrails need
the per-row pieces (losses, DeLong components, confusion indicators) to compute paired intervals for every slice at
once. Classification predictions are P(positive class) with 0/1 labels; a row is predicted positive when its score is
strictly above the threshold, as ``predict`` does at 0.5.
"""

from __future__ import annotations

import numpy as np

from airflow_ml_provider.config import CLASSIFICATION_METRICS, REGRESSION_METRICS

# Metrics that are the mean of a per-row value (``row_values``); rmse and r2 are functions of the mean squared error.
MEAN_METRICS = frozenset({"mae", "mape", "log_loss", "accuracy"})
# Metrics that need a decision threshold on the scores.
THRESHOLD_METRICS = frozenset({"accuracy", "f1", "precision", "recall"})

_EPS = np.finfo(np.float64).eps
# Regression metrics that the target can leave undefined (``undefined_reason``), so whether a guardrail on them judges
# anything depends on the data: `airflow-ml lint` warns about them. (roc_auc needs both classes, which only a tiny
# slice lacks.)
FRAGILE_METRICS = {
    "mape": "it is undefined wherever a target value is 0 (a percentage of 0): a slice with one zero target is not "
    "judged, and a target with many zeros (delays, counts) leaves it unjudged everywhere; mae or rmse always judge",
    "r2": "it is undefined where the target is constant (variance 0), e.g. a small or homogeneous slice, which is "
    "then not judged; it also moves with the slice's variance, not only with the model's error",
}


def _arrays(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D arrays of the same length, got shapes {y_true.shape} and {y_pred.shape}"
        )
    return y_true, y_pred


def row_values(metric: str, y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-row values whose mean is the metric (``MEAN_METRICS``) or the mean squared error (rmse, r2).

    These are what the paired tests difference row by row: absolute error, absolute percentage error, log loss,
    correctness at ``threshold``, squared error.
    """
    y_true, y_pred = _arrays(y_true, y_pred)
    if metric == "mae":
        return np.abs(y_pred - y_true)
    if metric == "mape":
        return np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), _EPS)
    if metric in ("rmse", "r2"):
        return (y_pred - y_true) ** 2
    if metric == "log_loss":
        p = np.clip(y_pred, _EPS, 1 - _EPS)
        return -np.where(y_true == 1, np.log(p), np.log(1 - p))
    if metric == "accuracy":
        return ((y_pred > threshold) == (y_true == 1)).astype(np.float64)
    raise ValueError(f"{metric!r} has no per-row decomposition; per-row metrics are {sorted(MEAN_METRICS)}, rmse, r2")


def undefined_reason(metric: str, y_true: np.ndarray) -> str | None:
    """Why ``metric`` has no meaningful value on these targets (None when it has one). scikit-learn returns a number
    anyway (mape divides by machine epsilon, r2 of a constant target is 0 or 1): reports say "undefined" instead."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if metric == "mape":
        return zero_targets_reason(int((np.abs(y_true) < _EPS).sum()), len(y_true))
    if metric == "r2":
        return constant_target_reason(len(y_true)) if len(y_true) < 2 or np.ptp(y_true) == 0 else None
    if metric == "roc_auc":
        positives = int((y_true == 1).sum())
        return one_class_reason(positives, len(y_true))
    return None


def zero_targets_reason(zeros: int, rows: int) -> str | None:
    return f"the target is 0 in {zeros:,} of {rows:,} rows" if zeros else None


def constant_target_reason(rows: int) -> str:
    return "fewer than 2 rows" if rows < 2 else "the target is constant"


def one_class_reason(positives: int, rows: int) -> str | None:
    if rows and 0 < positives < rows:
        return None
    return f"only one class: {'all' if positives else 'none'} of {rows:,} rows are positive"


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(row_values("mae", y_true, y_pred).mean())


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error as a fraction (0.1 is 10%), like scikit-learn's."""
    return float(row_values("mape", y_true, y_pred).mean())


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(row_values("rmse", y_true, y_pred).mean()))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination; 1.0 (perfect) or 0.0 when the target is constant, like scikit-learn's."""
    y_true, y_pred = _arrays(y_true, y_pred)
    sse = float(((y_true - y_pred) ** 2).sum())
    sst = float(((y_true - y_true.mean()) ** 2).sum())
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return 1 - sse / sst


def log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary cross-entropy with probabilities clipped to [eps, 1 - eps]."""
    return float(row_values("log_loss", y_true, y_pred).mean())


def roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney with ties counted half); NaN when only one class is present."""
    y_true, y_pred = _arrays(y_true, y_pred)
    positive = y_true == 1
    n_pos = int(positive.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _midranks(y_pred)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    run_ranks = (starts + ends + 1) / 2
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> tuple[int, int, int]:
    y_true, y_pred = _arrays(y_true, y_pred)
    predicted = y_pred > threshold
    actual = y_true == 1
    tp = int((predicted & actual).sum())
    return tp, int(predicted.sum()) - tp, int(actual.sum()) - tp


def _ratio(num: float, den: float) -> float:
    # scikit-learn's zero_division default: 0.0 when the denominator is empty.
    return num / den if den else 0.0


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    return float(row_values("accuracy", y_true, y_pred, threshold).mean())


def precision(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    tp, fp, _ = _confusion(y_true, y_pred, threshold)
    return _ratio(tp, tp + fp)


def recall(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    tp, _, fn = _confusion(y_true, y_pred, threshold)
    return _ratio(tp, tp + fn)


def f1(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    tp, fp, fn = _confusion(y_true, y_pred, threshold)
    return _ratio(2 * tp, 2 * tp + fp + fn)


_FUNCTIONS = {
    "mae": mae,
    "rmse": rmse,
    "mape": mape,
    "r2": r2,
    "roc_auc": roc_auc,
    "log_loss": log_loss,
}


def compute(metric: str, y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> float:
    """The named metric; ``threshold`` is used by accuracy, f1, precision and recall only."""
    if metric in THRESHOLD_METRICS:
        return {"accuracy": accuracy, "f1": f1, "precision": precision, "recall": recall}[metric](
            y_true, y_pred, threshold
        )
    if metric not in _FUNCTIONS:
        raise ValueError(f"unknown metric {metric!r}; use one of {[*REGRESSION_METRICS, *CLASSIFICATION_METRICS]}")
    return _FUNCTIONS[metric](y_true, y_pred)


def threshold_at_fpr(y_true: np.ndarray, y_score: np.ndarray, fpr: float) -> float:
    """The score threshold whose false-positive rate on these rows is the largest one not above ``fpr``.

    Taken from the champion's scores so that candidate and champion are compared at the operating point the business
    runs today. Rows scoring strictly above the threshold are positive. 0.5 when there are no negative rows.
    """
    y_true, y_score = _arrays(y_true, y_score)
    negatives = np.sort(y_score[y_true != 1])[::-1]
    if len(negatives) == 0:
        return 0.5
    return float(negatives[int(np.floor(fpr * len(negatives) + 1e-9))])
