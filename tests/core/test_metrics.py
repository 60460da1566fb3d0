import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_ml_provider.core import metrics


@pytest.fixture
def regression_rows():
    rng = np.random.default_rng(1)
    y = rng.normal(500, 100, 2000)
    y[:5] = 0.0  # mape divides by max(|y|, eps) like scikit-learn
    return y, y + rng.normal(0, 60, 2000)


@pytest.fixture
def classification_rows():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 3000)
    score = np.round(np.clip(0.3 * y + rng.random(3000) * 0.7, 0, 1), 2)  # rounded: many ties
    return y, score


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("mae", skm.mean_absolute_error),
        ("rmse", skm.root_mean_squared_error),
        ("mape", skm.mean_absolute_percentage_error),
        ("r2", skm.r2_score),
    ],
)
def test_regression_metrics_equal_sklearn(regression_rows, name, reference):
    y, pred = regression_rows
    assert metrics.compute(name, y, pred) == pytest.approx(reference(y, pred), rel=1e-12)


def test_r2_of_a_constant_target_follows_sklearn():
    y = np.full(10, 3.0)
    assert metrics.r2(y, y) == skm.r2_score(y, y) == 1.0
    assert metrics.r2(y, y + 1) == skm.r2_score(y, y + 1) == 0.0


@pytest.mark.parametrize("threshold", [0.5, 0.37])
def test_classification_metrics_equal_sklearn(classification_rows, threshold):
    y, score = classification_rows
    predicted = score > threshold
    assert metrics.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), rel=1e-12)
    assert metrics.log_loss(y, score) == pytest.approx(skm.log_loss(y, score), rel=1e-12)
    assert metrics.accuracy(y, score, threshold) == pytest.approx(skm.accuracy_score(y, predicted))
    assert metrics.f1(y, score, threshold) == pytest.approx(skm.f1_score(y, predicted))
    assert metrics.precision(y, score, threshold) == pytest.approx(skm.precision_score(y, predicted))
    assert metrics.recall(y, score, threshold) == pytest.approx(skm.recall_score(y, predicted))


def test_log_loss_clips_certain_mistakes_like_sklearn():
    y = np.array([0, 1, 1, 0])
    score = np.array([1.0, 0.0, 1.0, 0.0])
    assert metrics.log_loss(y, score) == pytest.approx(skm.log_loss(y, score))


def test_empty_predicted_positives_score_zero_like_sklearn():
    y = np.array([0, 1, 1, 0])
    score = np.zeros(4)
    assert metrics.precision(y, score) == skm.precision_score(y, score > 0.5, zero_division=0) == 0.0
    assert metrics.f1(y, score) == 0.0


def test_roc_auc_is_nan_with_one_class():
    assert np.isnan(metrics.roc_auc(np.ones(5), np.linspace(0, 1, 5)))


@pytest.mark.parametrize("name", ["mae", "mape", "log_loss", "accuracy"])
def test_row_values_average_to_the_metric(classification_rows, regression_rows, name):
    y, pred = classification_rows if name in ("log_loss", "accuracy") else regression_rows
    assert metrics.row_values(name, y, pred).mean() == pytest.approx(metrics.compute(name, y, pred))


def test_row_values_of_rmse_and_r2_are_squared_errors(regression_rows):
    y, pred = regression_rows
    np.testing.assert_allclose(metrics.row_values("rmse", y, pred), (y - pred) ** 2)
    np.testing.assert_allclose(metrics.row_values("r2", y, pred), (y - pred) ** 2)


def test_row_values_refuse_metrics_without_a_per_row_form():
    with pytest.raises(ValueError, match="roc_auc"):
        metrics.row_values("roc_auc", np.zeros(3), np.zeros(3))


def test_unknown_metric_and_shape_mismatch_are_explained():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        metrics.compute("auc", np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="same length"):
        metrics.mae(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("fpr", [0.01, 0.1, 0.29, 0.5])
def test_threshold_at_fpr_gives_the_largest_fpr_not_above_the_target(classification_rows, fpr):
    y, score = classification_rows
    threshold = metrics.threshold_at_fpr(y, score, fpr)
    negatives = score[y == 0]
    achieved = (negatives > threshold).mean()
    assert achieved <= fpr
    # Any lower threshold that is a score value would exceed the target.
    lower = negatives[negatives < threshold]
    if len(lower):
        assert (negatives > lower.max()).mean() > fpr


def test_threshold_without_negatives_is_one_half():
    assert metrics.threshold_at_fpr(np.ones(4), np.linspace(0, 1, 4), 0.1) == 0.5
