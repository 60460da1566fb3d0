"""The step contract: what each step of a retraining DAG hands the next, through XCom.

::

    validate_data --> train --> evaluate --> register --> approve --> promote
          Validated    Trained    Evaluated    Registered   Decision    Promoted

- ``Validated`` (validate_data -> train, evaluate, register): the validated snapshot every later step reads instead
  of the source (URI and sha256), the train/eval windows, and the DAG run's MLflow run (config, validation report).
- ``Trained`` (train -> evaluate, register): the candidate pickle (URI and sha256, the candidate's identity), its
  row count and estimator parameters, and the MLflow run of this training attempt (params, report, model).
- ``Evaluated`` (evaluate -> register): the sha256 of the model it scored, the guardrail verdict, the champion
  version it compared with, and the sha256 of the report the approver reads.
- ``Registered`` (register -> approve, promote): the model version holding exactly those bits, whether it asks for
  approval, and the evidence promote checks again (model and report sha256, champion version evaluated against).
- ``Decision`` (approve -> promote): who answered what, why and when, about which version and bits.
- ``Promoted`` (promote's result, for people and tests).

XCom carries small JSON only. Every handoff is written with the step's name and :data:`SCHEMA_VERSION`, and read
back with ``from_xcom``: a DAG run that straddles a deploy changing the contract fails with :class:`HandoffError`
saying to clear the run, not with a ``KeyError`` in a worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar, dataclass_transform

from airflow_ml_provider.core.windows import Windows

# Bump when a field is added, removed, renamed or changes meaning. 1 was the untyped dicts before this module.
SCHEMA_VERSION = 2
STEP_KEY = "handoff"
SCHEMA_KEY = "handoff_schema"

H = TypeVar("H", bound="Handoff")


class HandoffError(ValueError):
    """A step's input is not what this version of the package hands over; retrying reads the same thing."""


@dataclass_transform(frozen_default=True)
class Handoff:
    """Base of the step contract: each subclass, declared as ``class Trained(Handoff, step="train")`` with its fields,
    is a frozen dataclass whose ``to_xcom`` / ``from_xcom`` carry the step's name and the schema."""

    STEP: ClassVar[str]

    def __init_subclass__(cls, *, step: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.STEP = step
        dataclasses.dataclass(frozen=True)(cls)

    def to_xcom(self) -> dict[str, Any]:
        """Flat JSON: the fields (``Windows`` as ISO dates, tuples as lists), the step's name and the schema."""
        fields = {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {STEP_KEY: self.STEP, SCHEMA_KEY: SCHEMA_VERSION, **fields}

    @classmethod
    def from_xcom(cls: type[H], data: Any) -> H:
        """The handoff back from XCom; :class:`HandoffError` names the step and says what to do when it does not fit."""
        if not isinstance(data, dict):
            raise HandoffError(
                f"the {cls.STEP} step handed over {type(data).__name__} instead of its result; did the step run? "
                "Clear the DAG run from validate_data (with downstream) to run every step again"
            )
        schema = data.get(SCHEMA_KEY)
        if schema != SCHEMA_VERSION:
            written = f"handoff schema {schema}" if schema is not None else "the untyped handoff of releases before it"
            raise HandoffError(
                f"the {cls.STEP} step's result was written by another version of airflow-ml-provider ({written}; "
                f"this worker reads schema {SCHEMA_VERSION}): the DAG run straddles a deploy. Clear the DAG run from "
                "validate_data (with downstream) so every step runs on one version"
            )
        if data.get(STEP_KEY) != cls.STEP:
            raise HandoffError(f"expected the result of the {cls.STEP} step, got that of {data.get(STEP_KEY)!r}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]  # type: ignore[arg-type]
        if missing:
            raise HandoffError(f"the {cls.STEP} step's result lacks {', '.join(missing)}; clear the DAG run")
        return cls(**{f.name: _decode(f.name, data[f.name]) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def _encode(value: Any) -> Any:
    if isinstance(value, Windows):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(name: str, value: Any) -> Any:
    if name == "windows":
        return Windows.from_dict(value)
    if name == "answer":
        return tuple(value)
    return value


class Validated(Handoff, step="validate_data"):
    """validate_data's result: the snapshot later steps read (never the source again) and where it was logged."""

    data_uri: str
    snapshot_uri: str
    snapshot_sha256: str
    windows: Windows
    mlflow_run_id: str  # the DAG run's MLflow run: resolved config, run settings, validation report
    summary: dict[str, Any]


class Trained(Handoff, step="train"):
    """train's result: the candidate pickle, identified by its sha256."""

    model_uri: str
    model_sha256: str
    train_rows: int
    estimator_params: dict[str, Any]
    mlflow_run_id: str  # this training attempt's run, nested under the DAG run's run: params, report, model


class Evaluated(Handoff, step="evaluate"):
    """evaluate's result: the verdict on the bits it scored, against the champion version it loaded."""

    model_sha256: str
    verdict: str  # "pass" or "fail"
    champion_version: str | None  # None: compared with the naive baseline (no champion yet)
    report_sha256: str  # of evaluation/report.json, what the approver's Markdown is rendered from
    eval_rows: int
    summary: dict[str, Any]
    schema_changed: bool


class Registered(Handoff, step="register"):
    """register's result: the model version holding the evaluated bits, and the evidence promote checks again."""

    model_name: str
    version: str
    mlflow_run_id: str
    model_sha256: str
    report_sha256: str
    verdict: str
    needs_approval: bool  # False: guardrails failed under on_guardrail_failure: block (tagged blocked)
    champion_version: str | None
    version_url: str | None
    reused: bool  # a rerun of the DAG run found this version already holding the same bits


class Decision(Handoff, step="approve"):
    """approve's result: the answer about one version's bits (``decided_by`` is ``timeout`` for the default)."""

    model_name: str
    version: str
    model_sha256: str
    report_sha256: str
    answer: tuple[str, ...]  # Airflow's chosen options: ("Approve",) or ("Reject",)
    decided_by: str
    reason: str
    decided_at: str  # ISO 8601


class Promoted(Handoff, step="promote"):
    """promote's result: who made which version champion, and what it replaced."""

    model_name: str
    champion: str
    previous_champion: str | None
    approved_by: str
    model_sha256: str
    already_done: bool  # a retried promote found the version already champion


# The retraining DAG's task ids, in order: each step's handoff carries its task id as STEP.
RETRAIN_TASK_IDS = tuple(kind.STEP for kind in (Validated, Trained, Evaluated, Registered, Decision, Promoted))
# XCom keys a step pushes besides its result: evaluate's Markdown report (the approval's body), and validate_data's
# failure message (for failure notifiers: {{ ti.xcom_pull(task_ids='validate_data', key='failure') }}).
REPORT_MARKDOWN_KEY = "report_markdown"
FAILURE_KEY = "failure"
