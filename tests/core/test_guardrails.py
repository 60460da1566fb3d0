import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from airflow_ml_provider.core.baseline import baseline_predictions
from airflow_ml_provider.core.guardrail_stats import holm
from airflow_ml_provider.core.guardrails import evaluate
from airflow_ml_provider.core.metrics import threshold_at_fpr
from airflow_ml_provider.core.report import render_markdown
from airflow_ml_provider.core.slices import slice_families
from airflow_ml_provider.core.verdicts import FIRST_RUN_NOTE

SKLEARN = {
    "mae": skm.mean_absolute_error,
    "rmse": skm.root_mean_squared_error,
    "mape": skm.mean_absolute_percentage_error,
    "r2": skm.r2_score,
    "roc_auc": skm.roc_auc_score,
    "log_loss": skm.log_loss,
}
THRESHOLDED = {
    "accuracy": skm.accuracy_score,
    "f1": skm.f1_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
}


def guardrail(metric, report):
    (found,) = [g for g in report.guardrails if g.metric == metric]
    return {s.slice: s for s in found.slices}


def slice_masks(frame, config):
    return {
        slice_id: family.codes == i
        for family in slice_families(frame, config.evaluation.slices)
        for i, slice_id in enumerate(family.ids)
    }


def test_regression_slice_values_equal_sklearn(make_config, rides, regression_predictions):
    config = make_config(
        guardrails=[{"metric": m, "max_relative_regression": 0.05} for m in ("mae", "rmse", "mape", "r2")]
    )
    frame, candidate, champion = regression_predictions(
        rides(n_districts=4, rows_per_district=300), np.random.default_rng(0)
    )
    baseline = np.full(len(frame), 700.0)
    report = evaluate(config, frame, candidate, champion, baseline)
    y = frame["eta_seconds"].to_numpy()
    for slice_id, mask in slice_masks(frame, config).items():
        for metric in ("mae", "rmse", "mape", "r2"):
            row = guardrail(metric, report)[slice_id]
            assert row.rows == mask.sum()
            for value, prediction in ((row.candidate, candidate), (row.champion, champion), (row.baseline, baseline)):
                assert value == pytest.approx(SKLEARN[metric](y[mask], prediction[mask]), rel=1e-9), (slice_id, metric)
    assert report.overall["candidate"]["mae"] == pytest.approx(skm.mean_absolute_error(y, candidate))


def test_classification_slice_values_equal_sklearn_at_the_champions_threshold(make_config, classification_data):
    metrics = ["roc_auc", "log_loss", "accuracy", "f1", "precision", "recall"]
    config = make_config(
        "classification",
        threshold_fpr=0.2,
        guardrails=[{"metric": m, "max_relative_regression": 0.05} for m in metrics],
    )
    frame, candidate, champion = classification_data()
    y = frame["late"].to_numpy()
    baseline = np.full(len(frame), y.mean())
    report = evaluate(config, frame, candidate, champion, baseline)
    threshold = threshold_at_fpr(y, champion, 0.2)
    assert report.threshold == threshold
    assert ((champion > threshold) & (y == 0)).sum() / (y == 0).sum() <= 0.2
    for slice_id, mask in slice_masks(frame, config).items():
        for metric in metrics:
            row = guardrail(metric, report)[slice_id]
            for value, prediction in ((row.candidate, candidate), (row.champion, champion)):
                if metric in THRESHOLDED:
                    expected = THRESHOLDED[metric](y[mask], prediction[mask] > threshold)
                else:
                    expected = SKLEARN[metric](y[mask], prediction[mask])
                assert value == pytest.approx(expected, rel=1e-9), (slice_id, metric)


def many_slices_config(make_config, **guardrail):
    return make_config(guardrails=[{"metric": "mae", **guardrail}, {"metric": "rmse", **guardrail}])


def test_equally_good_models_are_rarely_blocked(make_config, rides, regression_predictions):
    """(a) 200 seeds, 58 slices x 2 guardrails, zero tolerance (the worst case of H0): blocked in <= 7% of seeds,
    and the 95% interval of the overall mae difference covers the true 0 in about 95% of them."""
    config = many_slices_config(make_config, max_relative_regression=0.0)
    frame = rides(n_districts=48, rows_per_district=300)
    assert sum(len(f.ids) for f in slice_families(frame, config.evaluation.slices)) >= 50
    blocked = covered = 0
    for seed in range(200):
        data, candidate, champion = regression_predictions(frame, np.random.default_rng(seed))
        report = evaluate(config, data, candidate, champion, np.full(len(frame), 750.0))
        blocked += report.verdict == "fail"
        overall = guardrail("mae", report)["overall"]
        covered += overall.ci_low <= 0 <= overall.ci_high
    assert blocked / 200 <= 0.07
    assert 0.9 <= covered / 200 <= 0.99


def test_a_25_percent_mae_regression_in_one_500_row_slice_is_caught(make_config, rides, regression_predictions):
    """(b) With the default 2% tolerance and 59 slices, the regressed slice fails in >= 95% of 100 seeds."""
    config = many_slices_config(make_config, max_relative_regression=0.02)
    frame = pd.concat([rides(n_districts=48, rows_per_district=300), rides(n_districts=1, rows_per_district=500)])
    frame["district"] = [*frame["district"].iloc[:-500], *["mitte"] * 500]
    scale = np.where(frame["district"] == "mitte", 1.25, 1.0)
    caught = 0
    for seed in range(100):
        data, candidate, champion = regression_predictions(frame, np.random.default_rng(seed), candidate_scale=scale)
        report = evaluate(config, data, candidate, champion, np.full(len(frame), 750.0))
        caught += guardrail("mae", report)["district=mitte"].verdict == "fail"
    assert caught >= 95


def test_better_on_aggregate_but_wrecked_on_one_slice_is_blocked_and_named(make_config, rides, regression_predictions):
    """(c) The candidate wins overall but doubles its errors on one district: blocked, and the report says where."""
    frame = rides(n_districts=20, rows_per_district=400)
    scale = np.where(frame["district"] == "d07", 2.0, 0.85)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(3), candidate_scale=scale)
    report = evaluate(make_config(), data, candidate, champion, np.full(len(frame), 750.0))
    rows = guardrail("mae", report)
    assert rows["overall"].delta < 0 and rows["overall"].verdict == "pass"
    assert report.verdict == "fail"
    assert [s.slice for _, s in report.failures()] == ["district=d07"]
    first_line = render_markdown(report.to_dict()).splitlines()[0]
    assert first_line.startswith("BLOCKED: 1 slice regressed beyond tolerance: district=d07 (mae +")


def brute_force_delong_se(y, first, second):
    """DeLong's variance of AUC(first) - AUC(second) from the full pairwise comparison matrix."""
    components = []
    for score in (first, second):
        pos, neg = score[y == 1], score[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        components.append((psi.mean(axis=1), psi.mean(axis=0)))
    v10 = components[0][0] - components[1][0]
    v01 = components[0][1] - components[1][1]
    return math.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))


def test_delong_matches_the_pairwise_definition_on_every_slice(make_config, classification_data):
    """(e) Interval half-width / z equals DeLong's standard error computed from the definition, with ties."""
    config = make_config("classification", guardrails=[{"metric": "roc_auc", "max_relative_regression": 0.02}])
    frame, candidate, champion = classification_data(n=3000, seed=4)
    report = evaluate(config, frame, candidate, champion, np.full(len(frame), 0.3))
    y = frame["late"].to_numpy()
    z = 1.959963984540054
    for slice_id, mask in slice_masks(frame, config).items():
        row = guardrail("roc_auc", report)[slice_id]
        expected = brute_force_delong_se(y[mask], candidate[mask], champion[mask])
        assert (row.ci_high - row.ci_low) / (2 * z) == pytest.approx(expected, rel=1e-9), slice_id


def test_delong_agrees_with_a_paired_bootstrap(make_config, classification_data):
    """(e) The DeLong standard error is within 15% of a 400-resample paired bootstrap of the AUC difference."""
    config = make_config(
        "classification", slices=[], guardrails=[{"metric": "roc_auc", "max_relative_regression": 0.02}]
    )
    frame, candidate, champion = classification_data(n=4000, seed=5)
    y = frame["late"].to_numpy()
    row = guardrail("roc_auc", evaluate(config, frame, candidate, champion, np.full(len(y), 0.3)))["overall"]
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        deltas.append(skm.roc_auc_score(y[i], candidate[i]) - skm.roc_auc_score(y[i], champion[i]))
    assert (row.ci_high - row.ci_low) / (2 * 1.959963984540054) == pytest.approx(np.std(deltas, ddof=1), rel=0.15)


def test_too_small_slices_are_reported_but_never_judged(make_config, rides, regression_predictions):
    """(f) A wrecked 150-row slice is listed as too small with its values, never pass or fail, and last in the table."""
    frame = pd.concat([rides(n_districts=5, rows_per_district=400), rides(n_districts=1, rows_per_district=150)])
    frame["district"] = [*frame["district"].iloc[:-150], *["tiny"] * 150]
    scale = np.where(frame["district"] == "tiny", 5.0, 1.0)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0), candidate_scale=scale)
    report = evaluate(make_config(), data, candidate, champion, np.full(len(frame), 750.0))
    tiny = guardrail("mae", report)["district=tiny"]
    assert (tiny.verdict, tiny.reasons, tiny.rows, tiny.p_value) == ("too_small", ("few_rows",), 150, None)
    assert tiny.candidate > 3 * tiny.champion
    assert report.counts()["too_small"] >= 1
    assert "district=tiny" not in json.dumps(report.summary()["failed"])
    table = [line for line in render_markdown(report.to_dict()).splitlines() if line.startswith("| district=")]
    assert table[-1].startswith("| district=tiny | 150 |") and "too small" in table[-1]


def one_slice_regressed(rides, regression_predictions, factor):
    """Candidate errors exactly ``factor`` times the champion's on d02: a small but noise-free regression."""
    frame = rides(n_districts=5, rows_per_district=400)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0))
    y = data["eta_seconds"].to_numpy()
    candidate = np.where(frame["district"] == "d02", y + factor * (champion - y), candidate)
    return data, candidate, champion


def test_per_slice_override_of_zero_tolerance(make_config, rides, regression_predictions):
    """(g) A clear 1.5% regression passes the 2% tolerance but fails where the override allows none."""
    data, candidate, champion = one_slice_regressed(rides, regression_predictions, 1.015)
    baseline = np.full(len(data), 750.0)
    lenient = evaluate(make_config(), data, candidate, champion, baseline)
    assert guardrail("mae", lenient)["district=d02"].verdict == "pass"
    strict = make_config(
        guardrails=[
            {
                "metric": "mae",
                "max_relative_regression": 0.02,
                "overrides": {"district=d02": {"max_relative_regression": 0}},
            }
        ]
    )
    report = evaluate(strict, data, candidate, champion, baseline)
    row = guardrail("mae", report)["district=d02"]
    assert (row.verdict, row.allowed, row.reasons) == ("fail", 0.0, ("tolerance",))
    # The trigger form's tolerance replaces the relative tolerance everywhere except overrides.
    overridden = evaluate(strict, data, candidate, champion, baseline, tolerance_override=0.5)
    assert overridden.to_dict()["tolerance_override"] == 0.5
    assert guardrail("mae", overridden)["district=d02"].verdict == "fail"
    assert guardrail("mae", overridden)["overall"].allowed == pytest.approx(
        0.5 * guardrail("mae", report)["overall"].champion
    )


def test_absolute_and_relative_tolerance_allow_the_larger(make_config, rides, regression_predictions):
    data, candidate, champion = one_slice_regressed(rides, regression_predictions, 1.015)
    config = make_config(guardrails=[{"metric": "mae", "max_relative_regression": 0.0, "max_absolute_regression": 5.0}])
    rows = guardrail("mae", evaluate(config, data, candidate, champion, np.full(len(data), 750.0)))
    assert rows["district=d02"].allowed == 5.0
    assert rows["district=d02"].verdict == "pass"


def test_first_run_compares_with_the_baseline_and_applies_ceilings(make_config, rides, regression_predictions):
    """(h) No champion: the baseline is the reference, the report says so, and floors/ceilings still apply."""
    frame = rides(n_districts=5, rows_per_district=400)
    data, candidate, _ = regression_predictions(frame, np.random.default_rng(0))
    config = make_config(baseline={"strategy": "median"})
    baseline = baseline_predictions(config, data, data)
    report = evaluate(config, data, candidate, None, baseline)
    assert (report.verdict, report.comparison, report.to_dict()["note"]) == ("pass", "baseline", FIRST_RUN_NOTE)
    overall = guardrail("mae", report)["overall"]
    assert overall.champion is None and overall.baseline == pytest.approx(
        skm.mean_absolute_error(data["eta_seconds"], baseline)
    )
    assert overall.delta < 0
    assert report.overall["champion"] is None
    assert "first run" in render_markdown(report.to_dict())

    capped = make_config(guardrails=[{"metric": "mae", "max_relative_regression": 0.02, "max_value": 60.0}])
    blocked = evaluate(capped, data, candidate, None, baseline)
    assert blocked.verdict == "fail"
    assert guardrail("mae", blocked)["overall"].reasons == ("max_value",)


def test_floors_are_noise_aware(make_config, rides, regression_predictions):
    """A candidate whose r2 is a hair below the floor passes; one clearly below fails, naming the floor."""
    frame = rides(n_districts=5, rows_per_district=400)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0))
    y = data["eta_seconds"].to_numpy()
    r2 = skm.r2_score(y, candidate)
    baseline = np.full(len(y), 750.0)
    near = make_config(guardrails=[{"metric": "r2", "min_value": r2 + 0.005, "scope": "overall"}])
    assert evaluate(near, data, candidate, champion, baseline).verdict == "pass"
    far = make_config(guardrails=[{"metric": "r2", "min_value": r2 + 0.2, "scope": "overall"}])
    report = evaluate(far, data, candidate, champion, baseline)
    assert report.verdict == "fail"
    (rows,) = [g.slices for g in report.guardrails]
    assert [(s.slice, s.reasons) for s in rows] == [("overall", ("min_value",))]


def test_bootstrap_guardrail_is_seeded_and_catches_a_recall_wreck(make_config, classification_data):
    config = make_config("classification", guardrails=[{"metric": "recall", "max_relative_regression": 0.05}])
    frame, candidate, champion = classification_data(n=6000, seed=1)
    baseline = np.full(len(frame), 0.3)
    first = evaluate(config, frame, candidate, champion, baseline, seed=7)
    assert first.to_dict() == evaluate(config, frame, candidate, champion, baseline, seed=7).to_dict()
    assert first.verdict == "pass"
    wrecked = np.where(frame["district"] == "d03", candidate * 0.3, candidate)
    report = evaluate(config, frame, wrecked, champion, baseline, seed=7)
    assert report.failures()[0][1].slice == "district=d03"
    assert "bootstrap" in report.guardrails[0].method


def test_roc_auc_on_a_slice_with_one_class_is_not_measurable(make_config, classification_data):
    config = make_config("classification", min_slice_rows=10)
    frame, candidate, champion = classification_data(n=3000, seed=2)
    frame.loc[frame["district"] == "d01", "late"] = 0
    rows = guardrail("roc_auc", evaluate(config, frame, candidate, champion, np.full(len(frame), 0.3)))
    assert (rows["district=d01"].verdict, rows["district=d01"].reasons) == ("too_small", ("undefined",))


def test_overall_scope_judges_only_all_rows(make_config, rides, regression_predictions):
    config = make_config(guardrails=[{"metric": "mae", "max_relative_regression": 0.02, "scope": "overall"}])
    data, candidate, champion = regression_predictions(rides(n_districts=3), np.random.default_rng(0))
    report = evaluate(config, data, candidate, champion, np.full(len(data), 750.0))
    assert [s.slice for s in report.guardrails[0].slices] == ["overall"]
    assert report.tests == 1


def test_holm_adjusted_p_values():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm(np.array([0.2, 0.9, 0.6])), [0.6, 1.0, 1.0])


def test_report_serialises_and_summary_stays_small(make_config, regression_predictions):
    frame = pd.DataFrame(
        {"district": [f"a-very-long-district-name-number-{i:03d}-" * 3 for i in range(30) for _ in range(250)]}
    )
    frame["vehicle_type"], frame["pickup_hour"] = "car", 8
    scale = 3.0
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0), candidate_scale=scale)
    report = evaluate(make_config(), data, candidate, champion, np.full(len(frame), 750.0))
    assert report.counts()["failed"] == 30 + 4  # every district, car, rush hour, the morning band and overall
    json.dumps(report.to_dict(), allow_nan=False)
    summary = json.dumps(report.summary(), allow_nan=False)
    assert len(summary.encode()) < 2048
    assert len(report.summary()["failed"]) == 10


def test_inputs_are_checked_with_clear_messages(make_config, rides, regression_predictions, classification_data):
    data, candidate, champion = regression_predictions(rides(n_districts=2), np.random.default_rng(0))
    baseline = np.full(len(data), 750.0)
    config = make_config()
    with pytest.raises(ValueError, match="no target column 'eta_seconds'"):
        evaluate(config, data.drop(columns="eta_seconds"), candidate, champion, baseline)
    with pytest.raises(ValueError, match=r"champion predictions: expected one value per eval row \(800\)"):
        evaluate(config, data, candidate, champion[:-1], baseline)
    with pytest.raises(ValueError, match="tolerance_override must be a fraction >= 0"):
        evaluate(config, data, candidate, champion, baseline, tolerance_override=-0.1)
    with pytest.raises(ValueError, match="candidate predictions: 1 missing"):
        evaluate(config, data, np.r_[np.nan, candidate[1:]], champion, baseline)
    frame, score, champion_score = classification_data(n=600)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        evaluate(make_config("classification"), frame.assign(late=frame["late"] * 2), score, champion_score, score)
    with pytest.raises(ValueError, match=r"probabilities of the positive class"):
        evaluate(make_config("classification"), frame, score * 3, champion_score, score)


@pytest.mark.parametrize(
    ("task", "strategy", "expected"),
    [
        ("regression", "mean", 2.5),
        ("regression", "median", 2.0),
        ("classification", "mean", 0.75),
        ("classification", "majority", 1.0),
    ],
)
def test_baseline_strategies(make_config, task, strategy, expected):
    config = make_config(task, baseline={"strategy": strategy})
    target = [1, 2, 2, 5] if task == "regression" else [1, 1, 0, 1]
    train = pd.DataFrame({config.target: target})
    assert baseline_predictions(config, train, pd.DataFrame({"x": [0, 0, 0]})).tolist() == [expected] * 3


def test_baseline_from_a_heuristic_column(make_config):
    config = make_config(baseline={"strategy": "column", "column": "app_eta"})
    eval_frame = pd.DataFrame({"app_eta": [300, 420]})
    assert baseline_predictions(config, pd.DataFrame(), eval_frame).tolist() == [300.0, 420.0]
    with pytest.raises(ValueError, match="'app_eta' is not in the eval data"):
        baseline_predictions(config, pd.DataFrame(), pd.DataFrame({"x": [1]}))


@pytest.mark.parametrize("metric", ["mae", "rmse", "mape", "r2"])
def test_regression_intervals_agree_with_a_paired_bootstrap(make_config, rides, regression_predictions, metric):
    """The CLT / delta-method standard error of the difference is within 15% of a 400-resample paired bootstrap."""
    config = make_config(slices=[], guardrails=[{"metric": metric, "max_relative_regression": 0.02}])
    data, candidate, champion = regression_predictions(rides(n_districts=10), np.random.default_rng(6))
    y = data["eta_seconds"].to_numpy()
    row = guardrail(metric, evaluate(config, data, candidate, champion, np.full(len(y), 750.0)))["overall"]
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        deltas.append(SKLEARN[metric](y[i], candidate[i]) - SKLEARN[metric](y[i], champion[i]))
    assert (row.ci_high - row.ci_low) / (2 * 1.959963984540054) == pytest.approx(np.std(deltas, ddof=1), rel=0.15)


def test_f1_bootstrap_agrees_with_a_row_bootstrap(make_config, classification_data):
    """The confusion-cell Poisson bootstrap gives the standard error a plain row bootstrap gives, within 20%."""
    config = make_config("classification", slices=[], guardrails=[{"metric": "f1", "max_relative_regression": 0.02}])
    frame, candidate, champion = classification_data(n=6000, seed=3)
    report = evaluate(config, frame, candidate, champion, np.full(len(frame), 0.3))
    row = guardrail("f1", report)["overall"]
    y, cut = frame["late"].to_numpy(), report.threshold
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        deltas.append(skm.f1_score(y[i], candidate[i] > cut) - skm.f1_score(y[i], champion[i] > cut))
    assert (row.ci_high - row.ci_low) / (2 * 1.959963984540054) == pytest.approx(np.std(deltas, ddof=1), rel=0.2)
