"""Bad data files, each with the error a data scientist should see: one corpus for the fast test of the checks
(tests/core/test_validation.py) and for whole DAG runs that must fail without registering anything or moving the
champion (tests/integration/test_bad_input_dag.py).

Its last section is hostile data: well-formed files whose values try to become markup, break a renderer or make
metrics meaningless. Each either fails validate_data naming the column (in ``CORPUS``, run like the bad files) or runs
to a report that shows the values as text (``HOSTILE_RUNS``, whole runs in tests/integration/test_hostile_data_dag.py).

Every file holds the last 30 days of berlin's demo rides before ``DATA_END`` (or what is left of them once broken);
the runs use ``DATA_END`` as logical date with the default windows: 90 training days, then 14 evaluation days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from airflow_ml_provider.core.demo_data import make_city_data
from airflow_ml_provider.core.snapshot import to_parquet_bytes

DATA_END = datetime(2025, 6, 2, tzinfo=timezone.utc)
EVAL_START = pd.Timestamp("2025-05-19", tz="UTC")
BUCKET = "rides"


@dataclass(frozen=True)
class BadInput:
    """``file`` is a file name, or ``s3/<key>`` for an object of ``BUCKET``; ``make`` turns clean rides into its bytes
    (None: nothing is written). ``outcome``: ``read`` (DatasetError), ``fail`` (validation fails), ``warn`` or
    ``pass`` (validation passes); ``texts`` must all be in the message."""

    name: str
    file: str
    make: Callable[[pd.DataFrame], bytes | None]
    outcome: str
    texts: list[str]

    def uri(self, folder: Path) -> str:
        return f"s3://{BUCKET}/{self.file[3:]}" if self.file.startswith("s3/") else str(folder / self.file)

    @property
    def is_bad(self) -> bool:
        return self.outcome in ("read", "fail")


def clean_rides() -> pd.DataFrame:
    """The demo rides the clean files are made from, 110 days to ``DATA_END``."""
    return make_city_data("berlin", end=DATA_END.date(), days=110)


def write(bad_input: BadInput, clean: pd.DataFrame, folder: Path, write_bytes: Callable[[str, bytes], None]) -> str:
    """Write the input's file (if any) and return its URI."""
    uri = bad_input.uri(folder)
    data = bad_input.make(_recent_days(clean))
    if data is not None:
        write_bytes(uri, data)
    return uri


def _parquet(frame: pd.DataFrame) -> bytes:
    return to_parquet_bytes(frame)


def _csv(frame: pd.DataFrame, sep: str = ",") -> bytes:
    return frame.to_csv(index=False, sep=sep).encode()


def _recent_days(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["requested_at"] >= EVAL_START - pd.Timedelta(days=16)].reset_index(drop=True)


def _set_last(frame: pd.DataFrame, column: str, values: list) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[-len(values) :], column] = values
    return frame.infer_objects()


# (name, file name: s3:// when it starts with "s3/", how to make its bytes (None: write nothing), outcome, texts)


CORPUS: list[BadInput] = [
    BadInput("empty file", "rides.parquet", lambda f: b"", "read", ["rides.parquet: is empty (0 bytes)"]),
    BadInput(
        "header-only CSV",
        "rides.csv",
        lambda f: _csv(f.iloc[:0]),
        "fail",
        ["train_window_rows: 0 rows between 2025-02-18 00:00 UTC and 2025-05-19 00:00 UTC", "eval_window_rows: 0 rows"],
    ),
    BadInput(
        "wrong dtype",
        "rides.csv",
        lambda f: _csv(_set_last(f, "distance_km", ["4,2 km"] * 3)),
        "fail",
        ["numeric_dtype on column 'distance_km'", "3 of ", "are not numbers, e.g. ['4,2 km', '4,2 km', '4,2 km']"],
    ),
    BadInput(
        "all-null target",
        "rides.parquet",
        lambda f: _parquet(f.assign(eta_seconds=np.nan)),
        "fail",
        ["target_not_null on column 'eta_seconds'", "(100.00%) have no target value", "e.g. rows ['BER-"],
    ),
    BadInput(
        "infinite values",
        "rides.parquet",
        lambda f: _parquet(_set_last(f, "traffic_index", [np.inf, -np.inf])),
        "fail",
        ["finite_values on column 'traffic_index': 2 of ", "e.g. ['inf', '-inf']"],
    ),
    BadInput(
        "future timestamps",
        "rides.parquet",
        lambda f: _parquet(_set_last(f, "requested_at", [pd.Timestamp("2031-01-01", tz="UTC")] * 4)),
        "warn",
        ["future_timestamps on column 'requested_at': 4 of ", "latest 2031-01-01 00:00 UTC); they were not used"],
    ),
    BadInput(
        "empty eval window",
        "rides.parquet",
        lambda f: _parquet(f[f["requested_at"] < EVAL_START]),
        "fail",
        ["eval_window_rows: 0 rows between 2025-05-19 00:00 UTC and 2025-06-02 00:00 UTC, validation.min_rows is 500"],
    ),
    BadInput(
        "duplicate rows",
        "rides.parquet",
        lambda f: _parquet(pd.concat([f, f.iloc[-400:]])),
        "fail",
        ["duplicate_rows: 400 of ", "are exact copies of another row", "max_duplicate_fraction is 0.01"],
    ),
    BadInput(
        "corrupt Parquet",
        "rides.parquet",
        lambda f: _parquet(f)[:-100],
        "read",
        ["rides.parquet: not a valid Parquet file"],
    ),
    BadInput(
        "CSV with semicolons",
        "rides.csv",
        lambda f: _csv(f, sep=";"),
        "read",
        ["rides.csv: the CSV file has a single column 'ride_id;requested_at;", "the delimiter looks wrong"],
    ),
    BadInput(
        "CSV with tabs",
        "rides.csv",
        lambda f: _csv(f, sep="\t"),
        "read",
        ["the delimiter looks wrong (the header contains a tab); write the file with ',' as delimiter"],
    ),
    BadInput(
        "missing S3 key",
        "s3/missing/rides.parquet",
        lambda f: None,
        "read",
        ["s3://rides/missing/rides.parquet: no such S3 object; check data.uri"],
    ),
    BadInput(
        "zero-byte S3 object",
        "s3/zero/rides.parquet",
        lambda f: b"",
        "read",
        ["s3://rides/zero/rides.parquet: is empty (0 bytes)"],
    ),
    BadInput(
        "empty S3 prefix", "s3/nothing/", lambda f: None, "read", ["s3://rides/nothing/: no objects under this prefix"]
    ),
    BadInput(
        "unknown format",
        "rides.json",
        lambda f: b"{}",
        "read",
        ["rides.json: cannot tell the file format from the name", "set data.format to parquet or csv"],
    ),
    BadInput(
        "Parquet named .csv",
        "rides.csv",
        lambda f: _parquet(f),
        "read",
        ["rides.csv: not a UTF-8 CSV file (it looks like Parquet: set data.format to parquet)"],
    ),
    BadInput(
        "missing local file", "rides.parquet", lambda f: None, "read", ["rides.parquet: file not found; check data.uri"]
    ),
    BadInput(
        "missing column",
        "rides.parquet",
        lambda f: _parquet(f.drop(columns=["traffic_index"])),
        "fail",
        [
            "column_present on column 'traffic_index': the numeric feature column is missing",
            "expect_column_values_to_be_between(column=traffic_index, min_value=0, max_value=1): could not be "
            "evaluated",
        ],
    ),
    BadInput(
        "unparseable timestamps",
        "rides.csv",
        lambda f: _csv(_set_last(f, "requested_at", ["31/05/2025 08:00"] * 2)),
        "fail",
        ["timestamp_parseable on column 'requested_at': 2 of ", "e.g. ['31/05/2025 08:00', '31/05/2025 08:00']"],
    ),
    BadInput(
        "expectation fails",
        "s3/bad/rides.parquet",
        lambda f: _parquet(_set_last(f, "eta_seconds", [5.0, 20000.0])),
        "fail",
        [
            "Data validation failed for",
            "(1 problem):",
            "expect_column_values_to_be_between(column=eta_seconds, min_value=30, max_value=14400): 2 of ",
            "unexpected, e.g. [5.0, 20000.0]",
        ],
    ),
    BadInput("clean CSV", "rides.csv", lambda f: _csv(f), "pass", ["Data validation passed for berlin"]),
]


# --- hostile data: values are data, never markup; undefined metrics say so ---

INJECTION = "x\n\n## PASS: all fine\n![](https://example.invalid/p.png) [Approve](https://example.invalid)"
LONG_VALUE = "long-" + "y" * 10_235  # 10 kB
# Every district of the clean rides gets a hostile name, so each is a slice big enough to be judged.
HOSTILE_DISTRICTS = {
    "charlottenburg": INJECTION,
    "schoeneberg": "$\\notacommand$",  # matplotlib math text: raises on savefig when parsed
    "spandau": "C:\\new\\table\\",
    "prenzlauer_berg": "<script>alert(1)</script><b>bold</b> &amp;",
    "neukoelln": LONG_VALUE,
    "kreuzberg": "\u202eevil.exe",  # right-to-left override
    "tegel_airport": "mi\u200btte\u200d",  # zero-width space and joiner
    "mitte": "nan",
    "friedrichshain": "None",
    "tempelhof": "",
}


def hostile_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Hostile district names, and hostile weather values on a few rows (the weather value set is a warning, so
    they reach the validation report's samples)."""
    frame = frame.assign(district=frame["district"].map(lambda d: HOSTILE_DISTRICTS.get(d, d)))
    frame = _set_last(frame, "weather", [INJECTION, "<script>alert(1)</script>", LONG_VALUE])
    return frame


def _mixed_time_zones(frame: pd.DataFrame) -> pd.DataFrame:
    """The same instants written in three ways (UTC with Z, +02:00, naive meaning UTC), a constant target, and four
    rides in the future."""
    frame = frame.assign(eta_seconds=600.0)
    instants = frame["requested_at"]
    written = np.select(
        [np.arange(len(frame)) % 3 == 0, np.arange(len(frame)) % 3 == 1],
        [
            instants.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            instants.dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
        ],
        instants.dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    frame = frame.assign(requested_at=written)
    return _set_last(frame, "requested_at", ["2031-01-01T00:00:00+05:30"] * 4)


HOSTILE_RUNS: list[BadInput] = [
    BadInput(
        "hostile category values",
        "rides.parquet",
        lambda f: _parquet(hostile_values(f)),
        "warn",
        [
            "expect_column_values_to_be_in_set(column=weather, value_set=['clear', 'rain', 'snow', 'fog']): 3 of ",
            # samples are shown with repr (one line, hidden characters escaped) and cut to 80 characters
            "'x\\n\\n## PASS: all fine\\n![](https://example.invalid/p.png) [Approve](https://examp…'",
            "'long-" + "y" * 74 + "…'",
        ],
    ),
    BadInput(
        "mixed time zones, future rides, constant target",
        "rides.csv",
        lambda f: _csv(_mixed_time_zones(f)),
        "warn",
        ["future_timestamps on column 'requested_at': 4 of "],
    ),
]
HOSTILE_FAILURES: list[BadInput] = [
    BadInput(
        "ten thousand distinct categories",
        "rides.parquet",
        lambda f: _parquet(f.assign(district=[f"district-{i:05d}" for i in range(len(f))])),
        "fail",
        ["slice_cardinality on column 'district': ", "distinct values in the eval window, more than the 500"],
    ),
    BadInput(
        "all-zero target",
        "rides.parquet",
        lambda f: _parquet(f.assign(eta_seconds=0.0)),
        "fail",
        ["expect_column_values_to_be_between(column=eta_seconds, min_value=30, max_value=14400): "],
    ),
]
CORPUS += HOSTILE_RUNS + HOSTILE_FAILURES
