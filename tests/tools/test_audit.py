"""``airflow-ml audit`` against a real MLflow store (SQLite, local artifacts) holding registries built by hand: a clean
one passes, and each broken invariant is reported as ``city: model vN: what is wrong`` with exit code 1."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.core import registry
from airflow_ml_provider.tools.cli import main

PROJECT = Path(__file__).resolve().parents[2]
APPROVERS = ["alice", "ops_lead"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An MLflow SQLite store of this module's own (its migrations run once), reached as the CLI reaches MLflow."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("audit")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri, uri).search_registered_models()  # creates the tables
    connection = json.dumps({"conn_type": "mlflow", "host": uri})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", connection)
        env.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield root


@dataclass
class Registry:
    """Build one city's registry by hand: versions with the tags, report and model file the DAG would leave."""

    city: str
    store: Path
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return f"eta_{self.city}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        uri = f"sqlite:///{self.store / 'mlflow.db'}"
        return MlflowClient(uri, uri)

    def add(
        self,
        dag_run: str,
        *,
        decision: str | None = None,
        decided_by: str = "alice",
        promoted: bool = False,
        model: bytes | None = None,
        report: bytes | None = None,
        **tags: str,
    ) -> str:
        """A version of ``dag_run``; ``model``/``report`` default to bytes unique to the version."""
        client = self.client()
        number = len(self.versions) + 1
        model = model if model is not None else f"model {self.city} {number}".encode()
        report = report if report is not None else json.dumps({"verdict": "pass", "n": number}).encode()
        run = self.attempt_run(dag_run, sha(b"evaluated " + model), report)
        model_dir = self.store / "staging" / self.city / str(number)
        model_dir.mkdir(parents=True)
        (model_dir / "model.pkl").write_bytes(model)
        client.log_artifact(run.info.run_id, str(model_dir / "model.pkl"), "model")
        all_tags = {
            registry.DAG_RUN_TAG: dag_run,
            registry.MODEL_SHA_TAG: sha(b"evaluated " + model),  # the pickle train wrote differs from MLflow's file
            registry.MODEL_ARTIFACT_SHA_TAG: sha(model),
            registry.REPORT_SHA_TAG: sha(report),
        }
        if decision:
            all_tags |= {registry.DECISION_TAG: decision, registry.DECIDED_BY_TAG: decided_by}
        if promoted:
            all_tags |= {registry.PROMOTED_AT_TAG: "2026-06-01T00:00:00+00:00", registry.PROMOTED_BY_TAG: decided_by}
        all_tags |= tags
        if not client.search_registered_models(f"name = '{self.model_name}'"):
            client.create_registered_model(self.model_name)
        version = client.create_model_version(
            self.model_name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=all_tags
        ).version
        self.versions[str(version)] = all_tags
        return str(version)

    def attempt_run(self, dag_run: str, model_sha256: str, report: bytes) -> Any:
        """A training attempt's MLflow run, tagged as train tags it, holding the report evaluate logged."""
        client = self.client()
        experiment = client.get_experiment_by_name(self.model_name) or client.get_experiment(
            client.create_experiment(self.model_name, artifact_location=str(self.store / "artifacts" / self.city))
        )
        tags = {registry.DAG_RUN_TAG: dag_run, registry.MODEL_SHA_TAG: model_sha256}
        run = client.create_run(experiment.experiment_id, tags=tags)
        client.log_text(run.info.run_id, report.decode(), "evaluation/report.json")
        return run

    def alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, version)

    def tag(self, version: str, **tags: str) -> None:
        for key, value in tags.items():
            self.client().set_model_version_tag(self.model_name, version, key, value)

    def history(self) -> None:
        """v1 approved and champion once, v2 approved and champion now (v1 previous_champion), v3 rejected,
        v4 superseded by v5 in one DAG run, v5 waiting as challenger."""
        self.add("r1", decision=registry.APPROVED, promoted=True)
        self.add("r2", decision=registry.APPROVED, decided_by="ops_lead", promoted=True)
        self.alias(registry.CHAMPION, "2")
        self.alias(registry.PREVIOUS_CHAMPION, "1")
        self.add("r3", decision=registry.REJECTED)
        self.add("r4", decision=registry.SUPERSEDED, **{registry.SUPERSEDED_BY_TAG: "5"})
        self.add("r4")
        self.alias(registry.CHALLENGER, "5")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copy(PROJECT / "dags" / "configs" / "_defaults.yaml", folder)
    return folder


@pytest.fixture
def city(request: pytest.FixtureRequest, store: Path, config_dir: Path) -> Registry:
    """A city named after the test (its own model in the shared store), approvers alice and ops_lead."""
    name = request.node.name.removeprefix("test_").replace("_", "")[:40]
    (config_dir / f"{name}.yaml").write_text(f"city: {name}\napproval: {{approvers: {APPROVERS}}}\n")
    return Registry(name, store)


def audit(capsys: pytest.CaptureFixture[str], config_dir: Path, *cities: str) -> tuple[int, list[str], str]:
    code = main(["audit", *cities, "--config-dir", str(config_dir)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_a_clean_registry_passes_with_a_summary(city: Registry, config_dir: Path, capsys: Any) -> None:
    city.history()
    code, out, err = audit(capsys, config_dir, city.city)
    assert (code, err) == (0, "")
    assert out == [f"{city.city}: eta_{city.city}: 5 version(s), champion v2: OK", "audit: 1 city(ies) clean"]


def test_a_city_without_versions_is_clean(city: Registry, config_dir: Path, capsys: Any) -> None:
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 0 and out[0] == f"{city.city}: eta_{city.city}: 0 version(s), no champion: OK"


def test_a_champion_approved_by_someone_not_listed(city: Registry, config_dir: Path, capsys: Any) -> None:
    version = city.add("r1", decision=registry.APPROVED, decided_by="mallory", promoted=True)
    city.alias(registry.CHAMPION, version)
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v1: held champion, approved by 'mallory', who is not in approval.approvers "
        f"of {city.city}.yaml (alice, ops_lead)"
    )
    assert out[-1] == "1 violation(s) in 1 city(ies)"


def test_every_version_that_ever_held_champion_is_checked(city: Registry, config_dir: Path, capsys: Any) -> None:
    """v1 was champion once (promoted_at tag) without any decision; the champion now is fine."""
    city.add("r1", promoted=True)
    city.alias(registry.CHAMPION, city.add("r2", decision=registry.APPROVED, promoted=True))
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v1: held champion without an approval (decision: none) and without a "
        "recorded rollback"
    )


def test_a_rejected_version_restored_by_a_listed_approvers_rollback_passes(
    city: Registry, config_dir: Path, capsys: Any
) -> None:
    rollback = {registry.ROLLBACK_REASON_TAG: "v2 broke checkout", registry.ROLLBACK_FROM_TAG: "2"}
    restored = city.add("r1", decision=registry.REJECTED, decided_by="ops_lead", promoted=True, **rollback)
    city.add("r2", decision=registry.APPROVED, promoted=True, **{registry.ROLLED_BACK_AT_TAG: "2026-06-02"})
    city.alias(registry.CHAMPION, restored)
    city.alias(registry.PREVIOUS_CHAMPION, "2")
    assert audit(capsys, config_dir, city.city)[0] == 0

    city.tag(restored, **{registry.PROMOTED_BY_TAG: "intern"})  # the same rollback, run by someone not listed
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v1: was rejected, then restored as champion by a rollback by 'intern', "
        f"who is not in approval.approvers of {city.city}.yaml"
    )


def test_a_report_that_is_not_what_the_approver_read(city: Registry, config_dir: Path, capsys: Any) -> None:
    read, logged = b'{"verdict": "pass"}', b'{"verdict": "fail"}'
    version = city.add("r1", decision=registry.APPROVED, promoted=True, report=logged)
    city.tag(version, **{registry.REPORT_SHA_TAG: sha(read)})
    city.alias(registry.CHAMPION, version)
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0].startswith(
        f"{city.city}: eta_{city.city} v1: no evaluation/report.json has the sha256 {sha(read)[:12]} the approver "
        f"read (airflow_ml.report_sha256): {sha(logged)[:12]} in run "
    )


def test_a_model_file_that_is_not_the_approved_bits(city: Registry, config_dir: Path, capsys: Any) -> None:
    version = city.add("r1", decision=registry.APPROVED, promoted=True, model=b"swapped after approval")
    city.tag(version, **{registry.MODEL_ARTIFACT_SHA_TAG: sha(b"approved bits")})
    city.alias(registry.CHAMPION, version)
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0].startswith(
        f"{city.city}: eta_{city.city} v1: model.pkl has sha256 {sha(b'swapped after approval')[:12]}"
    )
    assert "these are not the approved bits" in out[0]


def test_a_champion_without_recorded_bits(city: Registry, config_dir: Path, capsys: Any) -> None:
    version = city.add("r1", decision=registry.APPROVED, promoted=True)
    city.client().delete_model_version_tag(city.model_name, version, registry.MODEL_SHA_TAG)
    city.alias(registry.CHAMPION, version)
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v1: held champion but has no airflow_ml.model_sha256 tag: its bits are unknown"
    )


def test_previous_champion_must_have_held_champion(city: Registry, config_dir: Path, capsys: Any) -> None:
    city.add("r1", decision=registry.APPROVED)
    city.alias(registry.CHAMPION, city.add("r2", decision=registry.APPROVED, promoted=True))
    city.alias(registry.PREVIOUS_CHAMPION, "1")
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v1: is previous_champion but never held champion (no airflow_ml.promoted_at)"
    )


def test_one_dag_run_registering_the_same_bits_twice(city: Registry, config_dir: Path, capsys: Any) -> None:
    """A retried register that did not find its own version: two current versions of one run, same bits."""
    city.add("manual__1", model=b"same bits")
    city.add("manual__1", model=b"same bits")
    city.alias(registry.CHALLENGER, "2")
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == (
        f"{city.city}: eta_{city.city} v2: holds the same model (sha256 {sha(b'evaluated same bits')[:12]}) as v1 of "
        "DAG run manual__1: a retry or rerun registered it twice"
    )
    assert out[-1] == "1 violation(s) in 1 city(ies)"

    city.tag("1", **{registry.SUPERSEDED_BY_TAG: "2", registry.DECISION_TAG: registry.SUPERSEDED})
    assert audit(capsys, config_dir, city.city)[0] == 0  # an older copy that was superseded is history, not a twin


def test_a_reused_version_whose_report_is_in_a_later_attempts_run(
    city: Registry, config_dir: Path, capsys: Any
) -> None:
    """A rerun with the same bits reuses the version and logs its (re-evaluated) report to its own attempt's run."""
    version = city.add("r1", decision=registry.APPROVED, promoted=True)
    city.alias(registry.CHAMPION, version)
    rerun_report = b'{"verdict": "pass", "rerun": true}'
    city.attempt_run("r1", city.versions[version][registry.MODEL_SHA_TAG], rerun_report)
    city.tag(version, **{registry.REPORT_SHA_TAG: sha(rerun_report)})
    code, out, err = audit(capsys, config_dir, city.city)
    assert code == 0, (out, err)

    city.attempt_run("r1", sha(b"other bits"), b'{"verdict": "tampered"}')  # another model's report does not count
    city.tag(version, **{registry.REPORT_SHA_TAG: sha(b'{"verdict": "tampered"}')})
    assert audit(capsys, config_dir, city.city)[0] == 1


def test_a_challenger_that_was_already_decided(city: Registry, config_dir: Path, capsys: Any) -> None:
    city.alias(registry.CHALLENGER, city.add("r1", decision=registry.REJECTED, decided_by="timeout"))
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert out[0] == f"{city.city}: eta_{city.city} v1: is challenger but was rejected"


def test_a_superseded_champion(city: Registry, config_dir: Path, capsys: Any) -> None:
    version = city.add("r1", decision=registry.SUPERSEDED, promoted=True, **{registry.SUPERSEDED_BY_TAG: "2"})
    city.add("r1")
    city.alias(registry.CHAMPION, version)
    code, out, _ = audit(capsys, config_dir, city.city)
    assert code == 1
    assert f"{city.city}: eta_{city.city} v1: is champion but its DAG run replaced it with v2 (superseded)" in out


def test_an_unknown_city_is_not_clean(config_dir: Path, capsys: Any) -> None:
    code, _, err = audit(capsys, config_dir, "atlantis")
    assert code == 2 and f"cannot audit atlantis: no atlantis.yaml in {config_dir}" in err


def test_an_unreachable_registry_is_not_clean(
    city: Registry, config_dir: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": closed}))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    code, out, err = audit(capsys, config_dir, city.city)
    assert code == 2, (out, err)
    assert f"cannot audit {city.city}: could not read eta_{city.city} from MLflow" in err
