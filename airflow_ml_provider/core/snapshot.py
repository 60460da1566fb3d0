"""The validated snapshot: the exact rows validate_data checked, as Parquet bytes whose sha256 later steps verify
(``core/storage.verified``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

    from airflow_ml_provider.core.windows import Windows


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of the frame without its index; the same frame always gives the same bytes (and sha256)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    # Statistics would only let readers skip row groups; the steps filter rows within the one row group a snapshot
    # of less than a million rows is.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="snappy", write_statistics=False)
    return buffer.getvalue()


def window_rows(
    data: bytes,
    windows: Windows,
    timestamp_column: str,
    window: Literal["train", "eval"],
    columns: Sequence[str] | None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The snapshot's rows of one window, train (before ``eval_start``) or eval (from it on), with only ``columns``
    (every column when None; no rows and no columns when empty), the first ``limit`` of them when given. The steps
    each use a part of the snapshot: Parquet decodes only those columns and hands pandas only those rows (turning
    text into Python strings is most of a read)."""
    import pandas as pd
    import pyarrow.parquet as pq

    if columns is not None:
        if not columns:
            return pd.DataFrame()
        # A column the snapshot lacks (a config edited after validation) is left to the step's own message about it.
        present = set(pq.read_schema(io.BytesIO(data)).names)
        columns = [column for column in dict.fromkeys(columns) if column in present]
    operator = "<" if window == "train" else ">="
    rows = pq.read_table(io.BytesIO(data), columns=columns, filters=[(timestamp_column, operator, windows.eval_start)])
    return (rows if limit is None else rows.slice(0, limit)).to_pandas()
