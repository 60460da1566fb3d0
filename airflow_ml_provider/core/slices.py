"""Slices of the eval rows from ``evaluation.slices``: an integer code per row and slice family, never a mask per slice.

Slice ids are what reports show and what guardrail ``overrides`` are keyed by:

- ``column: district`` gives ``district=mitte``, one slice per value present in the eval rows;
- ``columns: [district, vehicle_type]`` gives ``district=mitte & vehicle_type=bike`` for every pair present;
- ``bins`` gives ``pickup_hour_band=morning`` with ``labels``, else ``pickup_hour=[6,10)``; every bin is listed, even
  an empty one, so a bin that lost its rows shows up as too small instead of disappearing;
- ``where`` gives the slice ``name``;
- ``overall`` is always there and holds every row.

Rows with a missing value (or outside the bin edges) belong to no slice of that family. A ``column``/``columns``
family may have at most ``MAX_SLICES`` slices: validate_data refuses data with more (``too_many_slices``), and so does
``slice_families``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airflow_ml_provider.config import Condition, SliceConfig

OVERALL = "overall"
# Every slice is a table row people read and a test in the Holm correction (so each extra slice costs the others
# power): a column with thousands of values (ids, free text) is a mistake, not a slicing.
MAX_SLICES = 500


@dataclass(frozen=True)
class SliceFamily:
    """The slices from one ``evaluation.slices`` entry: ``codes[i]`` indexes ``ids`` for row i, -1 for no slice."""

    label: str
    ids: tuple[str, ...]
    codes: np.ndarray

    def rows(self) -> np.ndarray:
        """Rows per slice, aligned with ``ids``."""
        return np.bincount(self.codes + 1, minlength=len(self.ids) + 1)[1:]


def slice_families(frame: pd.DataFrame, slices: Sequence[SliceConfig]) -> list[SliceFamily]:
    """``overall`` first, then one family per ``evaluation.slices`` entry, in config order.

    Raises ValueError when a slice uses a column the frame lacks, or when two slices would get the same id.
    """
    families = [SliceFamily(OVERALL, (OVERALL,), np.zeros(len(frame), dtype=np.intp))]
    for index, spec in enumerate(slices):
        where = f"evaluation.slices[{index}] ({spec.label})"
        missing = [c for c in spec.referenced_columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{where} uses column {missing[0]!r}, which is not in the eval data; fix the slice in the city "
                f"config or add the column to the data (eval columns: {sorted(map(str, frame.columns))})"
            )
        if spec.column is not None or spec.columns is not None:
            for columns, count in too_many_slices(frame, [spec]):
                raise ValueError(f"{where}: {_too_many_text(columns, count)}")
        if spec.column is not None:
            family = _column_family(frame, spec.column)
        elif spec.columns is not None:
            family = _cross_family(frame, spec.columns)
        elif spec.bins is not None:
            family = _bins_family(frame, spec, where)
        else:
            family = _where_family(frame, spec, where)
        families.append(family)
    seen: dict[str, str] = {}
    for family in families:
        for slice_id in family.ids:
            if slice_id in seen:
                raise ValueError(
                    f"slice id {slice_id!r} comes from both {seen[slice_id]!r} and {family.label!r} in "
                    "evaluation.slices; remove the duplicate or rename the `where` slice"
                )
            seen[slice_id] = family.label
    return families


def too_many_slices(frame: pd.DataFrame, slices: Sequence[SliceConfig]) -> list[tuple[list[str], int]]:
    """The ``column``/``columns`` slices whose columns have more than ``MAX_SLICES`` distinct values (pairs) in
    ``frame``, with their count; slices on columns the frame lacks are skipped (reported elsewhere)."""
    found = []
    for spec in slices:
        columns = [spec.column] if spec.column is not None else spec.columns
        if not columns or any(c not in frame.columns for c in columns):
            continue
        count = len(frame[columns].dropna().drop_duplicates())
        if count > MAX_SLICES:
            found.append((list(columns), count))
    return found


def _too_many_text(columns: list[str], count: int) -> str:
    what = "distinct values" if len(columns) == 1 else "distinct pairs of values"
    return (
        f"{' x '.join(map(repr, columns))} has {count:,} {what}, more than the {MAX_SLICES:,} slices one "
        "evaluation.slices entry may make; slice by a coarser column (or `bins`), or remove the slice"
    )


def _value_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factorize(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp, copy=False), [_value_text(u) for u in uniques]


def _column_family(frame: pd.DataFrame, column: str) -> SliceFamily:
    codes, values = _factorize(frame[column])
    return SliceFamily(column, tuple(f"{column}={v}" for v in values), codes)


def _cross_family(frame: pd.DataFrame, columns: list[str]) -> SliceFamily:
    first, second = columns
    codes_a, values_a = _factorize(frame[first])
    codes_b, values_b = _factorize(frame[second])
    present = (codes_a >= 0) & (codes_b >= 0)
    pair = codes_a[present].astype(np.int64) * len(values_b) + codes_b[present]
    pair_codes, pairs = pd.factorize(pair, sort=True)
    codes = np.full(len(frame), -1, dtype=np.intp)
    codes[present] = pair_codes
    ids = tuple(
        f"{first}={values_a[p // len(values_b)]} & {second}={values_b[p % len(values_b)]}" for p in pairs.tolist()
    )
    return SliceFamily(f"{first} x {second}", ids, codes)


def _numeric(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    try:
        return frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where} needs numbers in column {column!r}, got dtype {frame[column].dtype}; use a `column` slice for "
            "categories"
        ) from None


def _bins_family(frame: pd.DataFrame, spec: SliceConfig, where: str) -> SliceFamily:
    bins = spec.bins
    assert bins is not None
    values = _numeric(frame, bins.column, where)
    edges = np.asarray(bins.edges, dtype=np.float64)
    codes = np.digitize(values, edges) - 1
    codes[codes >= len(edges) - 1] = -1
    if bins.labels is not None:
        ids = tuple(f"{bins.column}_band={label}" for label in bins.labels)
    else:
        ids = tuple(f"{bins.column}=[{lo:g},{hi:g})" for lo, hi in zip(bins.edges, bins.edges[1:], strict=False))
    return SliceFamily(spec.label, ids, codes.astype(np.intp, copy=False))


def _where_family(frame: pd.DataFrame, spec: SliceConfig, where: str) -> SliceFamily:
    assert spec.where is not None and spec.name is not None
    mask = np.ones(len(frame), dtype=bool)
    for column, condition in spec.where.items():
        mask &= _condition_mask(frame, column, condition, where)
    return SliceFamily(spec.name, (spec.name,), np.where(mask, 0, -1).astype(np.intp))


def _condition_mask(frame: pd.DataFrame, column: str, condition: Condition, where: str) -> np.ndarray:
    """Rows where every given key of the condition holds; a missing value never matches."""
    series = frame[column]
    mask = np.ones(len(frame), dtype=bool)
    if condition.eq is not None:
        mask &= (series == condition.eq).to_numpy(dtype=bool, na_value=False)
    if condition.in_ is not None:
        mask &= series.isin(condition.in_).to_numpy(dtype=bool, na_value=False)
    bounds = (
        (condition.gte, np.greater_equal),
        (condition.gt, np.greater),
        (condition.lte, np.less_equal),
        (condition.lt, np.less),
    )
    if any(bound is not None for bound, _ in bounds):
        values = _numeric(frame, column, where)
        with np.errstate(invalid="ignore"):
            for bound, compare in bounds:
                if bound is not None:
                    mask &= compare(values, bound)
    return mask
