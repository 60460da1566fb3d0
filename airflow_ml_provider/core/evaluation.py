"""evaluate's logic: score candidate, champion and the naive baseline on the eval window, and the approver's report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from airflow_ml_provider.config import CityConfig
    from airflow_ml_provider.core.guardrails import EvaluationReport


def evaluation_columns(config: CityConfig) -> list[str]:
    """The eval rows' columns scoring reads: those training reads (features, target), the slices' columns and a
    baseline column."""
    from airflow_ml_provider.core.training import training_columns

    columns = training_columns(config)
    for spec in config.evaluation.slices:
        columns.extend(spec.referenced_columns)
    if config.evaluation.baseline.column:
        columns.append(config.evaluation.baseline.column)
    return list(dict.fromkeys(columns))


def score_candidate(
    config: CityConfig,
    train: pd.DataFrame,
    eval_frame: pd.DataFrame,
    candidate: Any,
    champion: Any | None,
    *,
    tolerance_override: float | None,
) -> EvaluationReport:
    """The guardrail report of ``candidate`` against ``champion`` (a fitted pipeline), or against the naive baseline
    when there is no champion yet."""
    from airflow_ml_provider.core.baseline import baseline_predictions
    from airflow_ml_provider.core.guardrails import evaluate
    from airflow_ml_provider.core.training import predict

    return evaluate(
        config,
        eval_frame,
        predict(config, candidate, eval_frame),
        None if champion is None else predict(config, champion, eval_frame),
        baseline_predictions(config, train, eval_frame),
        tolerance_override=tolerance_override,
    )


def approval_markdown(
    report: dict[str, Any],
    links: dict[str, str | None],
    *,
    champion_schema: dict[str, str] | None,
    candidate_schema: dict[str, str],
) -> str:
    """The report the approver reads: a schema-change note first when the input changed, then the guardrails."""
    from airflow_ml_provider.core.report import render_markdown, schema_change_note

    markdown = render_markdown(report, {label: url for label, url in links.items() if url})
    note = schema_change_note(champion_schema, candidate_schema)
    return f"{note}\n\n{markdown}" if note else markdown


def summary_metrics(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of the evaluation summary, as MLflow metric names (``candidate.mae``)."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            metrics.update(summary_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[name] = float(value)
    return metrics
