"""validate_data's cost on 1M rows against Great Expectations alone on the same frame and suite.

Ours = read the local Parquet file (DatasetHook) + built-in checks + the GE suite + snapshot bytes + sha256.
Bare GE = one ephemeral-context validation of the same suite on the frame already read from that file.
Runs alternate; the best of each is compared, in wall-clock and in CPU time (CPU time stays meaningful when other
processes share the machine). Goal: ours <= 1.5 x bare GE. Run: ``.venv/bin/python benchmarks/validation.py [rows]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_ml_provider.config import CityConfig, ExpectationConfig, load_city_config
from airflow_ml_provider.core.demo_data import city_districts, make_city_data, write_city_data
from airflow_ml_provider.core.snapshot import to_parquet_bytes
from airflow_ml_provider.core.storage import sha256_hex
from airflow_ml_provider.core.validation import validate
from airflow_ml_provider.core.windows import Windows
from airflow_ml_provider.hooks.dataset import DatasetHook

END = date(2025, 6, 2)
REPEATS = 5
# Added to the five expectations of _defaults.yaml: ten in all.
EXTRA_EXPECTATIONS = [
    {"expect_column_values_to_not_be_null": {"column": "distance_km"}},
    {"expect_column_values_to_not_be_null": {"column": "district"}},
    {"expect_column_values_to_be_in_set": {"column": "vehicle_type", "value_set": ["car", "bike", "scooter", "van"]}},
    {"expect_column_values_to_be_between": {"column": "pickup_hour", "min_value": 0, "max_value": 23}},
    {"expect_column_values_to_be_in_set": {"column": "district", "value_set": city_districts("berlin")}},
]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _data(rows: int) -> pd.DataFrame:
    days = rows // 300
    frame = make_city_data("berlin", end=END, days=days)
    while len(frame) < rows:
        days *= 2
        frame = make_city_data("berlin", end=END, days=days)
    return frame.iloc[-rows:].reset_index(drop=True)


def _bare_ge(frame: pd.DataFrame, expectations: list[ExpectationConfig]) -> None:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    )
    suite = gx.ExpectationSuite(name="bench")
    for e in expectations:
        suite.add_expectation(getattr(gx.expectations, "".join(p.capitalize() for p in e.type.split("_")))(**e.kwargs))
    batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format="SUMMARY")


def _ours(hook: DatasetHook, path: str, config: CityConfig, windows: Windows) -> dict[str, tuple[float, float]]:
    frame, *read = _timed(lambda: hook.read_frame(path))
    outcome, *checked = _timed(lambda: validate(frame, config, windows))
    assert outcome.success, outcome.message()
    _, *snapshot = _timed(lambda: sha256_hex(to_parquet_bytes(outcome.frame)))
    builtin = config.model_copy(update={"validation": config.validation.model_copy(update={"expectations": []})})
    _, *builtin_only = _timed(lambda: validate(frame, builtin, windows))
    total = (read[0] + checked[0] + snapshot[0], read[1] + checked[1] + snapshot[1])
    parts = {"read": read, "validate": checked, "builtin": builtin_only, "snapshot": snapshot}
    return {"total": total, **{name: tuple(times) for name, times in parts.items()}}


def main(rows: int) -> None:
    config = load_city_config("berlin", Path(__file__).resolve().parents[1] / "dags" / "configs")
    expectations = [*config.validation.expectations, *(ExpectationConfig.model_validate(e) for e in EXTRA_EXPECTATIONS)]
    config = config.model_copy(
        update={"validation": config.validation.model_copy(update={"expectations": expectations})}
    )
    frame = _data(rows)
    end = datetime.combine(END, datetime.min.time(), tzinfo=timezone.utc)
    first = frame["requested_at"].min().to_pydatetime()
    windows = Windows.ending_at(end, train_days=(end - first).days + 1 - 14, eval_days=14)  # every row is checked

    with tempfile.TemporaryDirectory() as folder:
        path = str(write_city_data(frame, Path(folder) / "rides.parquet"))
        hook = DatasetHook()
        validate(frame.head(50_000), config, windows)  # imports GE; warms up both paths
        _bare_ge(frame.head(50_000), expectations)
        ours, bare = [], []
        for _ in range(REPEATS):
            loaded = hook.read_frame(path)
            bare.append(_timed(partial(_bare_ge, loaded, expectations))[1:])
            ours.append(_ours(hook, path, config, windows))

    print(f"rows: {rows:,}, expectations: {len(expectations)}, best of {REPEATS} alternating runs (wall / CPU)")
    best_bare = [min(b[i] for b in bare) for i in (0, 1)]
    best = [min(o["total"][i] for o in ours) for i in (0, 1)]
    print(f"bare GE on the loaded frame:                {best_bare[0]:5.2f} s / {best_bare[1]:5.2f} s")
    print(f"ours: read + validate + snapshot + sha256:  {best[0]:5.2f} s / {best[1]:5.2f} s")
    for part in ("read", "validate", "builtin", "snapshot"):
        label = {"builtin": "  (built-in checks alone)", "snapshot": "snapshot bytes + sha256"}.get(part, part)
        print(f"  {label:<40} {min(o[part][0] for o in ours):5.2f} s / {min(o[part][1] for o in ours):5.2f} s")
    for kind, i in (("wall", 0), ("CPU", 1)):
        ratio = best[i] / best_bare[i]
        print(f"ratio ours / bare GE ({kind}): {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
