"""How values from the data appear in validation messages: timestamps in UTC, samples as JSON, counts with shares."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflow_ml_provider.core.display import ELLIPSIS, MAX_SHOWN

if TYPE_CHECKING:
    from airflow_ml_provider.config import CityConfig
    from airflow_ml_provider.core.windows import Windows

SAMPLE_SIZE = 5


def utc(value: Any) -> pd.Timestamp:
    """Timezone-naive datetimes are taken as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def timestamp_text(value: Any) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


def window_text(windows: Windows) -> str:
    return (
        f"train {timestamp_text(windows.train_start)} to {timestamp_text(windows.eval_start)}, "
        f"eval to {timestamp_text(windows.end)}, end exclusive"
    )


def jsonable(value: Any) -> Any:
    """Sample values as JSON: timestamps as ISO text, NaN and NA as None, inf as text, text cut to ``MAX_SHOWN``
    characters (messages show samples with repr, which escapes line breaks and hidden characters)."""
    if isinstance(value, (datetime, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    text = str(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + ELLIPSIS


def samples(values: pd.Series) -> list[Any]:
    """The first few values, as JSON."""
    return [jsonable(v) for v in values.head(SAMPLE_SIZE).tolist()]


def row_labels(rows: pd.DataFrame, config: CityConfig) -> list[Any]:
    """A few ids (or timestamps) of offending rows, so they can be found upstream."""
    for column in [*config.data.id_columns, config.data.timestamp_column]:
        if column in rows.columns:
            return samples(rows[column])
    return [int(i) for i in rows.index[:SAMPLE_SIZE]]


def percent_of(count: int, total: int) -> float:
    """``count`` as a percentage of ``total`` (0 when there is nothing), rounded to 4 decimals."""
    return round(100.0 * count / total, 4) if total else 0.0


def count_text(count: int, total: int, what: str = "rows") -> str:
    return f"{count:,} of {total:,} {what} ({percent_of(count, total):.2f}%)"
