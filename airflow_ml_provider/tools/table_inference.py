"""What ``airflow-ml init`` infers from a table: the task, the timestamp, id and feature columns, ranges and windows.

The table is read through DatasetHook (local or ``s3://``, Parquet or CSV), as validate_data reads it. Each decision
carries its reason (``Column.why``) so that scaffold.py can write it next to the value in the YAML. ``airflow-ml run``
reads tables and finds their end through the same functions, so both commands see the data alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.config import CITY_NAME_PATTERN

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_ROWS = 200_000  # quantiles are taken from at most this many rows
MAX_CATEGORIES = 50  # more distinct values than this: too wide to one-hot, not a feature
RANGE_QUANTILES = (0.001, 0.999)
RANGE_MARGIN = 0.1  # the observed quantile range is widened by this share on each side
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # strings that may be timestamps start with a date


class InitError(ValueError):
    """The table or the arguments do not allow a config; the message says what to pass or fix."""


@dataclass
class Column:
    """One column's role in the config and why."""

    name: str
    role: str  # timestamp, id, target, numeric, categorical, ignored
    why: str
    values: list[Any] = field(default_factory=list)  # categorical: the observed values
    low: float | None = None  # numeric: the expected range
    high: float | None = None


@dataclass
class Plan:
    """Everything ``init`` decided about one table."""

    city: str
    data_uri: str
    task: str
    target: str
    rows: int
    first: datetime
    last: datetime
    end: datetime
    train_days: int
    eval_days: int
    train_rows: int
    eval_rows: int
    columns: list[Column]
    hour_column: str | None
    approver: str
    duplicate_share: float
    target_skew: float = 0.0  # regression: the target's skewness

    def named(self, role: str) -> list[Column]:
        return [c for c in self.columns if c.role == role]


@dataclass(frozen=True)
class Choices:
    """What ``airflow-ml init`` was told: the city, its table and target, and the choices it may otherwise make."""

    city: str
    data_uri: str
    target: str
    task: str | None  # None: inferred, as the timestamp column and the approver
    timestamp: str | None
    approver: str | None


def data_end(last: datetime) -> datetime:
    """The window end that includes the table's last row: midnight (UTC) after its last timestamp.

    ``airflow-ml run`` uses it as the logical date, which is where the run's windows end."""
    day = last.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def read_table(uri: str, aws_conn_id: str = "aws_default") -> pd.DataFrame:
    """The table, through the one dataset reader the DAG's validate_data uses."""
    from airflow_ml_provider.hooks.dataset import DatasetHook

    return DatasetHook(aws_conn_id=aws_conn_id).read_frame(uri)


def timestamps(values: pd.Series) -> pd.Series | None:
    """The column as UTC datetimes, parsed as validate_data parses it; None unless every non-null value parses."""
    import pandas as pd

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    if not pd.api.types.is_string_dtype(values.dtype):
        return None
    present = values.dropna()
    if present.empty or not all(isinstance(v, str) and ISO_DATE.match(v) for v in present.head(100)):
        return None
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return parsed if parsed.notna().sum() == len(present) else None


def plan_city(frame: pd.DataFrame, choices: Choices, defaults: dict[str, Any]) -> Plan:
    """Decide the config for ``frame``; raises InitError naming what to pass when a choice cannot be made."""
    import numpy as np

    city, data_uri, target, approver = choices.city, choices.data_uri, choices.target, choices.approver

    if not re.fullmatch(CITY_NAME_PATTERN, city):
        raise InitError(f"city name {city!r} must match {CITY_NAME_PATTERN} (lowercase letters, digits, _)")
    shown = ", ".join(map(str, frame.columns[:30]))
    if target not in frame.columns:
        raise InitError(f"--target {target!r} is not a column of {data_uri}; its columns are [{shown}]")
    if len(frame) == 0:
        raise InitError(f"{data_uri} has no rows")
    task = choices.task or _task_of(frame[target], target)
    skew = 0.0
    _check_target(frame[target], target, task)

    ts_column = choices.timestamp or _timestamp_column(frame, target, data_uri)
    if ts_column not in frame.columns:
        raise InitError(f"--timestamp {ts_column!r} is not a column of {data_uri}; its columns are [{shown}]")
    times = timestamps(frame[ts_column])
    if times is None:
        raise InitError(
            f"--timestamp {ts_column!r}: dtype {frame[ts_column].dtype} is not datetimes or ISO 8601 strings "
            "(such as 2025-01-31T08:15:00Z) in every row; validate_data splits the windows on it"
        )
    times = times.dropna().sort_values()
    first, last = (times.iloc[i].to_pydatetime(warn=False) for i in (0, -1))
    end = data_end(last)
    min_rows = int((defaults.get("validation") or {}).get("min_rows", 100))
    data_defaults = defaults.get("data") or {}
    train_days, eval_days, train_rows, eval_rows = _windows(
        times, end, first, min_rows, int(data_defaults.get("train_window_days", 90)),
        int(data_defaults.get("eval_window_days", 14)), data_uri,
    )  # fmt: skip

    sample = frame.sample(n=SAMPLE_ROWS, random_state=0) if len(frame) > SAMPLE_ROWS else frame
    columns = [Column(ts_column, "timestamp", _timestamp_why(frame, ts_column))]
    target_column = Column(target, "target", f"{task} target")
    if task == "regression":
        target_column.low, target_column.high = _range(sample[target], frame[target].dtype)
        skew = float(sample[target].skew())
    columns.append(target_column)
    for name in frame.columns:
        if name in (ts_column, target):
            continue
        columns.append(_column_role(str(name), frame[name], sample[name], frame[target]))

    hour_column = next(
        (
            c.name
            for c in columns
            if c.role == "numeric" and "hour" in c.name.lower() and _is_hour_of_day(frame[c.name])
        ),
        None,
    )
    if not any(c.role in ("numeric", "categorical") for c in columns):
        ignored = "; ".join(f"{c.name}: {c.why}" for c in columns if c.role == "ignored")
        raise InitError(f"{data_uri}: no column can be a feature ({ignored or 'no other columns'})")
    duplicates = frame.duplicated()
    return Plan(
        city=city,
        data_uri=data_uri,
        task=task,
        target=target,
        rows=len(frame),
        first=first,
        last=last,
        end=end,
        train_days=train_days,
        eval_days=eval_days,
        train_rows=train_rows,
        eval_rows=eval_rows,
        columns=columns,
        hour_column=hour_column,
        approver=approver or f"{city}_ops",
        duplicate_share=float(np.mean(duplicates.to_numpy())) if len(frame) else 0.0,
        target_skew=skew if np.isfinite(skew) else 0.0,
    )


def _task_of(values: pd.Series, target: str) -> str:
    import pandas as pd

    if _is_binary(values):
        return "classification"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "regression"
    raise InitError(
        f"--target {target!r} holds {values.dtype} values, neither numbers (regression) nor 0/1 labels "
        "(classification); encode it upstream and pass --task"
    )


def _is_binary(values: pd.Series) -> bool:
    import pandas as pd

    present = values.dropna()
    if pd.api.types.is_bool_dtype(present.dtype):
        return True
    return pd.api.types.is_numeric_dtype(present.dtype) and set(present.unique().tolist()) <= {0, 1}


def _check_target(values: pd.Series, target: str, task: str) -> None:
    import pandas as pd

    if values.isna().all():
        raise InitError(f"--target {target!r} has no values")
    if task == "classification" and not _is_binary(values):
        shown = values.dropna().unique()[:5].tolist()
        raise InitError(
            f"--target {target!r}: classification needs 0/1 (or true/false) labels, 1 being the positive class; "
            f"got values such as {shown}. Encode it upstream, or pass --task regression"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(values.dtype):
        raise InitError(f"--target {target!r}: regression needs numbers, got dtype {values.dtype}")


def _timestamp_column(frame: pd.DataFrame, target: str, data_uri: str) -> str:
    candidates = [str(c) for c in frame.columns if c != target and timestamps(frame[c].head(1000)) is not None]
    candidates = [c for c in candidates if timestamps(frame[c]) is not None]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise InitError(
            f"{data_uri} has {len(candidates)} timestamp columns {candidates}; pass --timestamp COLUMN to say "
            "which one orders the rows (when each row happened: the windows are split on it)"
        )
    raise InitError(
        f"{data_uri} has no column of datetimes or ISO 8601 strings (such as 2025-01-31T08:15:00Z); the runs split "
        "their train and eval windows on one. Add such a column, then pass --timestamp COLUMN if it is not found"
    )


def _timestamp_why(frame: pd.DataFrame, column: str) -> str:
    import pandas as pd

    kind = "datetimes" if pd.api.types.is_datetime64_any_dtype(frame[column].dtype) else "ISO 8601 strings"
    return f"{kind}; the windows are split on it"


def _windows(
    times: pd.Series,
    end: datetime,
    first: datetime,
    min_rows: int,
    default_train: int,
    default_eval: int,
    data_uri: str,
) -> tuple[int, int, int, int]:
    """Train and eval days ending at ``end`` such that both windows hold at least ``min_rows`` rows."""
    import numpy as np

    start_day = first.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    span = (end - start_day).days
    naive = times.dt.tz_convert(None).to_numpy()
    naive_end = end.astimezone(timezone.utc).replace(tzinfo=None)

    def rows_between(days_before_end: int, until_days_before_end: int) -> int:
        lo, hi = (np.datetime64(naive_end - timedelta(days=d), "ns") for d in (days_before_end, until_days_before_end))
        return int(np.searchsorted(naive, hi) - np.searchsorted(naive, lo))

    if span < 2:
        raise InitError(f"{data_uri}: all rows fall on one day; train and eval windows need at least two days")
    eval_days = default_eval if span >= 4 * default_eval else max(1, span // 4)
    while rows_between(eval_days, 0) < min_rows and eval_days < span // 2:
        eval_days += 1
    train_days = min(default_train, span - eval_days)
    train_rows, eval_rows = rows_between(eval_days + train_days, eval_days), rows_between(eval_days, 0)
    if min(train_rows, eval_rows) < min_rows:
        raise InitError(
            f"{data_uri}: {len(times):,} rows over {span} days leave {train_rows:,} train and {eval_rows:,} eval rows; "
            f"validation.min_rows ({min_rows} in _defaults.yaml) needs that many in each window. Use more data"
        )
    return train_days, eval_days, train_rows, eval_rows


def _column_role(name: str, values: pd.Series, sample: pd.Series, target: pd.Series) -> Column:
    import numpy as np
    import pandas as pd

    present = values.dropna()
    distinct = int(present.nunique())
    dtype = values.dtype
    if present.empty:
        return Column(name, "ignored", "no values")
    if pd.api.types.is_datetime64_any_dtype(dtype) or timestamps(values.head(1000)) is not None:
        return Column(name, "ignored", "datetimes: not a feature (derive hour or weekday columns upstream)")
    idlike = bool(re.search(r"(^|_)(id|uuid|key)$", name.lower()) or re.search(r"[a-z]Id$", name))
    integral = pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    if integral and distinct == len(values):
        return Column(name, "id", "unique per row: an identifier, never a feature")
    if distinct == 1:
        return Column(name, "ignored", f"constant ({present.iloc[0]!r}): nothing to learn")
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if idlike:
            return Column(name, "ignored", f"an identifier by its name ({distinct:,} values): never a feature")
        if len(values) == len(target) and bool((values == target).all()):
            return Column(name, "ignored", "equals the target: it would leak the label")
        if not np.isfinite(present.to_numpy(dtype="float64")).all():
            return Column(name, "ignored", "has infinite values, which validate_data refuses in features")
        low, high = (0, 23) if _is_hour_of_day(values) else _range(sample, dtype)
        return Column(name, "numeric", f"{dtype}, {_number(low)} to {_number(high)}", low=low, high=high)
    if distinct > MAX_CATEGORIES:
        what = "an identifier by its name" if idlike else "text"
        return Column(name, "ignored", f"{what} with {distinct:,} distinct values: too many to one-hot")
    observed = sorted(present.unique().tolist(), key=str)
    return Column(name, "categorical", f"{distinct} values", values=observed)


def _range(values: pd.Series, dtype: Any) -> tuple[float, float]:
    """The expected range: observed quantiles widened by a margin, never below 0 for a column that never is;
    whole numbers for an integer column."""
    import numpy as np
    import pandas as pd

    numbers = values.dropna().to_numpy(dtype="float64")
    low, high = np.quantile(numbers, RANGE_QUANTILES)
    margin = (high - low) * RANGE_MARGIN or abs(high) * RANGE_MARGIN or 1.0
    low, high = low - margin, high + margin
    if numbers.min() >= 0:
        low = max(low, 0.0)
    if pd.api.types.is_integer_dtype(dtype):
        return math.floor(low), math.ceil(high)
    return _round(low, math.floor), _round(high, math.ceil)


def _round(value: float, direction: Any) -> float:
    """``value`` rounded outward (``direction`` floor or ceil) to three significant digits."""
    if value == 0:
        return 0
    step = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = float(f"{direction(value / step) * step:.12g}")
    return int(rounded) if rounded.is_integer() else rounded


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _is_hour_of_day(values: pd.Series) -> bool:
    numbers = values.dropna()
    return bool((numbers % 1 == 0).all() and numbers.min() >= 0 and numbers.max() <= 23 and numbers.nunique() >= 12)
