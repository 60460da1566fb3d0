"""send_digest: the ``approval_digest`` DAG's one task, a message to each approver listing what waits for them."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.config import load_all
from airflow_ml_provider.config.city import RETRAIN_PREFIX
from airflow_ml_provider.config.fleet import APPROVER, FLEET_FILE, ApprovalDigestConfig
from airflow_ml_provider.core.digest import (
    REGISTER_TASK,
    DigestMessage,
    digest_messages,
    is_city_approval,
    waiting_approval,
)
from airflow_ml_provider.hooks.airflow_api import AirflowApiHook
from airflow_ml_provider.operators.base import make_notifier, ui_base_url

if TYPE_CHECKING:
    from airflow.sdk import Context


class ApprovalDigestOperator(BaseOperator):
    """Read every pending city approval from Airflow's REST API, group it per approver and send each approver one
    message through the ``approval_digest.notifiers`` of ``_fleet.yaml``. An approver with nothing waiting gets
    nothing. A message that cannot be sent is logged and the others still go; the task then fails naming who was
    not reached (clear it to send again: everyone gets their digest once more).

    Links point at ``[api] base_url`` (what Airflow's own notifications use), else the API connection's URL.

    :param digest: the ``approval_digest`` section.
    :param config_dir: the city configs, for the approvers of a request that names none.
    """

    ui_color = "#fefcbf"

    def __init__(self, *, digest: ApprovalDigestConfig, config_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.digest = digest
        self.config_dir = config_dir

    def execute(self, context: Context) -> dict[str, list[str]]:
        hook = AirflowApiHook(self.digest.airflow_conn_id)
        api = hook.get_conn()
        configs, problems = load_all(Path(self.config_dir))
        for problem in problems:
            self.log.warning("city config left out: %s", problem)
        base_url = ui_base_url() or hook.base_url
        waiting = []
        for request in filter(is_city_approval, api.pending_approvals()):
            task = request["task_instance"]
            config = configs.get(task["dag_id"].removeprefix(RETRAIN_PREFIX))
            waiting.append(
                waiting_approval(
                    request,
                    api.xcom(task["dag_id"], task["dag_run_id"], REGISTER_TASK),
                    city_approvers=config.approval.approvers if config else (),
                    model_name=config.model_name if config else None,
                    base_url=base_url,
                )
            )
        messages = digest_messages(waiting, now=datetime.now(timezone.utc))
        self.log.info("%d approval(s) waiting, %d approver(s) to tell", len(waiting), len(messages))
        unsent = [m.approver for m in messages if not self._send(m, context)]
        if unsent:
            raise AirflowFailException(f"the digest did not reach {', '.join(unsent)}; see the log above")
        return {m.approver: list(m.cities) for m in messages}

    def _send(self, message: DigestMessage, context: Context) -> bool:
        """Through every notifier; False when one failed."""
        sent = True
        for spec in self.digest.notifiers:
            notifier = make_notifier(
                spec,
                subject=message.subject,
                html=message.html,
                text=message.text,
                where=f"{FLEET_FILE}: approval_digest.notifiers",
                to=[address.replace(APPROVER, message.approver) for address in spec.to or ()],
                channel=spec.channel.replace(APPROVER, message.approver) if spec.channel else None,
            )
            try:
                # notify(), not notifier(context): the message holds names from the registry and the configs, which
                # must not be rendered as Jinja templates.
                notifier.notify(context)
            except Exception:
                self.log.exception("%s digest for %s failed", spec.kind, message.approver)
                sent = False
            else:
                self.log.info("%s digest sent to %s: %s", spec.kind, message.approver, ", ".join(message.cities))
        return sent
