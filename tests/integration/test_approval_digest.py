"""The approval digest on a real Airflow: two cities' retraining runs wait at their approval in the real metadata DB,
the ``approval_digest`` DAG runs (``dag.test``), reads them through Airflow's REST API served on a port, and sends
each approver their own list through a real SMTP server and, over HTTP through Airflow's SlackNotifier, to a stand-in
for Slack's Web API. The waiting runs are answered (rejected) at the end."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from notifier_sinks import SlackSink, SmtpSink

from airflow_ml_provider.tools import embedded

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200, method="thread")]

END = datetime(2026, 6, 1, tzinfo=timezone.utc)
APPROVERS = {"bremen": ["bremen_ops", "ops_lead"], "dresden": ["ops_lead"]}  # cities no other test uses
FLEET_YAML = """\
approval_digest:
  notifiers:
    - kind: smtp
      to: ["{approver}@example.com"]
    - kind: slack
      channel: "@{approver}"
"""


@pytest.fixture(scope="module")
def dags_folder(airflow_db: Path, test_dags_folder: Path) -> Iterator[Path]:
    """The test DAG folder with bremen and dresden (their data up to END) and the digest switched on."""
    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    configs = test_dags_folder / "configs"
    for city, approvers in APPROVERS.items():
        (configs / f"{city}.yaml").write_text(
            f"city: {city}\nschedule: null\napproval: {{approvers: [{', '.join(approvers)}]}}\n"
        )
        shutil.copy(test_dags_folder / "berlin.py", test_dags_folder / f"{city}.py")
        write_city_data(make_city_data(city, end=END.date()), airflow_db / "data" / city / "rides.parquet")
    fleet = configs / "_fleet.yaml"
    shipped = fleet.read_text()
    fleet.write_text(FLEET_YAML)
    yield test_dags_folder
    fleet.write_text(shipped)


@pytest.fixture(scope="module")
def api_server(airflow_db: Path) -> Iterator[str]:
    """Airflow's REST API (the API server's own app) on a free loopback port, for the digest task to call."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(apps="core"), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="airflow-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.2)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_each_approver_gets_one_mail_listing_what_waits_for_them(
    dags_folder: Path, api_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from airflow_ml_provider.config import load_city_config
    from airflow_ml_provider.tools import runner

    app = runner.api_app()
    waiting: dict[str, tuple[Any, Any, Any]] = {}
    try:
        for city in APPROVERS:
            dag = DagBag(str(dags_folder / f"{city}.py")).dags[f"retrain_{city}"]
            config = load_city_config(city, dags_folder / "configs")
            outcome = runner.run_city(app, dag, config, END, {}, answer=None)
            assert outcome.waiting, outcome.states
            waiting[city] = (dag, config, outcome)

        smtp = {"conn_type": "smtp", "host": "127.0.0.1", "extra": {"disable_ssl": True, "disable_tls": True,
                "from_email": "airflow@example.com", "retry_limit": 0}}  # fmt: skip
        api = {
            "conn_type": "http",
            "host": api_server,
            "login": embedded.ADMIN,
            "password": embedded.password(embedded.ADMIN),
        }
        with SmtpSink() as sink, SlackSink() as slack:
            monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({**smtp, "port": sink.port}))
            slack_conn = {"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": slack.base_url}}
            monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(slack_conn))
            monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(api))
            digest = DagBag(str(dags_folder / "approval_digest.py")).dags["approval_digest"]
            run = digest.test()
        [task] = run.get_task_instances()
        assert str(run.state) == "success", str(task.state)
        assert task.xcom_pull(task_ids="send_digest") == {"bremen_ops": ["bremen"], "ops_lead": ["bremen", "dresden"]}

        mails = {mail.recipients: mail for mail in sink.mails}
        assert len(sink.mails) == 2, "one mail per approver with something waiting, none for anyone else"
        lead, bremen_ops = mails[("ops_lead@example.com",)], mails[("bremen_ops@example.com",)]
        assert lead.message["Subject"] == "2 model approvals waiting for you: bremen, dresden"
        assert bremen_ops.message["Subject"] == "1 model approval waiting for you: bremen"
        assert lead.message["To"] == "ops_lead@example.com" and lead.sender == "airflow@example.com"
        assert "dresden" not in bremen_ops.html

        posts = {call.body["channel"]: call for call in slack.calls if call.method == "chat.postMessage"}
        assert len(slack.calls) == 2 and set(posts) == {"@bremen_ops", "@ops_lead"}, slack.calls
        assert posts["@ops_lead"].authorization == "Bearer xoxb-test"
        assert posts["@ops_lead"].body["text"].startswith("*2 model approvals wait for your decision, ops_lead:*")
        assert "dresden" in posts["@ops_lead"].body["text"] and "dresden" not in posts["@bremen_ops"].body["text"]

        base_url = os.environ["AIRFLOW__API__BASE_URL"]
        for city, (_, _, outcome) in waiting.items():
            run_path = f"{base_url}/dags/retrain_{city}/runs/{quote(outcome.dag_run.run_id, safe='')}"
            for text in (
                f"<td>{city}</td><td>eta_{city} {outcome.candidate}</td><td>{outcome.verdict}",  # v1, pass or fail
                f'<a href="{run_path}/tasks/evaluate/xcom">report</a>',
                f'<a href="{run_path}/tasks/approve/required_actions">Required Actions</a>',
                f"{datetime.now(timezone.utc):%Y-%m-%d}",  # waiting since today
            ):
                assert text in lead.html, (text, lead.html)
    finally:
        for dag, config, outcome in waiting.values():
            runner.answer_and_finish(app, dag, config, outcome.dag_run, runner.Answer("ops_lead", "Reject", "done"))
