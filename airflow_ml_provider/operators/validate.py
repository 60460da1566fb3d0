"""validate_data: read the source window once, check it, and write the validated snapshot later steps read."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.core.handoff import FAILURE_KEY, Validated
from airflow_ml_provider.hooks.dataset import DatasetHook
from airflow_ml_provider.operators.base import CityOperator, run_end

if TYPE_CHECKING:
    from airflow.sdk import Context


class ValidateDataOperator(CityOperator):
    """Run the built-in checks and the city's Great Expectations suite on the window's rows.

    :param data_uri: local path or s3:// URI of the source (templated, e.g. ``s3://rides/{{ ds }}/``).
    Returns :class:`~airflow_ml_provider.core.handoff.Validated`.
    """

    template_fields = ("data_uri",)

    def __init__(self, *, data_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_uri = data_uri

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.snapshot import to_parquet_bytes
        from airflow_ml_provider.core.storage import sha256_hex
        from airflow_ml_provider.core.validation import validate
        from airflow_ml_provider.core.windows import Windows
        from airflow_ml_provider.hooks.dataset import UnusableFileError

        settings = self.settings(context)
        windows = Windows.ending_at(run_end(context), settings.train_window_days, settings.eval_window_days)
        storage = self.storage_hook()
        source = (
            storage
            if self.config.data.aws_conn_id == storage.aws_conn_id
            else DatasetHook(self.config.data.aws_conn_id)
        )
        try:
            frame = source.read_frame(self.data_uri, self.config.data.format)
        except UnusableFileError as exc:  # a missing file is retried (it may still land); a broken one is not
            fail_at_once(context, str(exc))
        outcome = validate(frame, self.config, windows)

        hook = self.mlflow_hook()
        mlflow_run_id = self.mlflow_run_id(context, hook)
        # What this run ran with, kept even when validation fails: the city's YAML resolved over the defaults, and
        # the trigger form's values.
        hook.log_dict(mlflow_run_id, self.config.resolved(), "config/resolved_config.yaml")
        hook.log_dict(mlflow_run_id, asdict(settings), "config/run_settings.json")
        hook.log_dict(mlflow_run_id, outcome.ge_result, "validation/great_expectations_result.json")
        hook.log_text(mlflow_run_id, outcome.html(), "validation/report.html")
        if not outcome.success:
            fail_at_once(context, outcome.message())
        for warning in outcome.warnings:
            self.log.warning("%s", warning.message)

        snapshot = to_parquet_bytes(outcome.frame)
        snapshot_sha256 = sha256_hex(snapshot)
        # Named by content: a rerun on changed data leaves the earlier snapshot for the versions that came from it.
        snapshot_uri = self.run_file_uri(context, f"snapshots/{snapshot_sha256}.parquet")
        storage.write_bytes(snapshot_uri, snapshot)
        return Validated(
            data_uri=self.data_uri,
            snapshot_uri=snapshot_uri,
            snapshot_sha256=snapshot_sha256,
            windows=windows,
            mlflow_run_id=mlflow_run_id,
            summary=outcome.summary(),
        ).to_xcom()


def fail_at_once(context: Context, message: str) -> NoReturn:
    """Bad data does not get better on retry: fail without retries, with the message a data scientist acts on."""
    context["ti"].xcom_push(key=FAILURE_KEY, value=message)
    raise AirflowFailException(message)
