"""evaluate: score candidate, champion and a naive baseline on the eval window, slice by slice, with guardrails."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.registry import CHAMPION
from airflow_ml_provider.operators.base import CityOperator
from airflow_ml_provider.operators.train import read_model, read_snapshot_windows

if TYPE_CHECKING:
    from airflow.sdk import Context

REPORT_MARKDOWN_KEY = "report_markdown"


class EvaluateModelOperator(CityOperator):
    """:param validation: XCom of ``validate_data``. :param training: XCom of ``train``.

    Returns a compact verdict; pushes the Markdown report under the XCom key ``report_markdown`` for the approval
    screen, and logs the report (Markdown, JSON) and a chart of per-slice deltas to the DAG run's MLflow run.
    """

    template_fields = ("validation", "training")

    def __init__(self, *, validation: Any, training: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation
        self.training = training

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.baseline import baseline_predictions
        from airflow_ml_provider.core.guardrails import evaluate
        from airflow_ml_provider.core.report import render_chart, render_markdown, schema_change_note
        from airflow_ml_provider.core.storage import sha256_hex
        from airflow_ml_provider.core.training import feature_frame, predict

        settings = self.settings(context)
        train, eval_frame = read_snapshot_windows(self.config, self.validation)
        candidate = read_model(self.config, self.training)
        hook = self.mlflow_hook()
        champion_version = hook.version_by_alias(self.config.model_name, CHAMPION)
        champion_predictions = None
        champion_schema = None
        if champion_version is not None:
            champion_schema = hook.input_schema(self.config.model_name, champion_version.version)
            self.log.info("Comparing with %s v%s (champion)", self.config.model_name, champion_version.version)
            champion = hook.load_model(self.config.model_name, champion_version.version)
            champion_predictions = predict(self.config, champion, eval_frame)
        else:
            self.log.info("No champion for %s yet: comparing with the naive baseline", self.config.model_name)

        report = evaluate(
            self.config,
            eval_frame,
            predict(self.config, candidate, eval_frame),
            champion_predictions,
            baseline_predictions(self.config, train, eval_frame),
            tolerance_override=settings.tolerance_override,
        )
        report_dict = report.to_dict()
        mlflow_run_id = self.validation["mlflow_run_id"]
        links = {"MLflow run": hook.run_url(mlflow_run_id), "Airflow run": _airflow_run_url(context)}
        markdown = render_markdown(report_dict, {k: v for k, v in links.items() if v})
        schema_note = schema_change_note(champion_schema, _input_schema(feature_frame(self.config, eval_frame.head(5))))
        if schema_note:
            markdown = f"{schema_note}\n\n{markdown}"
        report_json = json.dumps(report_dict, sort_keys=True)
        hook.log_text(mlflow_run_id, markdown, "evaluation/report.md")
        hook.log_text(mlflow_run_id, report_json, "evaluation/report.json")
        hook.log_bytes(mlflow_run_id, render_chart(report_dict), "evaluation/slice_deltas.png")
        context["ti"].xcom_push(key=REPORT_MARKDOWN_KEY, value=markdown)
        self.log.info("Guardrail verdict: %s\n%s", report.verdict, markdown)
        return {
            "verdict": report.verdict,
            "champion_version": champion_version.version if champion_version else None,
            "report_sha256": sha256_hex(report_json.encode()),
            "summary": report.summary(),
            "schema_changed": schema_note is not None,
        }


def _input_schema(features: Any) -> dict[str, str]:
    """The input schema MLflow will record for the candidate, in the form ``MlflowHook.input_schema`` returns."""
    from mlflow.models import infer_signature

    return {column["name"]: column["type"] for column in infer_signature(features).inputs.to_dict()}


def _airflow_run_url(context: Context) -> str | None:
    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback=None)
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/dags/{context['dag'].dag_id}/runs/{context['run_id']}"
