"""``_fleet.yaml``: the approval digest's section, its DAG, and errors that name the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.config import ConfigError
from airflow_ml_provider.config.fleet import FLEET_FILE, load_fleet_config

PROJECT = Path(__file__).resolve().parents[2]

DIGEST = """\
approval_digest:
  schedule: "30 6 * * 1-5"
  notifiers:
    - kind: smtp
      to: ["{approver}@example.com", ml-audit@example.com]
    - kind: slack
      channel: "@{approver}"
      conn_id: slack_ml
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A DAG folder: the shipped cities and loaders, configs/ beside them."""
    dags = tmp_path / "dags"
    shutil.copytree(PROJECT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    return dags


def test_no_file_or_no_section_means_no_digest(folder: Path) -> None:
    (folder / "configs" / FLEET_FILE).unlink(missing_ok=True)
    assert load_fleet_config(folder / "configs").approval_digest is None
    (folder / "configs" / FLEET_FILE).write_text("# nothing yet\n")
    assert load_fleet_config(folder / "configs").approval_digest is None


def test_the_section_with_defaults(folder: Path) -> None:
    (folder / "configs" / FLEET_FILE).write_text(DIGEST)
    digest = load_fleet_config(folder / "configs").approval_digest
    assert digest is not None and digest.schedule == "30 6 * * 1-5" and digest.airflow_conn_id == "airflow_api"
    assert [n.kind for n in digest.notifiers] == ["smtp", "slack"]
    (folder / "configs" / FLEET_FILE).write_text("approval_digest: {notifiers: [{kind: smtp, to: [a@b.c]}]}\n")
    assert load_fleet_config(folder / "configs").approval_digest.schedule == "0 7 * * *"  # daily


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "approval_digest: {notifiers: [{kind: smtp}]}",
            "_fleet.yaml: approval_digest.notifiers[0]: kind smtp needs `to`: the addresses, e.g. "
            "['{approver}@example.com']",
        ),
        (
            "approval_digest: {notifiers: [{kind: smtp, to: ['{user}@example.com']}]}",
            "_fleet.yaml: approval_digest.notifiers[0]: '{user}@example.com': unknown placeholder {user}; only "
            "{approver} is replaced",
        ),
        ("approval_digest: {notifiers: []}", "_fleet.yaml: approval_digest.notifiers: needs at least 1 item(s)"),
        (
            "approval_digest: {schedule: every morning, notifiers: [{kind: slack}]}",
            "_fleet.yaml: approval_digest.schedule: 'every morning' is not a cron expression Airflow accepts",
        ),
        (
            "approval_digest: {notifiers: [{kind: pigeon}]}",
            "_fleet.yaml: approval_digest.notifiers[0].kind: input should be 'smtp' or 'slack', got 'pigeon'",
        ),
        ("approval_digests: {}", "_fleet.yaml: approval_digests: unknown key"),
        ("approval_digest: [", "_fleet.yaml: not valid YAML (line 2, column 1)"),
    ],
)
def test_a_bad_section_names_the_file_and_the_field(folder: Path, text: str, problem: str) -> None:
    (folder / "configs" / FLEET_FILE).write_text(text + "\n")
    with pytest.raises(ConfigError) as raised:
        load_fleet_config(folder / "configs")
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_the_digest_dag_and_its_import_error(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader file builds ``approval_digest`` (one task, its own cron); a bad ``_fleet.yaml`` is that file's
    import error, naming the file and field, and the cities' DAGs are untouched."""
    from airflow.dag_processing.dagbag import DagBag

    from airflow_ml_provider.factory import DIGEST_DAG_ID, DIGEST_TASK_ID

    monkeypatch.delenv("AIRFLOW_ML_CONFIG_DIR", raising=False)
    loader = folder / "approval_digest.py"
    assert loader.exists(), "the shipped loader file"
    (folder / "configs" / FLEET_FILE).write_text(DIGEST)
    dag = DagBag(str(loader)).dags[DIGEST_DAG_ID]
    assert [t.task_id for t in dag.tasks] == [DIGEST_TASK_ID]
    assert dag.timetable.expression == "30 6 * * 1-5" and dag.catchup is False
    assert dag.get_task(DIGEST_TASK_ID).retries == 0

    (folder / "configs" / FLEET_FILE).write_text("approval_digest: {notifiers: [{kind: smtp}]}\n")
    bag = DagBag(str(folder))
    [(path, error)] = bag.import_errors.items()
    assert Path(path).name == "approval_digest.py"
    assert "_fleet.yaml: approval_digest.notifiers[0]: kind smtp needs `to`" in error
    assert "retrain_berlin" in bag.dag_ids


def test_lint_reports_the_fleet_file(folder: Path) -> None:
    from airflow_ml_provider.tools.lint import fleet_problems

    (folder / "configs" / FLEET_FILE).write_text(DIGEST)
    assert fleet_problems(folder / "configs") == []
    (folder / "configs" / FLEET_FILE).write_text("approval_digest: {airflow_conn_id: 5, notifiers: [{kind: slack}]}\n")
    assert fleet_problems(folder / "configs") == [
        "_fleet.yaml: approval_digest.airflow_conn_id: input should be a valid string, got 5"
    ]
