"""City configuration: the YAML schema, loading with ``_defaults.yaml`` merged under each city, errors for people.

This module is imported while Airflow parses DAG files, so it must stay light: pydantic and PyYAML only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULTS_FILE = "_defaults.yaml"
CONFIG_DIR_ENV = "AIRFLOW_ML_CONFIG_DIR"
CITY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")  # Airflow's cron presets

REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "accuracy", "f1", "precision", "recall")
# Metrics where a larger value is better; for all others smaller is better.
HIGHER_IS_BETTER = frozenset({"r2", "roc_auc", "accuracy", "f1", "precision", "recall"})


class ConfigError(ValueError):
    """One or more problems in city config files; each line names the file and the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so a huge value cannot flood an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MODEL_NAME_PATTERN = r"^(?:[A-Za-z0-9_.-]|\{city\})+$"
MODEL_NAME_MAX_LENGTH = 200


class RegistryConfig(_Model):
    model_name: str = Field(
        "{city}",
        description="MLflow registered model name: letters, digits, `_`, `-`, `.` and `{city}` (the city's name). "
        "Unique across cities: a city may not register into another city's model.",
    )
    max_model_age_days: int | None = Field(
        None, ge=1, description="`airflow-ml status` warns when the champion is older than this."
    )

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if len(value) > MODEL_NAME_MAX_LENGTH or not re.fullmatch(MODEL_NAME_PATTERN, value):
            raise ValueError(
                f"{_shorten(value)!r} is not a model name: use up to {MODEL_NAME_MAX_LENGTH} letters, digits, `_`, "
                "`-` and `.`, with `{city}` for the city's name (e.g. eta_{city})"
            )
        return value


class StorageConfig(_Model):
    base_uri: str = Field(
        ".airflow-ml/runs",
        description="Local folder or s3://bucket/prefix where each run keeps its validated snapshot and model.",
    )
    aws_conn_id: str = "aws_default"


# The only Airflow templates data.uri may use: dates of the run, and the file a person names when triggering.
# Anything else (conn, var, macros, ti, ...) could put secrets into XCom and the MLflow tag airflow_ml.data_uri.
# `dag_run.conf['data_uri']` is allowed because whoever may trigger the DAG may already choose its run's inputs; its
# value is a plain string, rendered once (a template inside it is not rendered again), read with data.aws_conn_id,
# and trains only this city's model, which still needs approval.
_DATE_MACROS = ("data_interval_start", "data_interval_end", "logical_date")
DATA_URI_MACROS = (
    "ds",
    "ds_nodash",
    *_DATE_MACROS,
    *(f"{macro} | {date_filter}" for macro in _DATE_MACROS for date_filter in ("ds", "ds_nodash")),
    "dag_run.conf['data_uri']",
)
_ALLOWED_TEMPLATES = {re.sub(r"\s+", "", m) for m in DATA_URI_MACROS}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_ALLOWED_MACROS_TEXT = (
    "data.uri may only use {{ ds }}, {{ ds_nodash }}, {{ data_interval_start }}, {{ data_interval_end }}, "
    "{{ logical_date }} (the last three optionally with | ds or | ds_nodash) and {{ dag_run.conf['data_uri'] }}"
)


def data_uri_problem(uri: str) -> str | None:
    """Why ``uri`` may not be rendered by Airflow, or None: only ``{{ macro }}`` from DATA_URI_MACROS is allowed."""
    for match in _TEMPLATE.finditer(uri):
        if re.sub(r"\s+", "", match.group(1)).replace('"', "'") not in _ALLOWED_TEMPLATES:
            return f"the template {_shorten(match.group(0))} is not allowed; {_ALLOWED_MACROS_TEXT}"
    rest = _TEMPLATE.sub("", uri)
    for marker in ("{{", "}}", "{%", "%}", "{#", "#}"):
        if marker in rest:
            return f"{marker!r} outside a {{{{ macro }}}}; {_ALLOWED_MACROS_TEXT}"
    return None


class DataConfig(_Model):
    uri: str = Field(
        description="Local path or s3://bucket/key (a key ending in / reads every file under it). `{city}` is "
        "replaced; of Airflow's templates only " + ", ".join(f"`{{{{ {m} }}}}`" for m in DATA_URI_MACROS) + " are "
        "allowed."
    )
    format: Literal["parquet", "csv"] | None = Field(None, description="Defaults to the URI's suffix.")
    aws_conn_id: str = "aws_default"
    timestamp_column: str
    id_columns: list[str] = Field(default_factory=list, description="Identifiers that must never be features.")
    train_window_days: int = Field(90, ge=1)
    eval_window_days: int = Field(14, ge=1, description="The most recent days, never trained on.")

    @field_validator("uri")
    @classmethod
    def _allowed_templates(cls, value: str) -> str:
        problem = data_uri_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class FeaturesConfig(_Model):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> FeaturesConfig:
        if not self.numeric and not self.categorical:
            raise ValueError("declare at least one numeric or categorical feature")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {both}")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class ModelConfig(_Model):
    estimator: str = Field(description="Import path of a scikit-learn compatible estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)
    allowed_estimator_prefixes: list[str] = Field(
        default_factory=lambda: ["sklearn."],
        description="Module prefixes estimators may come from. Only `_defaults.yaml` may set this.",
    )

    @model_validator(mode="after")
    def _estimator_allowed(self) -> ModelConfig:
        if not any(self.estimator.startswith(p) for p in self.allowed_estimator_prefixes):
            raise ValueError(
                f"estimator {self.estimator!r} is not allowed; estimators must start with one of "
                f"{self.allowed_estimator_prefixes} (platform teams extend model.allowed_estimator_prefixes "
                f"in {DEFAULTS_FILE})"
            )
        return self


class ExpectationConfig(_Model):
    """One Great Expectations expectation: ``{expect_...: {kwargs}}`` with an optional ``severity``."""

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["error", "warning"] = "error"

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shape(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            value = dict(value)
            severity = value.pop("severity", "error")
            names = [k for k in value if isinstance(k, str) and k.startswith("expect_")]
            if len(names) != 1 or len(value) != 1:
                raise ValueError(
                    "each expectation is one `expect_<name>: {arguments}` entry with an optional `severity`, "
                    f"got keys {sorted(map(str, value))}"
                )
            kwargs = value[names[0]]
            if kwargs is None:
                kwargs = {}
            if not isinstance(kwargs, dict):
                raise ValueError(f"arguments of {names[0]} must be a mapping, got {kwargs!r}")
            return {"type": names[0], "kwargs": kwargs, "severity": severity}
        return value

    @field_validator("type")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not re.fullmatch(r"expect_[a-z0-9_]+", value):
            raise ValueError(f"expectation names are snake_case and start with expect_, got {value!r}")
        return value


class ValidationConfig(_Model):
    expectations: list[ExpectationConfig] = Field(default_factory=list)
    min_rows: int = Field(100, ge=1, description="Minimum rows in each of the train and eval windows.")
    max_duplicate_fraction: float = Field(
        0.01, ge=0, le=1, description="Fail when more than this share of rows are exact duplicates."
    )


Scalar = str | int | float | bool


class Condition(_Model):
    """A filter on one column: ``eq``, ``in``, or a half-open range ``[gte, lt)`` (``gt``/``lte`` also accepted)."""

    eq: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in")
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _scalar_is_eq(cls, value: Any) -> Any:
        if isinstance(value, (str, int, float, bool)):
            return {"eq": value}
        if isinstance(value, list):
            return {"in": value}
        return value

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if all(v is None for v in (self.eq, self.in_, self.gte, self.gt, self.lte, self.lt)):
            raise ValueError("a condition needs one of eq, in, gte, gt, lte, lt")
        return self


class BinsConfig(_Model):
    column: str
    edges: list[float] = Field(min_length=2, description="Bin edges; bins are [edge_i, edge_i+1).")
    labels: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BinsConfig:
        if any(b <= a for a, b in itertools.pairwise(self.edges)):
            raise ValueError(f"edges must increase strictly, got {self.edges}")
        if self.labels is not None and len(self.labels) != len(self.edges) - 1:
            raise ValueError(f"{len(self.edges) - 1} bins need {len(self.edges) - 1} labels, got {len(self.labels)}")
        return self


class SliceConfig(_Model):
    """One slice family: each value of a ``column`` or pair of ``columns``, numeric ``bins``, or a named ``where``."""

    name: str | None = None
    column: str | None = None
    columns: list[str] | None = Field(None, min_length=2, max_length=2)
    bins: BinsConfig | None = None
    where: dict[str, Condition] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SliceConfig:
        kinds = [k for k in ("column", "columns", "bins", "where") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a slice has exactly one of column, columns, bins, where; got {kinds or 'none'}")
        if self.where is not None and not self.name:
            raise ValueError("a `where` slice needs a `name`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.column:
            return self.column
        if self.columns:
            return " x ".join(self.columns)
        assert self.bins is not None
        return self.bins.column

    @property
    def referenced_columns(self) -> list[str]:
        if self.column:
            return [self.column]
        if self.columns:
            return list(self.columns)
        if self.bins:
            return [self.bins.column]
        return list(self.where or {})


class Tolerance(_Model):
    max_relative_regression: float | None = Field(None, ge=0)
    max_absolute_regression: float | None = Field(None, ge=0)


class GuardrailConfig(_Model):
    metric: str
    scope: Literal["slices", "overall"] = Field(
        "slices", description="`slices` judges every slice (and the overall rows); `overall` only all rows."
    )
    max_relative_regression: float | None = Field(
        None, ge=0, description="Largest tolerated regression vs the champion, as a fraction of its value."
    )
    max_absolute_regression: float | None = Field(None, ge=0)
    min_value: float | None = Field(None, description="Absolute floor for the candidate (e.g. r2, roc_auc).")
    max_value: float | None = Field(None, description="Absolute ceiling for the candidate (e.g. mae).")
    overrides: dict[str, Tolerance] = Field(
        default_factory=dict,
        description="Per-slice tolerances by slice id, e.g. `district=airport: {max_relative_regression: 0}`.",
    )

    @model_validator(mode="after")
    def _has_rule(self) -> GuardrailConfig:
        rules = (self.max_relative_regression, self.max_absolute_regression, self.min_value, self.max_value)
        if all(r is None for r in rules):
            raise ValueError(
                "a guardrail needs at least one of max_relative_regression, max_absolute_regression, "
                "min_value, max_value"
            )
        return self


class BaselineConfig(_Model):
    strategy: Literal["mean", "median", "majority", "column"] = "mean"
    column: str | None = Field(None, description="With strategy `column`: a heuristic prediction column.")

    @model_validator(mode="after")
    def _column(self) -> BaselineConfig:
        if (self.strategy == "column") != (self.column is not None):
            raise ValueError("`column` is required with strategy `column` and only allowed with it")
        return self


class EvaluationConfig(_Model):
    primary_metric: str
    slices: list[SliceConfig] = Field(default_factory=list)
    min_slice_rows: int = Field(200, ge=1)
    guardrails: list[GuardrailConfig] = Field(default_factory=list)
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence for noise-aware guardrail verdicts.")
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    threshold_fpr: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Classification: precision/recall are compared at the threshold giving the champion this FPR.",
    )


class NotifierConfig(_Model):
    """Who hears that a candidate waits for approval; the message links to Airflow's Required Actions page."""

    kind: Literal["smtp", "slack"] = Field(
        description="Airflow's SmtpNotifier, or SlackNotifier (`pip install 'airflow-ml-provider[slack]'`)."
    )
    conn_id: str | None = Field(None, description="Airflow connection; default smtp_default or slack_api_default.")
    to: list[str] | None = Field(None, description="smtp: recipients")
    channel: str | None = Field(None, description="slack: channel, default #general")


class ApprovalConfig(_Model):
    approvers: list[str] = Field(min_length=1, description="Airflow user names allowed to approve or reject.")
    timeout_hours: float = Field(72, gt=0, description="No answer by then means rejected.")
    on_guardrail_failure: Literal["block", "ask"] = "block"
    notifiers: list[NotifierConfig] = Field(default_factory=list)


class ResourcesConfig(_Model):
    pool: str | None = Field(None, description="Airflow pool for train/evaluate, so cities do not all train at once.")
    pool_slots: int = Field(1, ge=1)
    cpu: str | None = Field(None, description="KubernetesExecutor request, e.g. '2'.")
    memory: str | None = Field(None, description="KubernetesExecutor request, e.g. '4Gi'.")
    start_spread_minutes: int = Field(
        0,
        ge=0,
        le=59,
        description="Shift the cron minute by a stable per-city offset in [0, N) so cities on one cron spread out.",
    )


class CityConfig(_Model):
    """Everything one city's retraining DAG needs; see docs/config-reference.md."""

    schema_version: Literal[1] = 1
    city: Annotated[str, Field(pattern=CITY_NAME_PATTERN)]
    owner: str = "airflow"
    schedule: str | None = Field(None, description="Cron expression, or null for manual runs only.")
    retries: int = Field(2, ge=0, le=10)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    data: DataConfig
    task: Literal["regression", "classification"]
    target: str
    features: FeaturesConfig
    model: ModelConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig
    approval: ApprovalConfig
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter  # Airflow's own cron parser; light, unlike Airflow itself

        if value is None or value in CRON_PRESETS or (len(value.split()) == 5 and croniter.is_valid(value)):
            return value
        raise ValueError(
            f"{value!r} is not a cron expression Airflow accepts: five fields (minute hour day-of-month month "
            f"day-of-week, e.g. '0 3 * * 1'), one of {', '.join(CRON_PRESETS)}, or null for manual runs only"
        )

    @model_validator(mode="after")
    def _consistent(self) -> CityConfig:
        problems: list[str] = []
        metrics = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        if self.evaluation.primary_metric not in metrics:
            problems.append(
                f"evaluation.primary_metric: {self.evaluation.primary_metric!r} is not a {self.task} metric; "
                f"use one of {list(metrics)}"
            )
        for i, guardrail in enumerate(self.evaluation.guardrails):
            if guardrail.metric not in metrics:
                problems.append(
                    f"evaluation.guardrails[{i}].metric: {guardrail.metric!r} is not a {self.task} metric; "
                    f"use one of {list(metrics)}"
                )
        features = self.features.all
        if self.target in features:
            problems.append(f"features: the target {self.target!r} cannot also be a feature")
        for column in self.data.id_columns:
            if column in features:
                problems.append(f"features: {column!r} is an id column (data.id_columns) and cannot be a feature")
        if self.data.timestamp_column in features:
            problems.append(f"features: the timestamp column {self.data.timestamp_column!r} cannot be a feature")
        if self.evaluation.baseline.strategy == "majority" and self.task == "regression":
            problems.append("evaluation.baseline.strategy: `majority` is for classification; use mean or median")
        if problems:
            raise ValueError("\n".join(problems))  # one line per problem, as format_validation_error splits
        return self

    @property
    def model_name(self) -> str:
        return self.registry.model_name.replace("{city}", self.city)

    @property
    def data_uri(self) -> str:
        """``data.uri`` with ``{city}`` filled in; Airflow templates such as ``{{ ds }}`` are left for the task."""
        return self.data.uri.replace("{city}", self.city)

    @property
    def retrain_dag_id(self) -> str:
        return f"retrain_{self.city}"

    @property
    def rollback_dag_id(self) -> str:
        return f"rollback_{self.city}"

    def resolved(self) -> dict[str, Any]:
        """The city's YAML merged over the defaults with every default filled in, as YAML would spell it."""
        return self.model_dump(mode="json", by_alias=True)

    def config_hash(self) -> str:
        """sha256 of the resolved config, the lineage tag that says exactly which settings trained a model."""
        payload = json.dumps(self.resolved(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def config_dir() -> Path:
    """The city config folder: ``$AIRFLOW_ML_CONFIG_DIR``, else ``dags/configs`` of the current project."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or "dags/configs")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in ``override`` replaces ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"{path.name}: file not found in {path.parent}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path.name}: not valid YAML{where}: {problem}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path.name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]) from None
    except RecursionError:
        raise ConfigError([f"{path.name}: not valid YAML: nested too deeply"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path.name}: expected a mapping of settings at the top level, got {type(data).__name__}"])
    return data


def _field_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown key; check the spelling against docs/config-reference.md",
    "missing": "required field is missing",
    "string_pattern_mismatch": "must match {pattern}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "allows at most {max_length} item(s)",
}


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        message = _MESSAGES[kind].format(**{k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()})
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    if kind not in ("missing", "value_error") and "input" in error and not isinstance(error["input"], dict):
        message += f", got {error['input']!r}"
    return message


def format_validation_error(filename: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        path = _field_path(error["loc"])
        message = _describe(error)
        if error["type"] == "value_error" and path == "(top level)":
            problems.extend(f"{filename}: {part}" for part in message.split("\n"))
        else:
            problems.append(f"{filename}: {path}: {message}")
    return problems


def load_defaults(directory: Path) -> dict[str, Any]:
    path = directory / DEFAULTS_FILE
    return _read_yaml(path) if path.exists() else {}


def load_city_config(city: str, directory: Path | None = None, defaults: dict[str, Any] | None = None) -> CityConfig:
    """Load ``<directory>/<city>.yaml`` over ``_defaults.yaml``; raise ConfigError naming the file and the field."""
    directory = directory or config_dir()
    filename = f"{city}.yaml"
    if defaults is None:
        defaults = load_defaults(directory)
    raw = _read_yaml(directory / filename)
    problems: list[str] = []
    model = raw.get("model")
    if isinstance(model, dict) and "allowed_estimator_prefixes" in model:
        problems.append(
            f"{filename}: model.allowed_estimator_prefixes: may only be set in {DEFAULTS_FILE} "
            "(the platform team decides which estimator modules are allowed)"
        )
    if raw.get("city", city) != city:
        problems.append(f"{filename}: city: must equal the file name {city!r}, got {raw['city']!r}")
    merged = deep_merge(defaults, raw)
    merged.setdefault("city", city)
    try:
        config = CityConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(format_validation_error(filename, exc))
        raise ConfigError(problems) from None
    problems.extend(model_name_problems(config, directory, defaults))
    if problems:
        raise ConfigError(problems)
    return config


def _default_model_name(defaults: dict[str, Any]) -> str:
    registry = defaults.get("registry")
    name = registry.get("model_name") if isinstance(registry, dict) else None
    return name if isinstance(name, str) else RegistryConfig.model_fields["model_name"].default


# directory -> (fingerprint of its city files and the default name, {city: resolved model name})
_CLAIMS_CACHE: dict[Path, tuple[tuple, dict[str, str]]] = {}


def model_name_claims(directory: Path, defaults: dict[str, Any]) -> dict[str, str]:
    """Every city's resolved model name, read without validating the other cities.

    Cheap enough for every DAG-file parse: only files whose text mentions ``model_name`` are parsed as YAML, and
    the answer is cached until a city file changes. A file that cannot be read keeps its default name (its own
    parse reports what is wrong with it).
    """
    default_name = _default_model_name(defaults)
    paths = [p for p in sorted(directory.glob("*.yaml")) if not p.name.startswith("_")]
    stats = [(p.name, st.st_mtime_ns, st.st_size) for p in paths if (st := _stat(p))]
    fingerprint = (default_name, tuple(stats))
    cached = _CLAIMS_CACHE.get(directory)
    if cached and cached[0] == fingerprint:
        return cached[1]
    claims = {p.stem: (_explicit_model_name(p) or default_name).replace("{city}", p.stem) for p in paths}
    _CLAIMS_CACHE[directory] = (fingerprint, claims)
    return claims


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _explicit_model_name(path: Path) -> str | None:
    try:
        if "model_name" not in path.read_text(errors="replace"):
            return None
        registry = _read_yaml(path).get("registry")
    except Exception:  # unreadable or broken: that city's own parse reports it
        return None
    name = registry.get("model_name") if isinstance(registry, dict) else None
    return name if isinstance(name, str) and re.fullmatch(MODEL_NAME_PATTERN, name) else None


def model_name_problems(config: CityConfig, directory: Path, defaults: dict[str, Any]) -> list[str]:
    """A city may not register into another city's model: resolved names are unique across the folder.

    A name belongs to the city that the default ``registry.model_name`` gives it to: a file that takes another
    city's name is refused and the owner keeps building. Two files that set the same other name are both refused.
    """
    filename = f"{config.city}.yaml"
    name = config.model_name
    default_name = _default_model_name(defaults)
    mine = name == default_name.replace("{city}", config.city)
    problems = []
    for other, other_name in model_name_claims(directory, defaults).items():
        if other == config.city or other_name != name:
            continue
        theirs = other_name == default_name.replace("{city}", other)
        if mine and not theirs:
            continue  # the other file took this city's name: that file is the one refused
        if theirs and not mine:
            problems.append(
                f"{filename}: registry.model_name: {name!r} is the model of {other}.yaml (its name by "
                f"{DEFAULTS_FILE}); a city may only register its own model: choose another name"
            )
        elif not mine:
            problems.append(
                f"{filename}: registry.model_name: {name!r} is also set by {other}.yaml; every city needs its own "
                "model: rename one of them"
            )
        else:
            problems.append(
                f"{filename}: registry.model_name: {name!r} (from {DEFAULTS_FILE}) is also the model of {other}.yaml; "
                f"put {{city}} in the registry.model_name of {DEFAULTS_FILE}"
            )
    return problems


def city_names(directory: Path | None = None) -> list[str]:
    """City names of the ``<city>.yaml`` files in the folder (``_``-prefixed files are not cities)."""
    directory = directory or config_dir()
    return sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("_"))


def load_all(directory: Path | None = None) -> tuple[dict[str, CityConfig], list[str]]:
    """Every city config in the folder, and the problems of the ones that failed (each names its file)."""
    directory = directory or config_dir()
    configs: dict[str, CityConfig] = {}
    problems: list[str] = []
    try:
        defaults = load_defaults(directory)
    except ConfigError as exc:
        return {}, exc.problems
    for city in city_names(directory):
        if not re.fullmatch(CITY_NAME_PATTERN, city):
            problems.append(f"{city}.yaml: the file name must be a city name matching {CITY_NAME_PATTERN}")
            continue
        try:
            configs[city] = load_city_config(city, directory, defaults)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return configs, problems


def json_schema() -> dict[str, Any]:
    schema = CityConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "airflow-ml-provider city config"
    return schema
