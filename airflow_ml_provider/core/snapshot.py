"""The validated snapshot: the exact rows validate_data checked, as Parquet bytes whose sha256 later steps verify."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from airflow_ml_provider.core.storage import sha256_hex

if TYPE_CHECKING:
    import pandas as pd


class SnapshotIntegrityError(ValueError):
    """The snapshot's bytes are not the ones validate_data wrote."""


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of the frame without its index; the same frame always gives the same bytes (and sha256)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    # Statistics would only help readers that filter row groups; later steps read the whole snapshot.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="snappy", write_statistics=False)
    return buffer.getvalue()


def from_parquet_bytes(data: bytes, expected_sha256: str, uri: str) -> pd.DataFrame:
    """The snapshot as a frame, only if its sha256 is the one recorded when it was validated."""
    import pandas as pd

    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise SnapshotIntegrityError(
            f"{uri}: sha256 is {actual} but validate_data recorded {expected_sha256}; refusing to train on data "
            "that was not validated. The snapshot changed after validation: clear validate_data to validate again."
        )
    return pd.read_parquet(io.BytesIO(data))
