"""The whole city config: its sections checked against each other, its names (model, DAG ids) and its JSON schema."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_ml_provider.config.sections import (
    ApprovalConfig,
    DataConfig,
    EvaluationConfig,
    FeaturesConfig,
    ModelConfig,
    RegistryConfig,
    ResourcesConfig,
    RetrainOnConfig,
    StorageConfig,
    ValidationConfig,
    _Model,
)
from airflow_ml_provider.config.templates import has_template

CITY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
RETRAIN_PREFIX = "retrain_"  # a city's retraining DAG is RETRAIN_PREFIX + city
CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")  # Airflow's cron presets

REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "accuracy", "f1", "precision", "recall")
# Metrics where a larger value is better; for all others smaller is better.
HIGHER_IS_BETTER = frozenset({"r2", "roc_auc", "accuracy", "f1", "precision", "recall"})


def check_cron(value: str | None, *, nullable: bool = True) -> str | None:
    """``value`` if Airflow accepts it as a schedule (five cron fields or a preset; None is no schedule), else
    ValueError saying what is expected (null only where the field may be null)."""
    from croniter import croniter  # Airflow's own cron parser; light, unlike Airflow itself

    if value is None or value in CRON_PRESETS or (len(value.split()) == 5 and croniter.is_valid(value)):
        return value
    presets = ", ".join(CRON_PRESETS)
    raise ValueError(
        f"{value!r} is not a cron expression Airflow accepts: five fields (minute hour day-of-month month "
        f"day-of-week, e.g. '0 3 * * 1')"
        + (f", one of {presets}, or null for manual runs only" if nullable else f" or one of {presets}")
    )


class CityConfig(_Model):
    """Everything one city's retraining DAG needs; see docs/config-reference.md."""

    schema_version: Literal[1] = 1
    city: Annotated[str, Field(pattern=CITY_NAME_PATTERN)]
    owner: str = "airflow"
    schedule: str | None = Field(
        None, description="Cron expression, or null for no time-based runs (manual, or `retrain_on` data only)."
    )
    retrain_on: RetrainOnConfig = Field(default_factory=RetrainOnConfig)
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
        return check_cron(value)

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
        if self.retrain_on.data and has_template(self.data.uri):
            problems.append(
                "retrain_on.data: data.uri has Airflow templates, so no single asset stands for it; name the "
                "asset your upstream DAG publishes in retrain_on.assets instead"
            )
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
        return RETRAIN_PREFIX + self.city

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


def json_schema() -> dict[str, Any]:
    schema = CityConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "airflow-ml-provider city config"
    return schema
