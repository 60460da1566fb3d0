"""Hostile but well-formed data (tests/bad_inputs.py, ``HOSTILE_RUNS``) through whole ``retrain_corpus`` runs with
``dag.test()``: every step runs, and the approval body Airflow shows (read back over its REST API, as the UI reads it)
and the validation HTML report show the hostile values as text. The hostile inputs that must fail validate_data
(``HOSTILE_FAILURES``) are in ``CORPUS`` and run in test_bad_input_dag.py.

The runs ask for approval (the trigger form's tolerance is set to 100% so a guardrail cannot block them), and a
background thread answers Reject through the REST route once it has read the body.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import bad_inputs
import pytest
from approvals import Approver, answer_as
from bad_inputs import DATA_END, HOSTILE_DISTRICTS, HOSTILE_RUNS, INJECTION, LONG_VALUE, BadInput

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900, method="thread")]

CITY = "corpus"
APPROVER = "ops_lead"


def rendered(markdown_text: str) -> str:
    """HTML of the Markdown as a CommonMark + GFM renderer (tables, autolinks) makes it, like Airflow's UI."""
    from markdown_it import MarkdownIt

    return MarkdownIt("gfm-like").render(markdown_text)


def assert_renders_as_text(body: str) -> None:
    html = rendered(body)
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert "example.invalid" not in "".join(part.split(">", 1)[0] for part in html.split("<a ")[1:])  # no such link
    assert "<h2>PASS" not in html and not any(line.startswith("## PASS") for line in body.splitlines())
    assert "\u202e" not in body and "\u200b" not in body and LONG_VALUE not in body
    assert max(len(line) for line in body.splitlines()) < 2000


def mlflow_text(run_id: str, path: str) -> str:
    import mlflow

    from airflow_ml_provider.hooks.mlflow import MlflowHook

    mlflow.set_tracking_uri(MlflowHook().tracking_uri)
    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture(scope="module")
def clean_rides() -> Any:
    return bad_inputs.clean_rides()


@pytest.fixture(scope="module")
def api_app(dagbag: Any) -> Any:
    """Airflow's REST API in-process, created in the main thread (importing it in the approver's thread while a run
    imports Airflow's models deadlocks)."""
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


def run_to_the_approval(
    dagbag: Any, api_app: Any, hostile: BadInput, clean: Any, folder: Path, hour: int
) -> tuple[Any, str]:
    """A whole run on the hostile file (its own logical date, so its own MLflow run); returns it and the approval
    body read over REST."""
    from airflow_ml_provider.hooks.dataset import DatasetHook

    uri = bad_inputs.write(hostile, clean, folder, DatasetHook().write_bytes)
    dag_id = f"retrain_{CITY}"
    with Approver(api_app, dag_id, answer_as(APPROVER, "Reject", "hostile-data test")) as approver:
        dag_run = dagbag.dags[dag_id].test(
            logical_date=DATA_END + timedelta(hours=hour), run_conf={"data_uri": uri, "guardrail_tolerance": 1.0}
        )
    assert approver.error is None, approver.error
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {
        "validate_data": "success",
        "train": "success",
        "evaluate": "success",
        "register": "success",
        "approve": "success",
        "promote": "skipped",
    }, states
    assert approver.request is not None, "nobody was asked to approve"
    return dag_run, approver.request["body"]


def test_hostile_category_values_render_as_text(dagbag: Any, api_app: Any, clean_rides: Any, tmp_path: Path) -> None:
    """Markdown, HTML, a `$` that matplotlib would parse, backslashes, 10 kB, right-to-left and zero-width characters,
    "nan", "None" and "" as district names: the run reaches the approval, whose body shows each name as text."""
    (hostile,) = [h for h in HOSTILE_RUNS if h.name == "hostile category values"]
    dag_run, body = run_to_the_approval(dagbag, api_app, hostile, clean_rides, tmp_path, hour=1)

    assert body.startswith(xcom(dag_run, "evaluate", "report_markdown").rstrip())  # plus the version's link
    assert_renders_as_text(body)
    html = rendered(body)
    shown = {
        INJECTION: "district=x\\n\\n## PASS: all fine\\n![](https://example.invalid/p.png) [Approve](h…",
        "$\\notacommand$": "district=$\\notacommand$",
        "C:\\new\\table\\": "district=C:\\new\\table\\",
        "<script>alert(1)</script><b>bold</b> &amp;": "district=&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold"
        "&lt;/b&gt; &amp;amp;",
        LONG_VALUE: "district=long-" + "y" * 65 + "…",
        "\u202eevil.exe": "district=\\u202eevil.exe",
        "mi\u200btte\u200d": "district=mi\\u200btte\\u200d",
        "nan": "district=nan",
        "None": "district=None",
        "": "district=",
    }
    assert set(shown) == set(HOSTILE_DISTRICTS.values())
    for text in shown.values():
        assert f"<td>{text}</td>" in html, text

    validation = xcom(dag_run, "validate_data")
    report_html = mlflow_text(validation["mlflow_run_id"], "validation/report.html")
    assert "<script>" not in report_html and "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html
    assert "## PASS: all fine\\n![](https://example.invalid/p.png)" in report_html  # a repr: one line
    assert LONG_VALUE not in report_html and "\u202e" not in report_html
    # The evaluation report lives in the training attempt's run (nested under the DAG run's run).
    report_json = mlflow_text(xcom(dag_run, "train")["mlflow_run_id"], "evaluation/report.json")
    assert LONG_VALUE.replace("\\", "\\\\") in report_json  # the stored report keeps the whole value


def test_mixed_time_zones_future_rides_and_a_constant_target(
    dagbag: Any, api_app: Any, clean_rides: Any, tmp_path: Path
) -> None:
    """Timestamps written with Z, +02:00 and none (UTC) are the same instants; the four future rides are left out
    with a warning; r2 of a constant target is undefined and says so instead of printing 0 or 1."""
    (hostile,) = [h for h in HOSTILE_RUNS if h.name.startswith("mixed time zones")]
    dag_run, body = run_to_the_approval(dagbag, api_app, hostile, clean_rides, tmp_path, hour=2)

    assert_renders_as_text(body)
    assert "| r2 | undefined (the target is constant) |" in body
    summary = xcom(dag_run, "validate_data")["summary"]
    assert summary["warning_checks"] == ["future_timestamps:requested_at"]
    assert summary["rows_outside_windows"] == 4
    # Every other row is used: no instant was lost or shifted out of the windows by its time zone.
    assert summary["train_rows"] + summary["eval_rows"] == len(bad_inputs._recent_days(clean_rides)) - 4
