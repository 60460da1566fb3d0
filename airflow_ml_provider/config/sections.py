"""One pydantic model per section of a city's YAML (``registry``, ``data``, ``features``, ... ``resources``).

Imported while Airflow parses DAG files: pydantic only.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_ml_provider.config.templates import DATA_URI_MACROS, data_uri_problem, has_template, shorten

DEFAULTS_FILE = "_defaults.yaml"


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
                f"{shorten(value)!r} is not a model name: use up to {MODEL_NAME_MAX_LENGTH} letters, digits, `_`, "
                "`-` and `.`, with `{city}` for the city's name (e.g. eta_{city})"
            )
        return value


class StorageConfig(_Model):
    base_uri: str = Field(
        ".airflow-ml/runs",
        description="Local folder or s3://bucket/prefix where each run keeps its validated snapshot and model.",
    )
    aws_conn_id: str = "aws_default"


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
    to: list[str] | None = Field(None, description="smtp: recipients' addresses, required with kind smtp.")
    channel: str | None = Field(None, description="slack: channel, default #general")

    to_example: ClassVar[str] = "['ml-team@example.com']"  # the approval digest's suggests a per-approver address

    @model_validator(mode="after")
    def _addressed(self) -> NotifierConfig:
        if self.kind == "smtp" and not self.to:  # SmtpNotifier would send to nobody, without an error
            raise ValueError(f"kind smtp needs `to`: the addresses, e.g. {self.to_example}")
        return self


class ApprovalConfig(_Model):
    approvers: list[str] = Field(min_length=1, description="Airflow user names allowed to approve or reject.")
    timeout_hours: float = Field(72, gt=0, description="No answer by then means rejected.")
    on_guardrail_failure: Literal["block", "ask"] = "block"
    notifiers: list[NotifierConfig] = Field(default_factory=list)


def _asset_identifier(value: str) -> str:
    """A ``retrain_on.assets`` entry: Airflow refuses an empty one in an error naming no YAML field, and a template
    would name an asset no producer updates."""
    if not value.strip():
        raise ValueError("empty; give the URI or name the upstream task declares in `outlets`, or remove the entry")
    if has_template(value):
        raise ValueError(
            f"{shorten(value)!r} has an Airflow template, which Airflow does not render in assets; use the fixed URI "
            "or name the upstream task declares in `outlets` (`{city}` is replaced)"
        )
    return value


class RetrainOnConfig(_Model):
    """Retrain when data lands: Airflow Assets that start the city's run when an upstream task updates them."""

    data: bool = Field(
        False,
        description="Retrain when the city's `data.uri` is updated: an upstream DAG whose task declares "
        '`outlets=[Asset("<data.uri>")]` (the same URI, `{city}` filled in) starts this city\'s run when that task '
        "succeeds. `data.uri` must then be a fixed URI without Airflow templates.",
    )
    assets: list[Annotated[str, AfterValidator(_asset_identifier)]] = Field(
        default_factory=list,
        description="More Airflow Assets that start a run when updated: a URI (`s3://bucket/prefix`, anything with "
        "`://`) or an asset name (`Asset(name=...)` in the producer). `{city}` is replaced; no entry may be empty or "
        "hold Airflow templates (`{{ ... }}`), which Airflow does not render in assets.",
    )
    mode: Literal["any", "all"] = Field(
        "any",
        description="`any`: a run when any of the assets is updated; `all`: when every one was updated since the "
        "last run. With `schedule` set as well, the cron still starts runs (Airflow's AssetOrTimeSchedule).",
    )


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
