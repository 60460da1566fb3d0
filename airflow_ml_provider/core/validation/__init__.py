"""Data validation for validate_data: built-in checks every city gets, plus the city's Great Expectations suite.

- ``checks``: the built-in checks, and the rows inside the train and eval windows they leave;
- ``expectations``: the Great Expectations adapter (imported on first use: ~15 s), and what lint checks of it;
- ``outcome``: what was found, with its texts (task message, XCom summary, HTML report);
- ``values``: how data values, timestamps and counts appear in those texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.validation.checks import run_builtin_checks
from airflow_ml_provider.core.validation.expectations import expectation_problems, run_expectations
from airflow_ml_provider.core.validation.outcome import Failure, Findings, ValidationOutcome

if TYPE_CHECKING:
    import pandas as pd

    from airflow_ml_provider.config import CityConfig
    from airflow_ml_provider.core.windows import Windows

__all__ = ["Failure", "ValidationOutcome", "expectation_problems", "validate"]


def validate(frame: pd.DataFrame, config: CityConfig, windows: Windows) -> ValidationOutcome:
    """Run the built-in checks and the city's expectations on the rows inside the train and eval windows."""
    findings = Findings()
    checked = run_builtin_checks(frame, config, windows, findings)
    ge_result: dict[str, Any] = {}
    if config.validation.expectations:
        ge_result = run_expectations(checked.frame, config, findings)
    return ValidationOutcome(
        city=config.city,
        windows=windows,
        success=not findings.failures,
        train_rows=checked.train_rows,
        eval_rows=checked.eval_rows,
        rows_outside_windows=checked.rows_outside_windows,
        frame=checked.frame,
        failures=findings.failures,
        warnings=findings.warnings,
        passed=findings.passed,
        ge_result=ge_result,
    )
