"""validate(): built-in checks, the Great Expectations suite, the outcome's texts, and a corpus of bad inputs.

Great Expectations takes ~15 s to import: every test that runs it is in this module and it is imported once.
Tests of built-in checks use the config without expectations, which never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import bad_inputs
import numpy as np
import pandas as pd
import pytest
from bad_inputs import CORPUS, DATA_END, EVAL_START

from airflow_ml_provider.config import CityConfig, ExpectationConfig, load_city_config
from airflow_ml_provider.core.snapshot import to_parquet_bytes, window_rows
from airflow_ml_provider.core.storage import IntegrityError, sha256_hex, verified
from airflow_ml_provider.core.validation import ValidationOutcome, expectation_problems, validate
from airflow_ml_provider.core.windows import Windows
from airflow_ml_provider.hooks.dataset import DatasetError, DatasetHook

WINDOWS = Windows.ending_at(DATA_END, train_days=90, eval_days=14)
PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"


def _with(config: CityConfig, section: str, **changes) -> CityConfig:
    """The config with fields of one section replaced (no re-validation: lets tests build what YAML forbids)."""
    return config.model_copy(update={section: getattr(config, section).model_copy(update=changes)})


@pytest.fixture(scope="module")
def config() -> CityConfig:
    """berlin.yaml merged with _defaults.yaml: five expectations, one with severity warning."""
    return load_city_config("berlin", PROJECT_CONFIGS)


@pytest.fixture(scope="module")
def builtin(config: CityConfig) -> CityConfig:
    """The same city without expectations: only the built-in checks run and GE is not imported."""
    return _with(config, "validation", expectations=[])


@pytest.fixture(scope="module")
def clean_data() -> pd.DataFrame:
    return bad_inputs.clean_rides()


@pytest.fixture
def clean(clean_data: pd.DataFrame) -> pd.DataFrame:
    return clean_data.copy()


def _recent(frame: pd.DataFrame, n: int) -> pd.Index:
    """Index labels of the n latest rows: inside the eval window."""
    return frame.index[-n:]


def _checks(outcome: ValidationOutcome, kind: str = "failures") -> list[str]:
    return sorted({f.check for f in getattr(outcome, kind)})


# --- built-in checks -------------------------------------------------------------------------------------------------


def test_clean_demo_data_passes_the_builtin_checks(clean: pd.DataFrame, builtin: CityConfig) -> None:
    outcome = validate(clean.sample(frac=1, random_state=0), builtin, WINDOWS)
    assert outcome.success, outcome.message()
    assert outcome.warnings == []
    frame = outcome.frame
    assert frame["requested_at"].is_monotonic_increasing
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    assert str(frame["requested_at"].dt.tz) == "UTC"
    assert frame["requested_at"].min() >= pd.Timestamp(WINDOWS.train_start)
    assert outcome.train_rows == int((frame["requested_at"] < EVAL_START).sum())
    assert outcome.train_rows + outcome.eval_rows == len(frame)
    assert outcome.rows_outside_windows == len(clean) - len(frame) > 0  # 110 days of data, 104-day windows
    assert outcome.ge_result == {}
    assert outcome.message().startswith("Data validation passed for berlin: ")


BREAKERS: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str, str]] = [
    (
        "missing column",
        lambda f: f.drop(columns=["traffic_index"]),
        "column_present",
        "column_present on column 'traffic_index': the numeric feature column is missing; the data has columns "
        "[ride_id, requested_at, district, pickup_hour, weather, vehicle_type, distance_km, eta_seconds]",
    ),
    (
        "numbers as text",
        lambda f: f.assign(distance_km=f["distance_km"].astype(str).where(f.index % 1000 != 5, "n/a")),
        "numeric_dtype",
        "numeric_dtype on column 'distance_km': the numeric feature has dtype str, expected numbers; ",
    ),
    (
        "infinite values",
        lambda f: f.assign(traffic_index=f["traffic_index"].where(~f.index.isin(_recent(f, 3)), np.inf)),
        "finite_values",
        "finite_values on column 'traffic_index': 3 of ",
    ),
    (
        "null target",
        lambda f: f.assign(eta_seconds=f["eta_seconds"].where(~f.index.isin(_recent(f, 4)), np.nan)),
        "target_not_null",
        "target_not_null on column 'eta_seconds': 4 of ",
    ),
    (
        "unparseable timestamps",
        lambda f: f.assign(requested_at=f["requested_at"].astype(str).where(f.index % 500 != 1, "yesterday")),
        "timestamp_parseable",
        "have a missing or unparseable timestamp, e.g. ['yesterday', ",
    ),
    (
        "timestamps as numbers",
        lambda f: f.assign(requested_at=np.arange(len(f))),
        "timestamp_parseable",
        "timestamp_parseable on column 'requested_at': dtype int64 is not a timestamp",
    ),
    (
        "empty eval window",
        lambda f: f[f["requested_at"] < EVAL_START],
        "eval_window_rows",
        "eval_window_rows: 0 rows between 2025-05-19 00:00 UTC and 2025-06-02 00:00 UTC, validation.min_rows is 500",
    ),
    (
        "train window too small",
        lambda f: f[f["requested_at"] >= EVAL_START - pd.Timedelta(hours=12)],
        "train_window_rows",
        "train_window_rows: ",
    ),
    (
        "feature equals target",
        lambda f: f.assign(distance_km=f["eta_seconds"]),
        "target_leak",
        "target_leak on column 'distance_km': every value equals the target 'eta_seconds'",
    ),
    (
        "duplicate rows",
        lambda f: pd.concat([f, f.iloc[-1500:]]),
        "duplicate_rows",
        "are exact copies of another row, e.g. ['BER-",
    ),
]


@pytest.mark.parametrize(("breaker", "check", "text"), [b[1:] for b in BREAKERS], ids=[b[0] for b in BREAKERS])
def test_each_builtin_check_fires(clean: pd.DataFrame, builtin: CityConfig, breaker, check: str, text: str) -> None:
    outcome = validate(breaker(clean), builtin, WINDOWS)
    assert not outcome.success
    assert check in _checks(outcome)
    assert text in outcome.message()


def test_window_order(clean: pd.DataFrame, builtin: CityConfig) -> None:
    inverted = Windows(train_start=WINDOWS.train_start, eval_start=WINDOWS.end, end=WINDOWS.eval_start)
    outcome = validate(clean, builtin, inverted)
    assert "window_order" in _checks(outcome)
    assert "window_order: the eval window must lie strictly after the train window" in outcome.message()


def test_id_column_as_feature(clean: pd.DataFrame, builtin: CityConfig) -> None:
    outcome = validate(clean, _with(builtin, "data", id_columns=["ride_id", "district"]), WINDOWS)
    assert _checks(outcome) == ["id_feature"]
    assert "id_feature on column 'district': is declared in data.id_columns" in outcome.message()


def test_slice_and_baseline_columns_are_required(clean: pd.DataFrame, builtin: CityConfig) -> None:
    baseline = builtin.evaluation.baseline.model_copy(update={"strategy": "column", "column": "heuristic_eta"})
    outcome = validate(clean.drop(columns=["weather"]), _with(builtin, "evaluation", baseline=baseline), WINDOWS)
    missing = {f.column: f.message for f in outcome.failures if f.check == "column_present"}
    assert set(missing) == {"weather", "heuristic_eta"}
    assert "the baseline column (evaluation.baseline.column) column is missing" in missing["heuristic_eta"]


def test_duplicates_within_the_threshold_are_a_warning(clean: pd.DataFrame, builtin: CityConfig) -> None:
    outcome = validate(pd.concat([clean, clean.iloc[-20:]]), builtin, WINDOWS)
    assert outcome.success
    assert _checks(outcome, "warnings") == ["duplicate_rows"]


def test_duplicates_without_id_columns(clean: pd.DataFrame, builtin: CityConfig) -> None:
    outcome = validate(pd.concat([clean, clean.iloc[-1500:]]), _with(builtin, "data", id_columns=[]), WINDOWS)
    assert _checks(outcome) == ["duplicate_rows"]
    assert outcome.failures[0].unexpected_count == 1500


def test_future_timestamps_are_reported_and_not_used(clean: pd.DataFrame, builtin: CityConfig) -> None:
    late = _recent(clean, 7)
    clean.loc[late, "requested_at"] += pd.Timedelta(days=3)
    outcome = validate(clean, builtin, WINDOWS)
    assert outcome.success
    assert _checks(outcome, "warnings") == ["future_timestamps"]
    assert outcome.warnings[0].unexpected_count == 7
    assert "at or after the window end 2025-06-02 00:00 UTC" in outcome.warnings[0].message
    assert outcome.frame["requested_at"].max() < pd.Timestamp(WINDOWS.end)


def test_unseen_categories_are_a_warning(clean: pd.DataFrame, builtin: CityConfig) -> None:
    clean.loc[_recent(clean, 10), "district"] = "new_district"
    outcome = validate(clean, builtin, WINDOWS)
    assert outcome.success
    [warning] = outcome.warnings
    assert (warning.check, warning.column, warning.unexpected_count) == ("unseen_categories", "district", 10)
    assert warning.samples == ["new_district"]


@pytest.mark.parametrize("kind", ["naive", "iso text", "other timezone"])
def test_timestamps_are_normalised_to_utc(clean: pd.DataFrame, builtin: CityConfig, kind: str) -> None:
    ts = clean["requested_at"]
    clean["requested_at"] = {
        "naive": ts.dt.tz_localize(None),
        "iso text": ts.map(lambda t: t.isoformat()),
        "other timezone": ts.dt.tz_convert("Europe/Berlin"),
    }[kind]
    outcome = validate(clean, builtin, WINDOWS)
    assert outcome.success, outcome.message()
    assert str(outcome.frame["requested_at"].dt.tz) == "UTC"
    assert outcome.eval_rows == int((ts >= EVAL_START).sum())


def test_naive_windows_are_utc(clean: pd.DataFrame, builtin: CityConfig) -> None:
    naive = Windows.ending_at(datetime(2025, 6, 2), 90, 14)
    assert validate(clean, builtin, naive).eval_rows == validate(clean, builtin, WINDOWS).eval_rows


# --- outcome texts ---------------------------------------------------------------------------------------------------


def test_message_lists_each_problem_with_column_count_percent_and_samples(
    clean: pd.DataFrame, builtin: CityConfig
) -> None:
    rows = _recent(clean, 2)
    clean.loc[rows, "eta_seconds"] = np.nan
    clean.loc[rows, "traffic_index"] = -np.inf
    outcome = validate(clean, builtin, WINDOWS)
    n = outcome.train_rows + outcome.eval_rows
    ids = clean.loc[rows, "ride_id"].tolist()
    message = outcome.message()
    assert message.splitlines()[0] == "Data validation failed for berlin (2 problems):"
    assert f"  - finite_values on column 'traffic_index': 2 of {n:,} rows (0.00%) are infinite" in message
    assert (
        f"  - target_not_null on column 'eta_seconds': 2 of {n:,} rows (0.00%) have no target value, e.g. rows {ids}"
        in (message)
    )
    assert "Nothing was trained." in message
    assert outcome.failures[0].samples == ["-inf", "-inf"]


def test_summary_is_small_json_even_when_everything_fails(builtin: CityConfig) -> None:
    outcome = validate(pd.DataFrame({"x": [1, 2]}), builtin, WINDOWS)
    summary = outcome.summary()
    assert len(json.dumps(summary)) < 2048
    assert summary["success"] is False
    assert summary["failures"] == len(outcome.failures) > 8
    assert "column_present:requested_at" in summary["failed_checks"]


def test_html_report_shows_every_check_and_escapes_values(clean: pd.DataFrame, builtin: CityConfig) -> None:
    clean.loc[_recent(clean, 1), "district"] = "<script>alert(1)</script>"
    outcome = validate(clean, builtin, WINDOWS)
    page = outcome.html()
    assert page.startswith("<!DOCTYPE html>")
    assert "Data validation passed: berlin" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "target_not_null (eta_seconds)" in page
    assert page.count('<tr class="passed">') == len(outcome.passed)


# --- snapshot --------------------------------------------------------------------------------------------------------


def test_snapshot_bytes_are_deterministic_and_verified(clean: pd.DataFrame, builtin: CityConfig) -> None:
    frame = validate(clean, builtin, WINDOWS).frame
    data = to_parquet_bytes(frame)
    assert to_parquet_bytes(frame.copy()) == data
    assert verified(data, sha256_hex(data), "s3://b/run/snapshot.parquet", written_by="validate_data") is data
    with pytest.raises(IntegrityError) as error:
        verified(data + b" ", sha256_hex(data), "s3://b/run/snapshot.parquet", written_by="validate_data")
    assert str(error.value) == (
        f"s3://b/run/snapshot.parquet: sha256 is {sha256_hex(data + b' ')} but validate_data recorded "
        f"{sha256_hex(data)}: the file changed after validate_data wrote it, and a retry reads the same bytes. Find "
        "what changed the run's files, then clear validate_data and its downstream tasks in this DAG run to write it "
        "again."
    )


def test_snapshot_windows_hold_only_the_rows_and_columns_asked_for(clean: pd.DataFrame, builtin: CityConfig) -> None:
    frame = validate(clean, builtin, WINDOWS).frame
    data = to_parquet_bytes(frame)
    is_eval = frame["requested_at"] >= WINDOWS.eval_start
    assert 0 < is_eval.sum() < len(frame)
    train = window_rows(data, WINDOWS, "requested_at", "train", None)
    pd.testing.assert_frame_equal(train, frame[~is_eval].reset_index(drop=True))
    # A column the snapshot lacks is left out: the step that needs it says so in its own words.
    evaluation = window_rows(data, WINDOWS, "requested_at", "eval", ["eta_seconds", "district", "eta_seconds", "gone"])
    pd.testing.assert_frame_equal(evaluation, frame.loc[is_eval, ["eta_seconds", "district"]].reset_index(drop=True))
    assert window_rows(data, WINDOWS, "requested_at", "train", []).shape == (0, 0)
    # register's input example: the window's first rows, as the whole window's read gives them.
    example = window_rows(data, WINDOWS, "requested_at", "eval", ["district", "distance_km"], limit=5)
    first = frame.loc[is_eval, ["district", "distance_km"]].head(5).reset_index(drop=True)
    pd.testing.assert_frame_equal(example, first)


def test_a_row_at_eval_start_is_evaluated_not_trained_on() -> None:
    at = pd.Timestamp(WINDOWS.eval_start)
    stamps = [at - pd.Timedelta(microseconds=1), at, at + pd.Timedelta(seconds=1)]
    frame = pd.DataFrame({"requested_at": pd.to_datetime(stamps, utc=True), "x": [1.0, 2.0, 3.0]})
    data = to_parquet_bytes(frame)
    assert window_rows(data, WINDOWS, "requested_at", "train", ["x"])["x"].tolist() == [1.0]
    assert window_rows(data, WINDOWS, "requested_at", "eval", ["x"])["x"].tolist() == [2.0, 3.0]


# --- Great Expectations ----------------------------------------------------------------------------------------------


def test_clean_demo_data_passes_the_suite_silently(
    clean: pd.DataFrame, config: CityConfig, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):  # the first call imports Great Expectations, the second is like any later one
        outcome = validate(clean, config, WINDOWS)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no progress bars or log lines from Great Expectations
    assert caplog.records == []
    assert outcome.success, outcome.message()
    assert outcome.ge_result["success"] is True
    assert len(outcome.ge_result["results"]) == len(config.validation.expectations)
    json.dumps(outcome.ge_result)
    assert "expect_column_values_to_be_between(column=distance_km, min_value=0, max_value=150)" in outcome.passed


def test_failed_expectation_names_column_count_percent_and_samples(clean: pd.DataFrame, config: CityConfig) -> None:
    rows = _recent(clean, 3)
    clean.loc[rows, "distance_km"] = [-1.5, -2.0, 151.0]
    outcome = validate(clean, config, WINDOWS)
    [failure] = outcome.failures
    n = outcome.train_rows + outcome.eval_rows
    assert failure.check == "expect_column_values_to_be_between"
    assert (failure.column, failure.unexpected_count, failure.samples) == ("distance_km", 3, [-1.5, -2.0, 151.0])
    assert failure.message == (
        "expect_column_values_to_be_between(column=distance_km, min_value=0, max_value=150): "
        f"3 of {n:,} values ({100 * 3 / n:.2f}%) unexpected, e.g. [-1.5, -2.0, 151.0]"
    )
    assert outcome.summary()["failed_checks"] == ["expect_column_values_to_be_between:distance_km"]


def test_warning_severity_does_not_fail(clean: pd.DataFrame, config: CityConfig) -> None:
    clean.loc[_recent(clean, 5), "weather"] = "hail"
    outcome = validate(clean, config, WINDOWS)
    assert outcome.success
    assert [w.check for w in outcome.warnings] == ["unseen_categories", "expect_column_values_to_be_in_set"]
    assert "e.g. ['hail'" in outcome.warnings[1].message


def test_unusable_expectations_fail_with_the_reason(clean: pd.DataFrame, config: CityConfig) -> None:
    expectations = [
        ExpectationConfig(type="expect_column_values_to_not_be_null", kwargs={"column": "driver_rating"}),
        ExpectationConfig(type="expect_column_values_to_be_between", kwargs={"column": "eta_seconds", "minimum": 1}),
    ]
    outcome = validate(clean, _with(config, "validation", expectations=expectations), WINDOWS)
    messages = [f.message for f in outcome.failures]
    assert messages[0].startswith(
        "expect_column_values_to_be_between(column=eta_seconds, minimum=1) is not a valid expectation: "
        "unknown argument 'minimum' (expected one of column, mostly, row_condition, condition_parser, min_value, "
    )
    assert messages[1].startswith(
        "expect_column_values_to_not_be_null(column=driver_rating): could not be evaluated: "
        'Error: The column "driver_rating" in BatchData does not exist.'
    )


def test_expectation_problems_for_lint(config: CityConfig) -> None:
    assert expectation_problems(config, "berlin.yaml") == []
    broken = [
        {"expect_column_values_to_be_between": {"column": "distance_km", "minimum": 0}},
        {"expect_column_values_to_be_betwen": {"column": "distance_km"}},
        {"expect_column_values_to_be_between": {"column": "distance_km", "min_value": "zero"}},
        {"expect_column_values_to_be_in_set": {"value_set": ["clear"]}},
        {"expect_column_values_to_be_in_set": {"column": "weather", "value_set": ["clear"], "severity": "warning"}},
        {"expect_column_kl_divergence_to_be_less_than": {"column": "distance_km", "threshold": 0.1}},
    ]
    expectations = [ExpectationConfig.model_validate(e) for e in broken]
    problems = expectation_problems(_with(config, "validation", expectations=expectations), "lisbon.yaml", False)
    assert problems == [
        "lisbon.yaml: validation.expectations[0].expect_column_values_to_be_between (from _defaults.yaml): "
        "unknown argument 'minimum' (expected one of column, mostly, row_condition, condition_parser, min_value, "
        "max_value, strict_min, strict_max, notes, result_format, description, catch_exceptions)",
        "lisbon.yaml: validation.expectations[1].expect_column_values_to_be_betwen (from _defaults.yaml): "
        "unknown expectation; did you mean expect_column_values_to_be_between? "
        "(see https://greatexpectations.io/expectations)",
        "lisbon.yaml: validation.expectations[2].expect_column_values_to_be_between (from _defaults.yaml): "
        "argument 'min_value': value is not a valid float",
        "lisbon.yaml: validation.expectations[3].expect_column_values_to_be_in_set (from _defaults.yaml): "
        "missing required argument 'column'",
        "lisbon.yaml: validation.expectations[4].expect_column_values_to_be_in_set (from _defaults.yaml): "
        "set `severity: warning` next to the expectation, not among its arguments",
    ]


# --- bad-input corpus: a file goes through DatasetHook.read_frame and validate, and the message says what is wrong ---


@pytest.mark.parametrize("bad_input", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input_corpus(
    mocked_s3: str, clean_data: pd.DataFrame, config: CityConfig, tmp_path: Path, bad_input
) -> None:
    hook = DatasetHook()
    uri = bad_inputs.write(bad_input, clean_data, tmp_path, hook.write_bytes)
    try:
        frame = hook.read_frame(uri)
    except DatasetError as error:
        assert bad_input.outcome == "read", f"unexpected read error: {error}"
        message = str(error)
    else:
        assert bad_input.outcome != "read", "expected DatasetError"
        outcome = validate(frame, config, WINDOWS)
        assert outcome.success is not bad_input.is_bad, outcome.message()
        message = outcome.message()
    for text in bad_input.texts:
        assert text in message
