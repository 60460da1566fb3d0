"""train: fit the city's scikit-learn Pipeline on the train window of the validated snapshot."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.operators.base import CityOperator

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_ml_provider.config import CityConfig


class TrainModelOperator(CityOperator):
    """:param validation: the XCom of ``validate_data`` (snapshot URI, sha256, windows)."""

    template_fields = ("validation",)

    def __init__(self, *, validation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validation = validation

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.storage import sha256_hex
        from airflow_ml_provider.core.training import fit
        from airflow_ml_provider.hooks.dataset import DatasetHook

        settings = self.settings(context)
        train, _ = read_snapshot_windows(self.config, self.validation)
        model = fit(self.config, train, settings.estimator_params)
        built_with = model.named_steps["estimator"].get_params()
        self.log.info("Trained %s on %d rows with %s", self.config.model.estimator, len(train), built_with)
        self.mlflow_hook().log_params(
            self.validation["mlflow_run_id"],
            {
                "estimator": self.config.model.estimator,
                "train_window_days": settings.train_window_days,
                "eval_window_days": settings.eval_window_days,
                "train_rows": len(train),
                **{f"estimator.{name}": value for name, value in built_with.items()},
            },
        )
        payload = pickle.dumps(model)
        model_uri = self.run_file_uri(context, "model.pkl")
        DatasetHook(aws_conn_id=self.config.storage.aws_conn_id).write_bytes(model_uri, payload)
        return {
            "model_uri": model_uri,
            "model_sha256": sha256_hex(payload),
            "train_rows": len(train),
            "estimator_params": settings.estimator_params,
        }


def read_snapshot_windows(config: CityConfig, validation: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated snapshot split into train and eval windows; refuses a snapshot whose hash does not match."""
    from airflow_ml_provider.core.snapshot import from_parquet_bytes
    from airflow_ml_provider.core.windows import Windows
    from airflow_ml_provider.hooks.dataset import DatasetHook

    uri = validation["snapshot_uri"]
    data = DatasetHook(aws_conn_id=config.storage.aws_conn_id).read_bytes(uri)
    frame = from_parquet_bytes(data, validation["sha256"], uri)
    windows = Windows.from_dict(validation["windows"])
    is_eval = frame[config.data.timestamp_column] >= windows.eval_start
    return frame[~is_eval].reset_index(drop=True), frame[is_eval].reset_index(drop=True)


def read_model(config: CityConfig, training: dict[str, Any]) -> Any:
    """The candidate pipeline written by ``train``, verified against its sha256 before unpickling."""
    from airflow_ml_provider.core.storage import sha256_hex
    from airflow_ml_provider.hooks.dataset import DatasetHook

    data = DatasetHook(aws_conn_id=config.storage.aws_conn_id).read_bytes(training["model_uri"])
    if sha256_hex(data) != training["model_sha256"]:
        raise ValueError(f"{training['model_uri']}: model file changed since training (sha256 mismatch); re-run")
    return pickle.loads(data)
