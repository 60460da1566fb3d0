"""The city's Great Expectations suite: built from its YAML, run on the checked rows, its results as Failures.

Great Expectations takes ~15 s to import, so it is imported on first use: only when a city declares expectations
(validate_data) or when `airflow-ml lint` checks them.
"""

from __future__ import annotations

import difflib
import logging
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.validation.outcome import Failure
from airflow_ml_provider.core.validation.values import SAMPLE_SIZE, jsonable, row_labels

if TYPE_CHECKING:
    from types import ModuleType

    import pandas as pd

    from airflow_ml_provider.config import CityConfig, ExpectationConfig
    from airflow_ml_provider.core.validation.outcome import Findings

# Fields every GE expectation has that the YAML must not set: the provider sets them, or they mean nothing here.
_RESERVED_KWARGS = {"id", "meta", "rendered_content", "severity", "batch_id", "windows"}


def expectation_problems(config: CityConfig, filename: str, source_has_expectations: bool = True) -> list[str]:
    """Problems `airflow-ml lint` reports: unknown expectations and arguments their class does not accept."""
    gx = _great_expectations()
    origin = "" if source_has_expectations else " (from _defaults.yaml)"
    problems = []
    for i, expectation in enumerate(config.validation.expectations):
        problem = _expectation_problem(gx, expectation)
        if problem:
            problems.append(f"{filename}: validation.expectations[{i}].{expectation.type}{origin}: {problem}")
    return problems


def run_expectations(frame: pd.DataFrame, config: CityConfig, findings: Findings) -> dict[str, Any]:
    """The city's suite with Great Expectations on the checked rows; returns GE's own result as JSON."""
    gx = _great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    name = f"{config.city}_rides"
    batch_definition = (
        context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    )
    suite = gx.ExpectationSuite(name=f"{config.city}_suite")
    for i, expectation in enumerate(config.validation.expectations):
        problem = _expectation_problem(gx, expectation)
        if problem:
            message = f"{expectation_call_text(expectation)} is not a valid expectation: {problem}"
            findings.record(Failure(check=expectation.type, column=expectation.kwargs.get("column"), message=message))
            continue
        severity = "warning" if expectation.severity == "warning" else "critical"
        cls = _expectation_class(gx, expectation.type)
        suite.add_expectation(cls(**expectation.kwargs, meta={"index": i}, severity=severity))
    if not suite.expectations:
        return {}
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    for item in sorted(result["results"], key=lambda r: r["expectation_config"]["meta"]["index"]):
        expectation = config.validation.expectations[item["expectation_config"]["meta"]["index"]]
        if item["success"]:
            findings.ok(expectation_call_text(expectation))
            continue
        failure = _expectation_failure(expectation, item, frame, config)
        findings.record(failure, warning=expectation.severity == "warning")
    return result


def expectation_call_text(expectation: ExpectationConfig) -> str:
    """The expectation as a call, ``type(arg=value, ...)``, cut to 160 characters: how messages name it."""
    arguments = ", ".join(f"{k}={v}" for k, v in expectation.kwargs.items())
    text = f"{expectation.type}({arguments})"
    return text if len(text) <= 160 else text[:157] + "..."


def _great_expectations() -> ModuleType:
    """great_expectations, imported on first use, with its INFO chatter (at import and per context) turned off."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    # This module sets its own level, to log "Created temporary directory ..." for every ephemeral context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.ERROR)
    return gx


def _expectation_class(gx: ModuleType, name: str) -> type | None:
    from great_expectations.expectations.expectation import Expectation

    cls = getattr(gx.expectations, "".join(part.capitalize() for part in name.split("_")), None)
    # KL divergence is spelled ExpectColumnKLDivergence...: fall back to a case-insensitive lookup.
    if cls is None:
        lowered = name.replace("_", "")
        cls = next((getattr(gx.expectations, n) for n in dir(gx.expectations) if n.lower() == lowered), None)
    return cls if isinstance(cls, type) and issubclass(cls, Expectation) else None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_").replace("k_l_", "kl_")


def _expectation_problem(gx: ModuleType, expectation: ExpectationConfig) -> str | None:
    """Why this expectation cannot be built, in YAML terms; None when it can."""
    from great_expectations.compatibility.pydantic import ValidationError
    from great_expectations.expectations.expectation import Expectation

    cls = _expectation_class(gx, expectation.type)
    if cls is None:
        known = [_snake(n) for n in dir(gx.expectations) if n.startswith("Expect")]
        close = difflib.get_close_matches(expectation.type, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"unknown expectation; {hint}(see https://greatexpectations.io/expectations)"
    specific = [f for f in cls.__fields__ if f not in Expectation.__fields__ and f not in _RESERVED_KWARGS]
    accepted = specific + [f for f in Expectation.__fields__ if f not in _RESERVED_KWARGS]
    for name in expectation.kwargs:
        if name == "severity":
            return "set `severity: warning` next to the expectation, not among its arguments"
        if name in _RESERVED_KWARGS:
            return f"argument {name!r} is set by airflow-ml-provider; remove it"
        if name not in accepted:
            return f"unknown argument {name!r} (expected one of {', '.join(accepted)})"
    try:
        cls(**expectation.kwargs)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            if error["type"] == "value_error.missing":
                problems.setdefault(loc, f"missing required argument {loc!r}")
            elif loc == "__root__":
                problems.setdefault(loc, error["msg"])
            else:
                problems.setdefault(loc, f"argument {loc!r}: {error['msg']}")
        if len(problems) > 1:  # a root check such as "min_value and max_value cannot both be None" follows bad fields
            problems.pop("__root__", None)
        return "; ".join(problems.values())
    return None


def _expectation_failure(
    expectation: ExpectationConfig, item: dict[str, Any], frame: pd.DataFrame, config: CityConfig
) -> Failure:
    kwargs = expectation.kwargs
    column = kwargs.get("column") or kwargs.get("column_A")
    where = expectation_call_text(expectation)
    info = item.get("exception_info") or {}
    errors = [info] if "raised_exception" in info else list(info.values())
    raised = [e.get("exception_message") for e in errors if isinstance(e, dict) and e.get("raised_exception")]
    if raised:
        return Failure(check=expectation.type, column=column, message=f"{where}: could not be evaluated: {raised[0]}")
    result = item.get("result") or {}
    if "unexpected_count" in result:
        count = int(result["unexpected_count"] or 0)
        percent = float(result.get("unexpected_percent") or 0.0)
        total = int(result.get("element_count") or 0)
        samples = [jsonable(v) for v in list(result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]]
        example = f"e.g. {samples}"
        if all(v is None for v in samples):  # unexpected nulls: name the rows instead
            indexes = result.get("partial_unexpected_index_list") or []
            rows = [i for i in indexes if isinstance(i, int) and i < len(frame)][:SAMPLE_SIZE]
            samples = row_labels(frame.iloc[rows], config)
            example = f"in rows {samples}"
        return Failure(
            check=expectation.type,
            column=column,
            unexpected_count=count,
            unexpected_percent=round(percent, 4),
            samples=samples,
            message=f"{where}: {count:,} of {total:,} values ({percent:.2f}%) unexpected, {example}",
        )
    observed = result.get("observed_value")
    return Failure(check=expectation.type, column=column, message=f"{where}: observed {jsonable(observed)!r}")
