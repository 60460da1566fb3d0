"""train: fit the city's scikit-learn Pipeline on the train window of the validated snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import registry
from airflow_ml_provider.core.handoff import Trained, Validated
from airflow_ml_provider.core.storage import IntegrityError, sha256_hex
from airflow_ml_provider.hooks.mlflow import TRY_NUMBER_TAG
from airflow_ml_provider.operators.base import CityOperator, failing_for_good, handed

if TYPE_CHECKING:
    from airflow.sdk import Context


class TrainModelOperator(CityOperator):
    """:param validation: the XCom of ``validate_data``. Returns :class:`~airflow_ml_provider.core.handoff.Trained`.

    Each attempt logs its params to its own MLflow run, nested under the DAG run's run: a rerun on changed data
    trains other bits with other params, and MLflow params cannot change once logged.
    """

    template_fields = ("validation",)

    def __init__(self, *, validation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation

    def execute(self, context: Context) -> dict[str, Any]:
        import pickle

        from airflow_ml_provider.core.training import fit, training_columns, training_params

        validated = handed(Validated, self.validation)
        settings = self.settings(context)
        storage, columns = self.storage_hook(), training_columns(self.config)
        with failing_for_good(IntegrityError):
            train, _ = storage.read_snapshot_windows(
                validated, self.config.data.timestamp_column, train_columns=columns, eval_columns=[]
            )
        model = fit(self.config, train, settings.estimator_params)
        payload = pickle.dumps(model)
        model_sha256 = sha256_hex(payload)
        self.log.info("Trained %s on %d rows: model sha256 %s", self.config.model.estimator, len(train), model_sha256)
        # Named by content: the file evaluate scores and register logs is the one this sha256 names.
        model_uri = self.run_file_uri(context, f"models/{model_sha256}.pkl")
        storage.write_bytes(model_uri, payload)
        hook = self.mlflow_hook()
        attempt_run_id = hook.attempt_run_id(
            validated.mlflow_run_id,
            run_name=f"{context['run_id']} train try {context['ti'].try_number}",
            tags={TRY_NUMBER_TAG: str(context["ti"].try_number), registry.MODEL_SHA_TAG: model_sha256},
        )
        windows_days = (settings.train_window_days, settings.eval_window_days)
        hook.log_params(
            attempt_run_id, training_params(self.config, model, train_rows=len(train), windows_days=windows_days)
        )
        return Trained(
            model_uri=model_uri,
            model_sha256=model_sha256,
            train_rows=len(train),
            estimator_params=settings.estimator_params,
            mlflow_run_id=attempt_run_id,
        ).to_xcom()
