"""CityConfig -> Airflow DAGs, and ``_fleet.yaml`` -> the approval digest DAG. Wiring only: every step's logic lives
in operators/ and core/.

Each city has its own loader file ``dags/<city>.py`` calling :func:`city_dags`. Airflow 3.3 marks every DAG of a
file stale when that file has an import error, so one file per city is what keeps a broken city config from
taking the other cities down. Nothing here imports pandas, scikit-learn, Great Expectations or MLflow.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from airflow.sdk import (
    DAG,
    Asset,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    chain,
    get_parsing_context,
)

from airflow_ml_provider.config import CityConfig, ConfigError, config_dir, load_city_config
from airflow_ml_provider.config.fleet import FLEET_FILE, ApprovalDigestConfig, load_fleet_config
from airflow_ml_provider.core.handoff import REPORT_MARKDOWN_KEY, RETRAIN_TASK_IDS
from airflow_ml_provider.core.registry import PREVIOUS_CHAMPION
from airflow_ml_provider.operators.approve import CityApprovalOperator, build_notifiers
from airflow_ml_provider.operators.base import make_notifier
from airflow_ml_provider.operators.digest import ApprovalDigestOperator
from airflow_ml_provider.operators.evaluate import EvaluateModelOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator, RollbackModelOperator
from airflow_ml_provider.operators.register import RegisterModelOperator
from airflow_ml_provider.operators.train import TrainModelOperator
from airflow_ml_provider.operators.validate import ValidateDataOperator

VALIDATE, TRAIN, EVALUATE, REGISTER, APPROVE, PROMOTE = RETRAIN_TASK_IDS
# evaluate, register and promote, whose MLflow reads decide what they do (an outage is an error, never "no champion"),
# ride out an outage of a few minutes (with the exponential backoff below) even when a city sets fewer retries; their
# refusals (a moved champion, unapproved bits) fail at once, without retries.
MLFLOW_STEP_MIN_RETRIES = 3
DIGEST_DAG_ID, DIGEST_TASK_ID = "approval_digest", "send_digest"


def city_dags(loader_file: str) -> dict[str, DAG]:
    """The DAGs of the city named by the loader file (``dags/berlin.py`` -> ``configs/berlin.yaml``).

    While a task runs, only that task's DAG is built. A bad config raises ConfigError naming file and field, which
    Airflow shows as this file's import error.
    """
    config = load_city_config(Path(loader_file).stem, config_dir(Path(loader_file).parent))
    wanted = get_parsing_context().dag_id
    dags: dict[str, DAG] = {}
    if wanted in (None, config.retrain_dag_id):
        dags[config.retrain_dag_id] = build_retrain_dag(config)
    if wanted in (None, config.rollback_dag_id):
        dags[config.rollback_dag_id] = build_rollback_dag(config)
    return dags


def fleet_dags(loader_file: str) -> dict[str, DAG]:
    """The fleet-level DAGs that ``configs/_fleet.yaml`` asks for (``dags/approval_digest.py`` calls this): today
    ``approval_digest`` when the file has an ``approval_digest`` section, else none. A bad file raises ConfigError
    naming the file and field, shown as the loader file's import error."""
    directory = config_dir(Path(loader_file).parent)
    digest = load_fleet_config(directory).approval_digest
    if digest is None:
        return {}
    return {DIGEST_DAG_ID: build_digest_dag(digest, directory)}


def build_digest_dag(digest: ApprovalDigestConfig, config_dir: Path) -> DAG:
    """One task on its own cron (UTC; the first run at the next cron time, nothing sent on deploy)."""
    with DAG(
        dag_id=DIGEST_DAG_ID,
        schedule=CronTriggerTimetable(digest.schedule, timezone="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["fleet", "approvals"],
        doc_md="### Approval digest\nSends each approver one message listing the model approvals waiting for them "
        "(city, version, guardrail verdict, waiting since, links to the report and to Required Actions). Built "
        f"from `configs/_fleet.yaml` by airflow-ml-provider; cron `{digest.schedule}` (UTC).",
    ) as dag:
        ApprovalDigestOperator(
            task_id=DIGEST_TASK_ID,
            digest=digest,
            config_dir=str(config_dir),
            retries=0,  # a retry would send everyone's digest again
        )
        for spec in digest.notifiers:  # a notifier Airflow cannot build is this file's import error, not a failed run
            make_notifier(spec, subject="", html="", text="", where=f"{FLEET_FILE}: approval_digest.notifiers")
    return dag


def cron_schedule(config: CityConfig) -> str | None:
    """The city's cron, with its minute shifted by a stable per-city offset when ``start_spread_minutes`` is set."""
    spread = config.resources.start_spread_minutes
    if config.schedule is None or spread == 0 or config.schedule.startswith("@"):
        return config.schedule
    minute, rest = config.schedule.split(maxsplit=1)
    if not minute.isdigit():
        return config.schedule  # a list or range of minutes: leave it as written
    offset = int(hashlib.sha256(config.city.encode()).hexdigest(), 16) % spread
    return f"{(int(minute) + offset) % 60} {rest}"


def timetable(config: CityConfig) -> CronTriggerTimetable | None:
    """The city's cron in UTC, and no start_date on its DAGs.

    Airflow creates no task instances for a run whose logical date is before the DAG's start_date and marks it
    successful at once, so a retrain on historical data would silently do nothing. Without a start_date every
    logical date runs; ``run_immediately`` keeps the first scheduled run what a past start_date gave: the most
    recent cron time, once (catchup is off, nothing is backfilled).
    """
    cron = cron_schedule(config)
    return None if cron is None else CronTriggerTimetable(cron, timezone="UTC", run_immediately=True)


def retrain_assets(config: CityConfig) -> list[Asset]:
    """The Airflow Assets whose update starts a run (``retrain_on``): the data URI and the named assets or URIs."""
    uris = [config.data_uri] if config.retrain_on.data else []
    uris += [item.replace("{city}", config.city) for item in config.retrain_on.assets]
    return [Asset(uri=item) if "://" in item else Asset(name=item) for item in dict.fromkeys(uris)]


def retrain_schedule(config: CityConfig) -> CronTriggerTimetable | AssetAny | AssetAll | AssetOrTimeSchedule | None:
    """The cron, the assets, or both: a run when the data lands, and on the cron regardless."""
    cron = timetable(config)
    assets = retrain_assets(config)
    if not assets:
        return cron
    condition = AssetAny(*assets) if config.retrain_on.mode == "any" else AssetAll(*assets)
    if cron is None:
        return condition
    return AssetOrTimeSchedule(timetable=cron, assets=condition)


def trigger_params(config: CityConfig) -> dict[str, Param]:
    """The trigger form: typed, titled, with the YAML's values as defaults."""
    tolerance = next(
        (g.max_relative_regression for g in config.evaluation.guardrails if g.max_relative_regression is not None),
        None,
    )
    return {
        "train_window_days": _days_param(
            config.data.train_window_days,
            3650,
            "Training window (days)",
            "Days of data before the eval window to train on.",
        ),
        "eval_window_days": _days_param(
            config.data.eval_window_days,
            365,
            "Evaluation window (days)",
            "The most recent days, never trained on: candidate and champion are compared on them.",
        ),
        "estimator_params": Param(
            {},
            type="object",
            title="Estimator parameter overrides",
            description_md=f"Merged over `model.params` of the YAML: `{config.model.params}` "
            f"for `{config.model.estimator}`.",
            section="Model",
        ),
        "guardrail_tolerance": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Guardrail tolerance override",
            description_md=f"Replaces `max_relative_regression` of every guardrail for this run (YAML: `{tolerance}`)."
            " Per-slice overrides still apply. Leave empty to use the YAML.",
            section="Guardrails",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Stop after evaluate: nothing is registered and nobody is asked to approve.",
        ),
        # Optional: a nullable type is what makes Airflow's form accept an empty field (scheduled runs have none).
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason for this run",
            description="Optional; recorded on the model version, e.g. 'new district launched'.",
        ),
    }


def _days_param(default: int, maximum: int, title: str, description: str) -> Param:
    """A window length in the form's Data section: whole days, at least one."""
    return Param(
        default, type="integer", minimum=1, maximum=maximum, title=title, description=description, section="Data"
    )


def build_retrain_dag(config: CityConfig) -> DAG:
    train_resources = _resources(config)
    with DAG(
        dag_id=config.retrain_dag_id,
        schedule=retrain_schedule(config),
        catchup=False,
        max_active_runs=1,
        tags=["retraining", config.city, config.owner],
        doc_md=_retrain_doc(config),
        default_args={
            "owner": config.owner,
            "retries": config.retries,
            "retry_delay": timedelta(minutes=1),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=30),
        },
    ) as dag:
        common = {"config": config}
        mlflow_retries = {"retries": max(config.retries, MLFLOW_STEP_MIN_RETRIES)}
        validate = ValidateDataOperator(task_id=VALIDATE, data_uri=config.data_uri, **common)
        train = TrainModelOperator(task_id=TRAIN, validation=validate.output, **common, **train_resources)
        evaluate = EvaluateModelOperator(
            task_id=EVALUATE,
            validation=validate.output,
            training=train.output,
            **common,
            **train_resources,
            **mlflow_retries,
        )
        register = RegisterModelOperator(
            task_id=REGISTER,
            validation=validate.output,
            training=train.output,
            evaluation=evaluate.output,
            **common,
            **mlflow_retries,
        )
        approve = CityApprovalOperator(
            task_id=APPROVE,
            config=config,
            registration=register.output,
            body=f"{{{{ ti.xcom_pull(task_ids='{EVALUATE}', key='{REPORT_MARKDOWN_KEY}') }}}}",
            notifiers=build_notifiers(config),
        )
        promote = PromoteModelOperator(
            task_id=PROMOTE, registration=register.output, decision=approve.output, **common, **mlflow_retries
        )
        chain(validate, train, evaluate, register, approve, promote)
    # The trigger form goes on after the tasks: an operator created inside a DAG deep-copies the DAG's Params into
    # its own (a third of the parse time with six tasks), and tasks read them from the DAG at run time anyway.
    dag.params = trigger_params(config)
    return dag


def build_rollback_dag(config: CityConfig) -> DAG:
    with DAG(
        dag_id=config.rollback_dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["rollback", config.city, config.owner],
        params={
            "to_version": Param(
                PREVIOUS_CHAMPION,
                type="string",
                title="Version to restore",
                description="A version number, or previous_champion.",
            ),
            "reason": Param(
                type="string", minLength=3, title="Reason (required)", description="Recorded on the model version."
            ),
            "force": Param(False, type="boolean", title="Allow a version that was never approved"),
        },
        doc_md=f"### Roll back `{config.model_name}`\nMoves the MLflow alias `champion` back in one step "
        f"(default: to `previous_champion`) and records who, when and why on the version.",
    ) as dag:
        RollbackModelOperator(
            task_id="rollback",
            config=config,
            to_version="{{ params.to_version }}",
            reason="{{ params.reason }}",
            force="{{ params.force }}",
        )
    return dag


def _resources(config: CityConfig) -> dict:
    """Pool and KubernetesExecutor pod override for the heavy steps (train, evaluate)."""
    resources = config.resources
    kwargs: dict = {}
    if resources.pool:
        kwargs.update(pool=resources.pool, pool_slots=resources.pool_slots)
    if resources.cpu or resources.memory:
        try:
            from kubernetes.client import models as k8s  # only needed where pods are configured
        except ImportError:
            raise ConfigError(
                [
                    f"{config.city}.yaml: resources: cpu and memory are KubernetesExecutor pod requests and need its "
                    "provider; pip install 'airflow-ml-provider[kubernetes]'"
                ]
            ) from None

        requests = {k: v for k, v in (("cpu", resources.cpu), ("memory", resources.memory)) if v}
        kwargs["executor_config"] = {
            "pod_override": k8s.V1Pod(
                spec=k8s.V1PodSpec(
                    containers=[k8s.V1Container(name="base", resources=k8s.V1ResourceRequirements(requests=requests))]
                )
            )
        }
    return kwargs


def _retrain_doc(config: CityConfig) -> str:
    guardrails = (
        "; ".join(
            f"{g.metric} (relative {g.max_relative_regression}, absolute {g.max_absolute_regression})"
            for g in config.evaluation.guardrails
        )
        or "none"
    )
    return f"""### Retrain `{config.model_name}` for {config.city}
Built from `configs/{config.city}.yaml` by airflow-ml-provider. Owner: **{config.owner}**.

1. **validate_data**: reads `{config.data.uri}`, checks it with Great Expectations and built-in checks, and writes a
   validated snapshot that later steps read.
2. **train**: fits `{config.model.estimator}` in a scikit-learn Pipeline on the training window
   ({config.data.train_window_days} days before the {config.data.eval_window_days}-day evaluation window).
3. **evaluate**: compares the candidate with the current `champion` on the evaluation window, slice by slice.
   Guardrails: {guardrails}; confidence {config.evaluation.confidence}.
4. **register**: logs the model to MLflow as a new version of `{config.model_name}`, alias `challenger`.
5. **approve**: waits for one of {", ".join(config.approval.approvers)} under **Browse > Required Actions**
   (timeout {config.approval.timeout_hours} h = rejected).
   Guardrail failure: **{config.approval.on_guardrail_failure}**.
6. **promote**: moves the MLflow alias `champion` to the approved version; `previous_champion` keeps the old one.

Trigger with **Trigger DAG** to change the windows, estimator parameters or tolerance for one run, or to dry-run.
Roll back with the `{config.rollback_dag_id}` DAG.
"""
