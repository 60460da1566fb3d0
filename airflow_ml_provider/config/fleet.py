"""Fleet-level settings: ``_fleet.yaml`` beside the city configs, for what concerns every city at once.

Today one section, ``approval_digest``: a daily message to each approver listing what waits for their decision. The
file is optional; without it (or without the section) there is no digest DAG. Pydantic and PyYAML only: read while
Airflow parses the digest's loader file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import Field, ValidationError, field_validator, model_validator

from airflow_ml_provider.config.city import check_cron
from airflow_ml_provider.config.errors import ConfigError, format_validation_error
from airflow_ml_provider.config.loading import read_yaml
from airflow_ml_provider.config.sections import NotifierConfig, _Model

FLEET_FILE = "_fleet.yaml"
APPROVER = "{approver}"  # replaced by the Airflow user name of the approver a message is for
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


class DigestNotifierConfig(NotifierConfig):
    """Where each approver's digest goes. ``{approver}`` in ``to`` or ``channel`` is the approver's Airflow user name:
    ``to: ["{approver}@example.com"]`` mails every approver their own list."""

    to_example: ClassVar[str] = f"['{APPROVER}@example.com']"

    @model_validator(mode="after")
    def _placeholders(self) -> DigestNotifierConfig:
        for text in [*(self.to or []), self.channel or ""]:
            for placeholder in _PLACEHOLDER.findall(text):
                if placeholder != APPROVER:
                    raise ValueError(f"{text!r}: unknown placeholder {placeholder}; only {APPROVER} is replaced")
        return self


class ApprovalDigestConfig(_Model):
    """One message per approver with what waits for them (city, model version, guardrail verdict, waiting since,
    links to the report and to Required Actions), sent by the ``approval_digest`` DAG. No message to an approver
    with nothing waiting."""

    schedule: str = Field("0 7 * * *", description="Cron (UTC) of the digest; default every day at 07:00.")
    airflow_conn_id: str = Field(
        "airflow_api",
        description="Airflow connection to Airflow's own REST API (type http: host = the API server's URL, login "
        "and password of a user who may read every city's approvals). Workers cannot read the metadata "
        "database, so the digest asks the API like any client.",
    )
    notifiers: list[DigestNotifierConfig] = Field(
        min_length=1, description="Airflow's SmtpNotifier and/or SlackNotifier, as in `approval.notifiers`."
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value, nullable=False) or value


class FleetConfig(_Model):
    approval_digest: ApprovalDigestConfig | None = None


def load_fleet_config(directory: Path) -> FleetConfig:
    """``<directory>/_fleet.yaml``, or the empty settings when there is none; ConfigError naming file and field."""
    path = directory / FLEET_FILE
    if not path.exists():
        return FleetConfig()
    try:
        return FleetConfig.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(FLEET_FILE, exc)) from None
