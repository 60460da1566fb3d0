"""``airflow-ml init``: a city's config and loader written from a look at its table, every choice commented.

table_inference.py decides what the table supports; this module renders those decisions as YAML, each value with why
it was chosen next to it, and writes the files. Values ``_defaults.yaml`` already holds are left out. Nothing is
written unless the result loads as a valid city config.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from airflow_ml_provider.config import CityConfig, config_dir, deep_merge, format_validation_error, load_defaults
from airflow_ml_provider.tools.lint import LOADER_TEMPLATE
from airflow_ml_provider.tools.table_inference import (
    RANGE_MARGIN,
    RANGE_QUANTILES,
    Choices,
    InitError,
    Plan,
    plan_city,
    read_table,
)

SKEWED = 1.0  # a regression target this skewed is fit for its median: mae, the default metric, judges medians
MAX_SLICE_VALUES = 12  # a categorical column with at most this many values becomes a slice family
MAX_SLICE_COLUMNS = 4
RANGE_MOSTLY = 0.99
HOUR_BANDS = (("night", 0, 6), ("morning", 6, 10), ("midday", 10, 16), ("evening", 16, 20), ("late", 20, 24))
REGRESSOR = "sklearn.ensemble.HistGradientBoostingRegressor"  # its `loss: absolute_error` fits medians
CLASSIFIER = "sklearn.ensemble.HistGradientBoostingClassifier"
CLASSIFICATION_METRIC = "roc_auc"


def render(plan: Plan, defaults: dict[str, Any], command: str) -> str:
    """The city's YAML: what differs from ``defaults``, each value with why it was chosen."""
    out = _Yaml(defaults)
    span = f"{plan.first:%Y-%m-%d %H:%M} to {plan.last:%Y-%m-%d %H:%M} UTC"
    out.comment(f"Generated from {plan.rows:,} rows ({span}) by")
    out.comment(f"  {command}")
    out.comment("Everything not set here comes from _defaults.yaml (mappings merge, lists replace). Every choice is")
    out.comment(f"explained next to it: edit what is wrong, then `airflow-ml lint` and `airflow-ml run {plan.city}`.")
    out.line(f"city: {plan.city}")
    out.leaf(
        ("schedule",),
        None,
        f"manual runs: the table ends {plan.last:%Y-%m-%d}; set a cron once it is refreshed on that schedule",
    )
    model_name = re.sub(r"[^a-z0-9_]+", "_", plan.target.lower()).strip("_") + "_{city}"
    with out.section("registry"):
        out.leaf(("registry", "model_name"), model_name, "MLflow model name, after the target")
    ids = plan.named("id")
    timestamp = plan.named("timestamp")[0]
    with out.section("data"):
        out.leaf(("data", "uri"), plan.data_uri, "local path or s3://bucket/key; Parquet or CSV by suffix")
        out.leaf(("data", "timestamp_column"), timestamp.name, timestamp.why)
        out.leaf(
            ("data", "id_columns"),
            [c.name for c in ids],
            "unique per row: identifiers, never features" if ids else "no column is unique per row",
        )
        out.comment(
            f"Windows end at the run's logical date; `airflow-ml run {plan.city}` defaults it to "
            f"{plan.end:%Y-%m-%d}, the day after the last row.",
            indent=2,
        )
        out.leaf(
            ("data", "train_window_days"),
            plan.train_days,
            f"{plan.train_rows:,} rows before the eval window",
            always_comment=True,
        )
        out.leaf(
            ("data", "eval_window_days"),
            plan.eval_days,
            f"the most recent {plan.eval_days} days, {plan.eval_rows:,} rows, never trained on",
            always_comment=True,
        )
    out.leaf(("task",), plan.task, "from the target's values" if plan.task == "regression" else "0/1 labels")
    out.leaf(("target",), plan.target, "")
    with out.section("features", force=True):
        for role in ("numeric", "categorical"):
            chosen = plan.named(role)
            if not chosen:
                out.line(f"  {role}: []")
                continue
            out.line(f"  {role}:")
            for column in chosen:
                out.line(f"    - {_flow(column.name)}", column.why)
        ignored = plan.named("ignored")
        if ignored:
            out.comment("Not features:", indent=2)
            for column in ignored:
                out.comment(f"  {column.name}: {column.why}", indent=2)
    with out.section("model"):
        if plan.task == "classification":
            out.leaf(("model", "estimator"), CLASSIFIER, "0/1 target; params (max_iter, ...) from _defaults.yaml")
        elif plan.target_skew > SKEWED and _metric(defaults) == "mae" and _estimator(defaults) == REGRESSOR:
            out.line("  params:")
            out.line(
                "    loss: absolute_error",
                f"the target is skewed ({plan.target_skew:.1f}): fit its median, which mae rewards, not its mean",
            )
    duplicates_allowed = (defaults.get("validation") or {}).get("max_duplicate_fraction", 0.01)
    with out.section("validation", force=True):
        if plan.duplicate_share > duplicates_allowed:
            share = math.ceil(plan.duplicate_share * 1000) / 1000 + 0.001
            out.leaf(
                ("validation", "max_duplicate_fraction"),
                share,
                f"{plan.duplicate_share:.2%} of the rows are exact copies; de-duplicate upstream and lower this",
            )
        out.line("  expectations:")
        out.line(
            f"    - expect_column_values_to_not_be_null: {_flow({'column': plan.target})}",
            "a row without a target cannot train",
        )
        out.comment(
            f"Ranges: the observed {RANGE_QUANTILES[0]:.1%} to {RANGE_QUANTILES[1]:.1%} quantiles widened by "
            f"{RANGE_MARGIN:.0%} each side; at least {RANGE_MOSTLY:.0%} of rows must fall inside.",
            indent=4,
        )
        for column in [*plan.named("target"), *plan.named("numeric")]:
            if column.low is None:
                continue
            kwargs = {"column": column.name, "min_value": column.low, "max_value": column.high, "mostly": RANGE_MOSTLY}
            out.line(f"    - expect_column_values_to_be_between: {_flow(kwargs)}")
        if plan.named("categorical"):
            out.comment(
                "Value sets warn: a new value is worth knowing about; the model treats it as unknown.", indent=4
            )
        for column in plan.named("categorical"):
            out.line(
                f"    - expect_column_values_to_be_in_set: {_flow({'column': column.name, 'value_set': column.values})}"
            )
            out.line("      severity: warning")
    with out.section("evaluation", force=True):
        if plan.task == "classification":
            out.leaf(("evaluation", "primary_metric"), CLASSIFICATION_METRIC, "ranking quality of P(label 1)")
        slices = [c for c in plan.named("categorical") if len(c.values) <= MAX_SLICE_VALUES][:MAX_SLICE_COLUMNS]
        if not slices and not plan.hour_column:
            out.line("  slices: []", "no categorical column with few values and no hour-of-day column")
        else:
            out.line("  slices:")
            for column in slices:
                out.line(f"    - column: {_flow(column.name)}", f"{len(column.values)} values, one slice each")
            if plan.hour_column:
                out.comment(f"{plan.hour_column} is an hour of day (0-23): one slice per band of hours", indent=4)
                for name, lo, hi in HOUR_BANDS:
                    where = {plan.hour_column: {"gte": lo, "lt": hi}}
                    out.line(f"    - {_flow({'name': f'{plan.hour_column}_{name}', 'where': where})}")
        if plan.task == "classification":
            out.line("  guardrails:", "no slice may rank more than 2% worse than the champion (first run: baseline)")
            out.line(f"    - {_flow({'metric': CLASSIFICATION_METRIC, 'max_relative_regression': 0.02})}")
    with out.section("approval"):
        out.leaf(
            ("approval", "approvers"),
            [plan.approver],
            "Airflow users; `airflow-ml standalone` and `airflow-ml run` create local accounts for them",
        )
    return out.text()


def _metric(defaults: dict[str, Any]) -> str | None:
    return (defaults.get("evaluation") or {}).get("primary_metric")


def _estimator(defaults: dict[str, Any]) -> str | None:
    return (defaults.get("model") or {}).get("estimator")


class _Yaml:
    """Builds commented YAML by hand (PyYAML drops comments); leaves equal to the defaults are skipped."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.lines: list[str] = []
        self._pending: list[str] | None = None

    def line(self, text: str, why: str = "") -> None:
        if self._pending:
            self.lines.extend(self._pending)
            self._pending = None
        self.lines.append(f"{text}  # {why}" if why else text)

    def comment(self, text: str, indent: int = 0) -> None:
        self.line(" " * indent + f"# {text}")

    def leaf(self, path: tuple[str, ...], value: Any, why: str, always_comment: bool = False) -> None:
        default: Any = self.defaults
        for key in path:
            default = default.get(key, _MISSING) if isinstance(default, dict) else _MISSING
        indent = "  " * (len(path) - 1)
        if default is not _MISSING and default == value:
            if always_comment:
                self.comment(f"{path[-1]}: {_flow(value)} from _defaults.yaml: {why}", indent=len(indent))
            return
        self.line(f"{indent}{path[-1]}: {_flow(value)}", why)

    def section(self, key: str, force: bool = False) -> _Section:
        return _Section(self, key, force)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Section:
    """A top-level mapping, written only when something inside it is (or ``force``)."""

    def __init__(self, out: _Yaml, key: str, force: bool) -> None:
        self.out, self.key, self.force = out, key, force

    def __enter__(self) -> None:
        if self.force:
            self.out.line(f"{self.key}:")
        else:
            self.out._pending = [f"{self.key}:"]

    def __exit__(self, *exc: object) -> None:
        self.out._pending = None


_MISSING = object()


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style), quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()


def validate_rendered(city: str, text: str, defaults: dict[str, Any]) -> CityConfig:
    """The rendered YAML loaded as ``load_city_config`` would load it; InitError (a bug here) when it is invalid."""
    from pydantic import ValidationError

    merged = deep_merge(defaults, yaml.safe_load(text))
    try:
        return CityConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "\n".join(format_validation_error(f"{city}.yaml", exc))
        raise InitError(f"the generated config is not valid (please report this):\n{problems}") from None


def init_city(
    choices: Choices, *, directory: Path | None = None, command: str = "airflow-ml init"
) -> tuple[Path, Path, Plan]:
    """Write ``<directory>/<city>.yaml`` and its loader ``<directory>/../<city>.py``; refuse to overwrite either."""
    city = choices.city
    directory = directory or config_dir()
    config_path, loader_path = directory / f"{city}.yaml", directory.parent / f"{city}.py"
    for path in (config_path, loader_path):
        if path.exists():
            raise InitError(f"{path} already exists; pick another city name or edit that file")
    if not directory.is_dir():
        raise InitError(f"{directory}: no such config folder; run from the project root or set AIRFLOW_ML_CONFIG_DIR")
    defaults = load_defaults(directory)
    frame = read_table(choices.data_uri, (defaults.get("data") or {}).get("aws_conn_id", "aws_default"))
    plan = plan_city(frame, choices, defaults)
    text = render(plan, defaults, command)
    validate_rendered(city, text, defaults)
    config_path.write_text(text)
    loader_path.write_text(LOADER_TEMPLATE.format(city=city))
    return config_path, loader_path, plan
