"""Data validation for validate_data: built-in checks every city gets, plus the city's Great Expectations suite.

The outcome says in one place what is wrong (column, count, share, sample values) so a data scientist can act on it
without opening the task log, and carries the exact rows that were checked: the snapshot later steps train on.
Great Expectations takes ~15 s to import, so it is imported only when a city declares expectations.
"""

from __future__ import annotations

import difflib
import html
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from types import ModuleType

    from airflow_ml_provider.config import CityConfig, ExpectationConfig
    from airflow_ml_provider.core.windows import Windows

SAMPLE_SIZE = 5
# Fields every GE expectation has that the YAML must not set: the provider sets them, or they mean nothing here.
_RESERVED_KWARGS = {"id", "meta", "rendered_content", "severity", "batch_id", "windows"}


@dataclass(frozen=True)
class Failure:
    """One failed (or warned) check: a built-in check name or a GE expectation type, and where it failed."""

    check: str
    message: str
    column: str | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: list[Any] = field(default_factory=list)


@dataclass
class ValidationOutcome:
    """What validate found, and the checked rows (``frame``) that become the run's snapshot when ``success``."""

    city: str
    windows: Windows
    success: bool
    train_rows: int
    eval_rows: int
    rows_outside_windows: int
    frame: pd.DataFrame
    failures: list[Failure]
    warnings: list[Failure]
    passed: list[str]  # one line per check that passed, for the HTML report
    ge_result: dict[str, Any]

    def message(self) -> str:
        """What failed, where, how much and examples: the text of the failed task and of the alert."""
        if self.success:
            head = (
                f"Data validation passed for {self.city}: {self.train_rows:,} train rows, "
                f"{self.eval_rows:,} eval rows, {len(self.passed)} checks passed"
            )
            return "\n".join([head, *(f"warning: {w.message}" for w in self.warnings)])
        count = len(self.failures)
        lines = [f"Data validation failed for {self.city} ({count} problem{'s' * (count != 1)}):"]
        lines += [f"  - {f.message}" for f in self.failures]
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}, not failing the run):")
            lines += [f"  - {w.message}" for w in self.warnings]
        lines.append(
            f"Rows checked: {self.train_rows:,} train + {self.eval_rows:,} eval ({_window_text(self.windows)}). "
            f"Nothing was trained. Fix the source data, or the `validation` section of {self.city}.yaml "
            "if an expectation is wrong."
        )
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Small JSON for XCom (< 2 KB): counts and the names of failed checks, never rows."""
        return {
            "success": self.success,
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "rows_outside_windows": self.rows_outside_windows,
            "checks_passed": len(self.passed),
            "failures": len(self.failures),
            "warnings": len(self.warnings),
            "failed_checks": [_check_id(f) for f in self.failures[:8]],
            "warning_checks": [_check_id(w) for w in self.warnings[:8]],
        }

    def html(self) -> str:
        """A self-contained HTML report of every check, for people who do not read task logs."""
        status = "passed" if self.success else "FAILED"
        rows = [_html_row("failed", f) for f in self.failures]
        rows += [_html_row("warning", w) for w in self.warnings]
        rows += [
            f'<tr class="passed"><td>passed</td><td colspan="5">{html.escape(name)}</td></tr>' for name in self.passed
        ]
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data validation: {html.escape(self.city)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 14px; }}
th {{ background: #f0f0f0; }}
tr.failed td:first-child {{ background: #f8d7da; font-weight: bold; }}
tr.warning td:first-child {{ background: #fff3cd; }}
tr.passed td:first-child {{ background: #d4edda; }}
code {{ font-size: 13px; }}
</style></head><body>
<h1>Data validation {status}: {html.escape(self.city)}</h1>
<p>{self.train_rows:,} train rows and {self.eval_rows:,} eval rows ({html.escape(_window_text(self.windows))});
{self.rows_outside_windows:,} rows outside the windows were not used.
{len(self.failures)} failed, {len(self.warnings)} warnings, {len(self.passed)} passed.</p>
<table><thead><tr><th>status</th><th>check</th><th>column</th><th>unexpected</th><th>samples</th><th>message</th></tr>
</thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


def _check_id(failure: Failure) -> str:
    name = f"{failure.check}:{failure.column}" if failure.column else failure.check
    return name[:80]


def _html_row(status: str, failure: Failure) -> str:
    unexpected = ""
    if failure.unexpected_count is not None:
        unexpected = f"{failure.unexpected_count}"
        if failure.unexpected_percent is not None:
            unexpected += f" ({failure.unexpected_percent:.2f}%)"
    cells = [
        status,
        f"<code>{html.escape(failure.check)}</code>",
        html.escape(failure.column or ""),
        unexpected,
        html.escape(", ".join(repr(_jsonable(v)) for v in failure.samples)),
        html.escape(failure.message),
    ]
    return f'<tr class="{status}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _window_text(windows: Windows) -> str:
    return (
        f"train {_ts_text(windows.train_start)} to {_ts_text(windows.eval_start)}, "
        f"eval to {_ts_text(windows.end)}, end exclusive"
    )


def _ts_text(value: Any) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _utc(value: Any) -> pd.Timestamp:
    """Timezone-naive datetimes are taken as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _jsonable(value: Any) -> Any:
    """Sample values as JSON: timestamps as ISO text, NaN and NA as None, inf as text."""
    if isinstance(value, (datetime, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None if value is pd.NA or value is pd.NaT else str(value)


def _samples(values: pd.Series) -> list[Any]:
    return [_jsonable(v) for v in values.head(SAMPLE_SIZE).tolist()]


def _percent(count: int, total: int) -> float:
    return round(100.0 * count / total, 4) if total else 0.0


def _count_text(count: int, total: int, what: str = "rows") -> str:
    return f"{count:,} of {total:,} {what} ({_percent(count, total):.2f}%)"


class _Report:
    """Collects the outcome of each check as it runs."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []
        self.warnings: list[Failure] = []
        self.passed: list[str] = []

    def fail(self, check: str, message: str, **details: Any) -> None:
        self.failures.append(_failure(check, message, **details))

    def warn(self, check: str, message: str, **details: Any) -> None:
        self.warnings.append(_failure(check, message, **details))

    def ok(self, check: str, column: str | None = None) -> None:
        self.passed.append(f"{check} ({column})" if column else check)


def _failure(check: str, message: str, column: str | None = None, **details: Any) -> Failure:
    where = f"{check} on column {column!r}" if column else check
    return Failure(check=check, column=column, message=f"{where}: {message}", **details)


def _required_columns(config: CityConfig) -> dict[str, str]:
    """Every column the run needs, with the role that makes it needed (for the error message)."""
    roles: dict[str, str] = {config.data.timestamp_column: "timestamp (data.timestamp_column)"}
    roles[config.target] = "target"
    roles.update({c: "numeric feature" for c in config.features.numeric})
    roles.update({c: "categorical feature" for c in config.features.categorical})
    for column in config.data.id_columns:
        roles.setdefault(column, "id column (data.id_columns)")
    for i, slice_config in enumerate(config.evaluation.slices):
        for column in slice_config.referenced_columns:
            roles.setdefault(column, f"slice column (evaluation.slices[{i}])")
    if config.evaluation.baseline.column:
        roles.setdefault(config.evaluation.baseline.column, "baseline column (evaluation.baseline.column)")
    return roles


def validate(frame: pd.DataFrame, config: CityConfig, windows: Windows) -> ValidationOutcome:
    """Run the built-in checks and the city's expectations on the rows inside the train and eval windows."""
    report = _Report()
    ts_column, target = config.data.timestamp_column, config.target
    roles = _required_columns(config)
    for column, role in roles.items():
        if column in frame.columns:
            report.ok("column_present", column)
        else:
            shown = ", ".join(map(str, frame.columns[:30])) + (", ..." if len(frame.columns) > 30 else "")
            report.fail(
                "column_present", f"the {role} column is missing; the data has columns [{shown}]", column=column
            )

    train_start, eval_start, end = _utc(windows.train_start), _utc(windows.eval_start), _utc(windows.end)
    if train_start < eval_start < end:
        report.ok("window_order")
    else:
        report.fail(
            "window_order", f"the eval window must lie strictly after the train window; got {_window_text(windows)}"
        )

    total_rows = len(frame)
    rows_outside = 0
    windowed = False
    span = ""
    if ts_column in frame.columns:
        timestamps = _timestamps(frame[ts_column], ts_column, report)
        if timestamps is not None:
            if timestamps.notna().any():
                span = f"{_ts_text(timestamps.min())} to {_ts_text(timestamps.max())}"
            frame, rows_outside = _window_rows(frame, ts_column, timestamps, train_start, end, report)
            windowed = True
    n = len(frame)
    train_rows = int(np.searchsorted(frame[ts_column].array, eval_start)) if windowed else 0
    eval_rows = n - train_rows if windowed else 0
    if windowed:
        _window_sizes(config, windows, train_rows, eval_rows, total_rows, span, report)

    numeric = [*config.features.numeric, target] if config.task == "regression" else config.features.numeric
    for column in numeric:
        # An empty frame (a header-only CSV) has no meaningful dtypes; the window checks already report it.
        if column in frame.columns and n:
            _numeric_column(frame[column], column, "target" if column == target else "numeric feature", report)
    if target in frame.columns:
        _target_not_null(frame, config, report)
        _target_leaks(frame, config, report)
    _id_features(config, report)
    _duplicates(frame, config, windowed, report)
    if windowed:
        _unseen_categories(frame, config, train_rows, report)

    ge_result: dict[str, Any] = {}
    if config.validation.expectations:
        ge_result = _run_expectations(frame, config, report)

    return ValidationOutcome(
        city=config.city,
        windows=windows,
        success=not report.failures,
        train_rows=train_rows,
        eval_rows=eval_rows,
        rows_outside_windows=rows_outside,
        frame=frame,
        failures=report.failures,
        warnings=report.warnings,
        passed=report.passed,
        ge_result=ge_result,
    )


def _timestamps(values: pd.Series, column: str, report: _Report) -> pd.Series | None:
    """The column as UTC datetimes (strings must be ISO 8601); None when it cannot be used at all."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values.dt.tz_localize("UTC")
    elif pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    else:
        report.fail(
            "timestamp_parseable",
            f"dtype {values.dtype} is not a timestamp; "
            "write datetimes or ISO 8601 strings such as 2025-01-31T08:15:00Z",
            column=column,
        )
        return None
    bad = parsed.isna().to_numpy()
    count = int(bad.sum())
    if count:
        samples = _samples(values[bad])
        report.fail(
            "timestamp_parseable",
            f"{_count_text(count, len(values))} have a missing or unparseable timestamp, e.g. {samples}; "
            "write datetimes or ISO 8601 strings such as 2025-01-31T08:15:00Z",
            column=column,
            unexpected_count=count,
            unexpected_percent=_percent(count, len(values)),
            samples=samples,
        )
    else:
        report.ok("timestamp_parseable", column)
    return parsed


def _window_rows(
    frame: pd.DataFrame,
    column: str,
    timestamps: pd.Series,
    train_start: pd.Timestamp,
    end: pd.Timestamp,
    report: _Report,
) -> tuple[pd.DataFrame, int]:
    """Rows in [train_start, end), sorted by time; later rows are counted and reported, earlier ones just dropped."""
    future = (timestamps >= end).to_numpy()
    count = int(future.sum())
    if count:
        report.warn(
            "future_timestamps",
            f"{_count_text(count, len(frame))} are at or after the window end {_ts_text(end)} "
            f"(latest {_ts_text(timestamps.max())}); they were not used",
            column=column,
            unexpected_count=count,
            unexpected_percent=_percent(count, len(frame)),
            samples=_samples(timestamps[future]),
        )
    inside = (timestamps >= train_start).to_numpy() & ~future
    frame = frame.assign(**{column: timestamps})
    if not inside.all():
        frame = frame[inside]
    if not frame[column].is_monotonic_increasing:
        frame = frame.sort_values(column, kind="stable")
    return frame.reset_index(drop=True), len(inside) - int(inside.sum())


def _window_sizes(
    config: CityConfig, windows: Windows, train_rows: int, eval_rows: int, total_rows: int, span: str, report: _Report
) -> None:
    minimum = config.validation.min_rows
    for check, rows, start, stop in (
        ("train_window_rows", train_rows, windows.train_start, windows.eval_start),
        ("eval_window_rows", eval_rows, windows.eval_start, windows.end),
    ):
        if rows >= minimum:
            report.ok(check)
            continue
        report.fail(
            check,
            f"{rows:,} rows between {_ts_text(start)} and {_ts_text(stop)}, validation.min_rows is {minimum} "
            f"({total_rows:,} rows in the data{', from ' + span if span else ''}); check data.uri, "
            f"the run's logical date and data.{'train' if check.startswith('train') else 'eval'}_window_days",
            unexpected_count=rows,
        )


def _numeric_column(values: pd.Series, column: str, role: str, report: _Report) -> None:
    if not pd.api.types.is_numeric_dtype(values.dtype):
        converted = pd.to_numeric(values, errors="coerce")
        bad = (converted.isna() & values.notna()).to_numpy()
        count = int(bad.sum())
        samples = _samples(values[bad])
        what = (
            f"{_count_text(count, len(values))} are not numbers, e.g. {samples}" if count else "numbers stored as text"
        )
        report.fail(
            "numeric_dtype",
            f"the {role} has dtype {values.dtype}, expected numbers; {what}; write it as a numeric column",
            column=column,
            unexpected_count=count,
            unexpected_percent=_percent(count, len(values)),
            samples=samples,
        )
        return
    report.ok("numeric_dtype", column)
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(numbers)
    count = int(infinite.sum())
    if count:
        report.fail(
            "finite_values",
            f"{_count_text(count, len(values))} are infinite (the {role} must be finite), e.g. "
            f"{[_jsonable(v) for v in numbers[infinite][:SAMPLE_SIZE]]}; fix the upstream division or fill them",
            column=column,
            unexpected_count=count,
            unexpected_percent=_percent(count, len(values)),
            samples=[_jsonable(v) for v in numbers[infinite][:SAMPLE_SIZE]],
        )
    else:
        report.ok("finite_values", column)


def _target_not_null(frame: pd.DataFrame, config: CityConfig, report: _Report) -> None:
    nulls = frame[config.target].isna().to_numpy()
    count = int(nulls.sum())
    if not count:
        report.ok("target_not_null", config.target)
        return
    ids = _row_labels(frame[nulls], config)
    report.fail(
        "target_not_null",
        f"{_count_text(count, len(frame))} have no target value, e.g. rows {ids}; drop or fill them upstream",
        column=config.target,
        unexpected_count=count,
        unexpected_percent=_percent(count, len(frame)),
        samples=ids,
    )


def _row_labels(rows: pd.DataFrame, config: CityConfig) -> list[Any]:
    """A few ids (or timestamps) of offending rows, so they can be found upstream."""
    for column in [*config.data.id_columns, config.data.timestamp_column]:
        if column in rows.columns:
            return _samples(rows[column])
    return [int(i) for i in rows.index[:SAMPLE_SIZE]]


def _target_leaks(frame: pd.DataFrame, config: CityConfig, report: _Report) -> None:
    """A feature identical to the target makes a perfect model in training and a useless one in production."""
    target = frame[config.target]
    leaks = False
    for column in config.features.all:
        if column not in frame.columns or len(frame) == 0:
            continue
        feature = frame[column]
        if pd.api.types.is_numeric_dtype(feature.dtype) != pd.api.types.is_numeric_dtype(target.dtype):
            continue
        if bool((feature == target).all()):
            report.fail(
                "target_leak",
                f"every value equals the target {config.target!r}: the feature leaks the label; "
                "remove it from features",
                column=column,
            )
            leaks = True
    if not leaks:
        report.ok("target_leak")


def _id_features(config: CityConfig, report: _Report) -> None:
    both = sorted(set(config.features.all) & set(config.data.id_columns))
    for column in both:
        report.fail(
            "id_feature",
            "is declared in data.id_columns and must not be a feature; remove it from features",
            column=column,
        )
    if not both:
        report.ok("id_feature")


def _duplicates(frame: pd.DataFrame, config: CityConfig, windowed: bool, report: _Report) -> None:
    """Exact duplicate rows (all columns equal).

    Copies share every value, so only rows sharing one cheap key need the all-column comparison: the timestamp
    (one int64 column) once parsed, else the id columns. On 1M rows that is ~5x faster than comparing all columns.
    """
    key = [config.data.timestamp_column] if windowed else [c for c in config.data.id_columns if c in frame.columns]
    candidates = frame[frame.duplicated(subset=key, keep=False).to_numpy()] if key else frame
    duplicated = candidates.duplicated().to_numpy()
    count = int(duplicated.sum())
    limit = config.validation.max_duplicate_fraction
    share = count / len(frame) if len(frame) else 0.0
    if not count:
        report.ok("duplicate_rows")
        return
    details = {
        "unexpected_count": count,
        "unexpected_percent": _percent(count, len(frame)),
        "samples": _row_labels(candidates[duplicated], config),
    }
    text = f"{_count_text(count, len(frame))} are exact copies of another row, e.g. {details['samples']}"
    if share > limit:
        report.fail(
            "duplicate_rows", f"{text}; validation.max_duplicate_fraction is {limit}: de-duplicate upstream", **details
        )
    else:
        report.warn("duplicate_rows", f"{text}; within validation.max_duplicate_fraction {limit}", **details)


def _unseen_categories(frame: pd.DataFrame, config: CityConfig, train_rows: int, report: _Report) -> None:
    """Categories never seen in training: a warning, since the model has learned nothing about those rows."""
    for column in config.features.categorical:
        if column not in frame.columns or train_rows == 0 or train_rows == len(frame):
            continue
        values = frame[column]
        eval_values = values.iloc[train_rows:]
        unseen = ~eval_values.isin(pd.unique(values.iloc[:train_rows])).to_numpy() & eval_values.notna().to_numpy()
        count = int(unseen.sum())
        if count:
            samples = _samples(pd.Series(pd.unique(eval_values[unseen])))
            report.warn(
                "unseen_categories",
                f"{_count_text(count, len(eval_values), 'eval rows')} have values never seen in the train window, "
                f"e.g. {samples}",
                column=column,
                unexpected_count=count,
                unexpected_percent=_percent(count, len(eval_values)),
                samples=samples,
            )
        else:
            report.ok("unseen_categories", column)


def _great_expectations() -> ModuleType:
    """great_expectations, imported on first use, with its INFO chatter (at import and per context) turned off."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    # This module sets its own level, to log "Created temporary directory ..." for every ephemeral context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.ERROR)
    return gx


def _expectation_class(gx: ModuleType, name: str) -> type | None:
    from great_expectations.expectations.expectation import Expectation

    cls = getattr(gx.expectations, "".join(part.capitalize() for part in name.split("_")), None)
    # KL divergence is spelled ExpectColumnKLDivergence...: fall back to a case-insensitive lookup.
    if cls is None:
        lowered = name.replace("_", "")
        cls = next((getattr(gx.expectations, n) for n in dir(gx.expectations) if n.lower() == lowered), None)
    return cls if isinstance(cls, type) and issubclass(cls, Expectation) else None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_").replace("k_l_", "kl_")


def _expectation_problem(gx: ModuleType, expectation: ExpectationConfig) -> str | None:
    """Why this expectation cannot be built, in YAML terms; None when it can."""
    from great_expectations.compatibility.pydantic import ValidationError
    from great_expectations.expectations.expectation import Expectation

    cls = _expectation_class(gx, expectation.type)
    if cls is None:
        known = [_snake(n) for n in dir(gx.expectations) if n.startswith("Expect")]
        close = difflib.get_close_matches(expectation.type, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"unknown expectation; {hint}(see https://greatexpectations.io/expectations)"
    specific = [f for f in cls.__fields__ if f not in Expectation.__fields__ and f not in _RESERVED_KWARGS]
    accepted = specific + [f for f in Expectation.__fields__ if f not in _RESERVED_KWARGS]
    for name in expectation.kwargs:
        if name == "severity":
            return "set `severity: warning` next to the expectation, not among its arguments"
        if name in _RESERVED_KWARGS:
            return f"argument {name!r} is set by airflow-ml-provider; remove it"
        if name not in accepted:
            return f"unknown argument {name!r} (expected one of {', '.join(accepted)})"
    try:
        cls(**expectation.kwargs)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            if error["type"] == "value_error.missing":
                problems.setdefault(loc, f"missing required argument {loc!r}")
            elif loc == "__root__":
                problems.setdefault(loc, error["msg"])
            else:
                problems.setdefault(loc, f"argument {loc!r}: {error['msg']}")
        if len(problems) > 1:  # a root check such as "min_value and max_value cannot both be None" follows bad fields
            problems.pop("__root__", None)
        return "; ".join(problems.values())
    return None


def expectation_problems(config: CityConfig, filename: str, source_has_expectations: bool = True) -> list[str]:
    """Problems `airflow-ml lint` reports: unknown expectations and arguments their class does not accept."""
    gx = _great_expectations()
    origin = "" if source_has_expectations else " (from _defaults.yaml)"
    problems = []
    for i, expectation in enumerate(config.validation.expectations):
        problem = _expectation_problem(gx, expectation)
        if problem:
            problems.append(f"{filename}: validation.expectations[{i}].{expectation.type}{origin}: {problem}")
    return problems


def _describe(expectation: ExpectationConfig) -> str:
    arguments = ", ".join(f"{k}={v}" for k, v in expectation.kwargs.items())
    text = f"{expectation.type}({arguments})"
    return text if len(text) <= 160 else text[:157] + "..."


def _run_expectations(frame: pd.DataFrame, config: CityConfig, report: _Report) -> dict[str, Any]:
    """The city's suite with Great Expectations on the checked rows; returns GE's own result as JSON."""
    gx = _great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    name = f"{config.city}_rides"
    batch_definition = (
        context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    )
    suite = gx.ExpectationSuite(name=f"{config.city}_suite")
    for i, expectation in enumerate(config.validation.expectations):
        problem = _expectation_problem(gx, expectation)
        if problem:
            message = f"{_describe(expectation)} is not a valid expectation: {problem}"
            report.failures.append(
                Failure(check=expectation.type, column=expectation.kwargs.get("column"), message=message)
            )
            continue
        severity = "warning" if expectation.severity == "warning" else "critical"
        cls = _expectation_class(gx, expectation.type)
        suite.add_expectation(cls(**expectation.kwargs, meta={"index": i}, severity=severity))
    if not suite.expectations:
        return {}
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    for item in sorted(result["results"], key=lambda r: r["expectation_config"]["meta"]["index"]):
        expectation = config.validation.expectations[item["expectation_config"]["meta"]["index"]]
        if item["success"]:
            report.ok(_describe(expectation))
            continue
        failure = _expectation_failure(expectation, item, frame, config)
        (report.warnings if expectation.severity == "warning" else report.failures).append(failure)
    return result


def _expectation_failure(
    expectation: ExpectationConfig, item: dict[str, Any], frame: pd.DataFrame, config: CityConfig
) -> Failure:
    kwargs = expectation.kwargs
    column = kwargs.get("column") or kwargs.get("column_A")
    where = _describe(expectation)
    info = item.get("exception_info") or {}
    errors = [info] if "raised_exception" in info else list(info.values())
    raised = [e.get("exception_message") for e in errors if isinstance(e, dict) and e.get("raised_exception")]
    if raised:
        return Failure(check=expectation.type, column=column, message=f"{where}: could not be evaluated: {raised[0]}")
    result = item.get("result") or {}
    if "unexpected_count" in result:
        count = int(result["unexpected_count"] or 0)
        percent = float(result.get("unexpected_percent") or 0.0)
        total = int(result.get("element_count") or 0)
        samples = list(result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]
        example = f"e.g. {samples}"
        if all(v is None for v in samples):  # unexpected nulls: name the rows instead
            indexes = result.get("partial_unexpected_index_list") or []
            rows = [i for i in indexes if isinstance(i, int) and i < len(frame)][:SAMPLE_SIZE]
            samples = _row_labels(frame.iloc[rows], config)
            example = f"in rows {samples}"
        return Failure(
            check=expectation.type,
            column=column,
            unexpected_count=count,
            unexpected_percent=round(percent, 4),
            samples=samples,
            message=f"{where}: {count:,} of {total:,} values ({percent:.2f}%) unexpected, {example}",
        )
    observed = result.get("observed_value")
    return Failure(check=expectation.type, column=column, message=f"{where}: observed {_jsonable(observed)!r}")
