"""City configuration: the YAML schema, loading with ``_defaults.yaml`` merged under each city, errors for people.

- ``sections``: one pydantic model per YAML section;
- ``city``: ``CityConfig``, the whole file, its cross-section checks and its JSON schema;
- ``loading``: reading the folder, merging the defaults, collecting every problem;
- ``errors``: ``ConfigError`` and pydantic's errors rewritten as ``<file>: <field>: <what to do>``.

This package is imported while Airflow parses DAG files, so it must stay light: pydantic and PyYAML only.
"""

from airflow_ml_provider.config.city import (
    CITY_NAME_PATTERN,
    CLASSIFICATION_METRICS,
    CRON_PRESETS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    CityConfig,
    json_schema,
)
from airflow_ml_provider.config.errors import ConfigError, format_validation_error
from airflow_ml_provider.config.loading import (
    CONFIG_DIR_ENV,
    city_names,
    config_dir,
    deep_merge,
    load_all,
    load_city_config,
    load_defaults,
    model_name_problems,
)
from airflow_ml_provider.config.sections import (
    DEFAULTS_FILE,
    MODEL_NAME_PATTERN,
    ApprovalConfig,
    BaselineConfig,
    BinsConfig,
    Condition,
    DataConfig,
    EvaluationConfig,
    ExpectationConfig,
    FeaturesConfig,
    GuardrailConfig,
    ModelConfig,
    NotifierConfig,
    RegistryConfig,
    ResourcesConfig,
    RetrainOnConfig,
    Scalar,
    SliceConfig,
    StorageConfig,
    Tolerance,
    ValidationConfig,
)
from airflow_ml_provider.config.templates import DATA_URI_MACROS, data_uri_problem

__all__ = [
    "CITY_NAME_PATTERN",
    "CLASSIFICATION_METRICS",
    "CONFIG_DIR_ENV",
    "CRON_PRESETS",
    "DATA_URI_MACROS",
    "DEFAULTS_FILE",
    "HIGHER_IS_BETTER",
    "MODEL_NAME_PATTERN",
    "REGRESSION_METRICS",
    "ApprovalConfig",
    "BaselineConfig",
    "BinsConfig",
    "CityConfig",
    "Condition",
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "ExpectationConfig",
    "FeaturesConfig",
    "GuardrailConfig",
    "ModelConfig",
    "NotifierConfig",
    "RegistryConfig",
    "ResourcesConfig",
    "RetrainOnConfig",
    "Scalar",
    "SliceConfig",
    "StorageConfig",
    "Tolerance",
    "ValidationConfig",
    "city_names",
    "config_dir",
    "data_uri_problem",
    "deep_merge",
    "format_validation_error",
    "json_schema",
    "load_all",
    "load_city_config",
    "load_defaults",
    "model_name_problems",
]
