"""evaluate: score candidate, champion and a naive baseline on the eval window, slice by slice, with guardrails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.handoff import REPORT_MARKDOWN_KEY, Evaluated, Trained, Validated
from airflow_ml_provider.core.registry import CHAMPION
from airflow_ml_provider.core.storage import IntegrityError, sha256_hex
from airflow_ml_provider.operators.base import CityOperator, airflow_run_url, failing_for_good, handed

if TYPE_CHECKING:
    from airflow.sdk import Context


class EvaluateModelOperator(CityOperator):
    """:param validation: XCom of ``validate_data``. :param training: XCom of ``train``.

    Returns :class:`~airflow_ml_provider.core.handoff.Evaluated` (the verdict on the bits it scored); pushes the
    Markdown report under the XCom key ``report_markdown`` for the approval screen, and logs the report (Markdown,
    JSON) and a chart of per-slice deltas to the training attempt's MLflow run.
    """

    template_fields = ("validation", "training")

    def __init__(self, *, validation: Any, training: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation
        self.training = training

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from airflow_ml_provider.core.evaluation import approval_markdown, evaluation_columns, score_candidate
        from airflow_ml_provider.core.report import render_chart
        from airflow_ml_provider.core.training import INPUT_EXAMPLE_ROWS, feature_frame

        validated, trained = handed(Validated, self.validation), handed(Trained, self.training)
        config, storage, hook = self.config, self.storage_hook(), self.mlflow_hook()
        with failing_for_good(IntegrityError):
            # The train rows feed only the naive baseline (their target's mean or median).
            train, eval_frame = storage.read_snapshot_windows(
                validated,
                config.data.timestamp_column,
                train_columns=[config.target],
                eval_columns=evaluation_columns(config),
            )
            candidate = storage.read_model(trained)
        champion = hook.version_by_alias(config.model_name, CHAMPION)  # an outage raises: never "no champion"
        self.log.info("Comparing with %s", f"v{champion.version} (champion)" if champion else "the naive baseline")
        result = score_candidate(
            config,
            train,
            eval_frame,
            candidate,
            hook.load_model(config.model_name, champion.version) if champion else None,
            tolerance_override=self.settings(context).tolerance_override,
        )
        report = result.to_dict()
        champion_schema = hook.input_schema(config.model_name, champion.version) if champion else None
        candidate_schema = hook.schema_of(feature_frame(config, eval_frame.head(INPUT_EXAMPLE_ROWS)))
        markdown = approval_markdown(
            report,
            {"MLflow run": hook.run_url(trained.mlflow_run_id), "Airflow run": airflow_run_url(context)},
            champion_schema=champion_schema,
            candidate_schema=candidate_schema,
        )
        report_json = json.dumps(report, sort_keys=True)
        hook.log_text(trained.mlflow_run_id, markdown, "evaluation/report.md")
        hook.log_text(trained.mlflow_run_id, report_json, "evaluation/report.json")
        hook.log_bytes(trained.mlflow_run_id, render_chart(report), "evaluation/slice_deltas.png")
        context["ti"].xcom_push(key=REPORT_MARKDOWN_KEY, value=markdown)
        self.log.info("Guardrail verdict: %s\n%s", result.verdict, markdown)
        return Evaluated(
            model_sha256=trained.model_sha256,
            verdict=result.verdict,
            champion_version=champion.version if champion else None,
            report_sha256=sha256_hex(report_json.encode()),
            eval_rows=len(eval_frame),
            summary=result.summary(),
            schema_changed=champion_schema is not None and champion_schema != candidate_schema,
        ).to_xcom()
