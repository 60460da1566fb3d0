"""DatasetHook on local files and on S3 (moto). The bad-input corpus and its messages: tests/core/test_validation.py."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from airflow_ml_provider.hooks.dataset import DatasetError, DatasetHook

BUCKET = "rides"  # created by the mocked_s3 fixture


@pytest.fixture
def s3(mocked_s3: str) -> DatasetHook:
    return DatasetHook()


def _frame(start: int = 0, rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"ride_id": [f"r{i}" for i in range(start, start + rows)], "eta_seconds": [600.0] * rows})


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_local_write_creates_folders_and_reads_back(tmp_path: Path) -> None:
    hook = DatasetHook()
    uri = str(tmp_path / "runs" / "berlin" / "run_1" / "snapshot.parquet")
    assert not hook.exists(uri)
    hook.write_bytes(uri, b"payload")
    assert hook.exists(uri)
    assert hook.read_bytes(uri) == b"payload"
    assert hook.exists(str(tmp_path / "runs") + "/")
    assert not hook.exists(str(tmp_path / "nothing") + "/")


def test_local_parquet_csv_and_explicit_format(tmp_path: Path) -> None:
    hook = DatasetHook()
    (tmp_path / "a.parquet").write_bytes(_parquet(_frame()))
    _frame().to_csv(tmp_path / "b.csv", index=False)
    _frame().to_csv(tmp_path / "export.dat", index=False)
    for name, fmt in (("a.parquet", None), ("b.csv", None), ("export.dat", "csv")):
        pd.testing.assert_frame_equal(hook.read_frame(str(tmp_path / name), fmt), _frame())


def test_local_folder_concatenates_parts_and_ignores_markers(tmp_path: Path) -> None:
    hook = DatasetHook()
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(_parquet(_frame(0)))
    (folder / "part-1.parquet").write_bytes(_parquet(_frame(3)))
    (folder / "_SUCCESS").write_bytes(b"")
    frame = hook.read_frame(str(folder) + "/")
    assert frame["ride_id"].tolist() == [f"r{i}" for i in range(6)]
    assert len(hook.read_frame(str(folder))) == 6  # a folder without the trailing / is read the same way


def test_local_folder_with_both_formats_needs_data_format(tmp_path: Path) -> None:
    hook = DatasetHook()
    (tmp_path / "a.parquet").write_bytes(_parquet(_frame()))
    _frame().to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DatasetError, match=r"both \.parquet and \.csv files; set data\.format"):
        hook.read_frame(str(tmp_path) + "/")
    assert len(hook.read_frame(str(tmp_path) + "/", "csv")) == 3


def test_unknown_explicit_format(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown format 'json'; use one of \['parquet', 'csv'\]"):
        DatasetHook().read_frame(str(tmp_path / "a.json"), "json")


def test_s3_write_read_and_exists(s3: DatasetHook) -> None:
    uri = f"s3://{BUCKET}/runs/berlin/run_1/snapshot.parquet"
    assert not s3.exists(uri)
    s3.write_bytes(uri, _parquet(_frame()))
    assert s3.exists(uri)
    assert s3.exists(f"s3://{BUCKET}/runs/berlin/")
    assert not s3.exists(f"s3://{BUCKET}/runs/lisbon/")
    assert not s3.exists("s3://no-such-bucket/key.parquet")
    pd.testing.assert_frame_equal(s3.read_frame(uri), _frame())


def test_s3_prefix_concatenates_objects_with_the_right_suffix(s3: DatasetHook) -> None:
    s3.write_bytes(f"s3://{BUCKET}/daily/2025-06-01/part-0.csv", _frame(0).to_csv(index=False).encode())
    s3.write_bytes(f"s3://{BUCKET}/daily/2025-06-01/part-1.csv", _frame(3).to_csv(index=False).encode())
    s3.write_bytes(f"s3://{BUCKET}/daily/2025-06-01/_SUCCESS", b"")
    frame = s3.read_frame(f"s3://{BUCKET}/daily/2025-06-01/")
    assert frame["ride_id"].tolist() == [f"r{i}" for i in range(6)]


def test_s3_errors_name_the_uri(s3: DatasetHook) -> None:
    with pytest.raises(DatasetError, match=r"s3://no-such-bucket/a\.parquet: bucket 'no-such-bucket' does not exist"):
        s3.read_frame("s3://no-such-bucket/a.parquet")
    with pytest.raises(DatasetError, match=r"s3://no-such-bucket/a: bucket 'no-such-bucket' does not exist"):
        s3.write_bytes("s3://no-such-bucket/a", b"x")
    with pytest.raises(DatasetError, match=r"s3://: no bucket name"):
        s3.read_bytes("s3://")
