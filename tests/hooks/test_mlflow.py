"""MlflowHook against a real MLflow store (SQLite) and real HTTP endpoints: a candidate is its bits (reuse, new
version, superseded), decisions, promotion that re-checks the bits, rollback rules, the error taxonomy (an outage is
never "absent"), and the status and rollback commands."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import records

from airflow_ml_provider.core import registry, rollback
from airflow_ml_provider.core.handoff import Decision, Registered

pytestmark = pytest.mark.slow

MODEL = "eta_testcity"
REPORT = "r" * 64


@pytest.fixture(scope="module")
def hook() -> Any:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook()


@pytest.fixture(scope="module")
def frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"distance_km": [1.0, 2.0, 3.0, 4.0]})


def _bits(frame: Any, minutes_per_km: float) -> bytes:
    from sklearn.linear_model import LinearRegression

    return pickle.dumps(LinearRegression().fit(frame, [60.0 * minutes_per_km * k for k in (1, 2, 3, 4)]))


def _register(
    hook: Any,
    frame: Any,
    dag_run_id: str,
    bits: bytes,
    *,
    needs_approval: bool = True,
    model: str = MODEL,
    report: str = REPORT,
) -> tuple[Any, bool]:
    run_id = hook.dag_run_run_id(model, "retrain_testcity", dag_run_id, {"city": "testcity"})
    return hook.register_candidate(
        model_name=model,
        run_id=run_id,
        model=pickle.loads(bits),
        input_example=frame,
        tags={"city": "testcity", registry.MODEL_SHA_TAG: _sha(bits), registry.REPORT_SHA_TAG: report},
        dag_run_id=dag_run_id,
        needs_approval=needs_approval,
    )


def _sha(bits: bytes) -> str:
    return hashlib.sha256(bits).hexdigest()


def _registered(version: Any, *, champion: str | None, report: str = REPORT) -> Registered:
    return records.registered(
        model_name=version.name, version=version.version, mlflow_run_id=version.run_id,
        model_sha256=version.tags[registry.MODEL_SHA_TAG], report_sha256=report, champion_version=champion,
    )  # fmt: skip


def _decide(
    hook: Any, registered: Registered, option: str, by: str = "ops", at: str = "2026-06-01T10:00:00"
) -> Decision:
    decision = registry.decision_of(
        registered, chosen=[option], responded_by={"name": by}, reason="reviewed", responded_at=at, timeout_hours=1
    )
    hook.record_decision(decision)
    return decision


def test_a_new_model_is_absent_not_an_error(hook: Any) -> None:
    assert hook.version_by_alias(MODEL, registry.CHAMPION) is None
    assert hook.versions(MODEL) == []


def test_a_rerun_reuses_a_version_only_for_the_same_bits(hook: Any, frame: Any) -> None:
    a, b = _bits(frame, 1.0), _bits(frame, 1.5)
    first, reused = _register(hook, frame, "run_1", a)
    assert (first.version, reused) == ("1", False)
    assert hook.version_by_alias(MODEL, registry.CHAMPION) is None  # the model exists, the alias does not
    assert first.tags[registry.MODEL_ARTIFACT_SHA_TAG] == hook.artifact_sha256(MODEL, "1")
    assert first.tags[registry.MODEL_SHA_TAG] == _sha(a)

    again, reused = _register(hook, frame, "run_1", a)  # a retried register
    assert (again.version, reused) == ("1", True)

    other, reused = _register(hook, frame, "run_1", b)  # the data changed and the run was cleared
    assert (other.version, reused) == ("2", False)
    old = hook.get_version(MODEL, "1").tags
    assert (old[registry.DECISION_TAG], old[registry.SUPERSEDED_BY_TAG]) == (registry.SUPERSEDED, "2")
    assert hook.version_by_alias(MODEL, registry.CHALLENGER).version == "2"
    assert hook.version_of_dag_run(MODEL, "run_1").version == "2"

    back, reused = _register(hook, frame, "run_1", a)  # the fix was reverted: the first bits again
    assert (back.version, reused) == ("1", True)
    assert registry.SUPERSEDED_BY_TAG not in back.tags and registry.DECISION_TAG not in back.tags
    assert hook.get_version(MODEL, "2").tags[registry.SUPERSEDED_BY_TAG] == "1"
    assert hook.version_by_alias(MODEL, registry.CHALLENGER).version == "1"
    assert [v.version for v in hook.versions_of_dag_run(MODEL, "run_1")] == ["2", "1"]  # one per distinct bits


def test_promote_moves_exactly_the_approved_bits(hook: Any) -> None:
    v1 = hook.get_version(MODEL, "1")
    registered = _registered(v1, champion=None)
    superseded = _registered(hook.get_version(MODEL, "2"), champion=None)
    with pytest.raises(registry.PromotionRefused, match="superseded by v1"):
        hook.promote(superseded, _decide(hook, superseded, "Approve"), approvers=["ops"])
    assert hook.version_by_alias(MODEL, registry.CHAMPION) is None

    decision = _decide(hook, registered, "Approve")
    promotion = hook.promote(registered, decision, approvers=["ops"])
    assert (promotion.previous_champion, promotion.already_done) == (None, False)
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "1"
    assert hook.version_by_alias(MODEL, registry.CHALLENGER) is None
    assert hook.promote(registered, decision, approvers=["ops"]).already_done  # a retried promote
    hook.set_alias(MODEL, registry.CHALLENGER, "1")  # as left by a first attempt that failed just after moving champion
    assert hook.promote(registered, decision, approvers=["ops"]).already_done
    assert hook.version_by_alias(MODEL, registry.CHALLENGER) is None
    tags = hook.get_version(MODEL, "1").tags
    assert (tags[registry.DECIDED_BY_TAG], tags[registry.PROMOTED_BY_TAG]) == ("ops", "ops")


def test_promote_refuses_bits_that_are_not_the_approved_ones(hook: Any, frame: Any) -> None:
    v3, _ = _register(hook, frame, "run_3", _bits(frame, 0.9))
    registered = _registered(v3, champion="1")
    decision = _decide(hook, registered, "Approve")
    with pytest.raises(registry.PromotionRefused, match=r"not one of approval\.approvers"):
        hook.promote(registered, decision, approvers=["someone_else"])
    hook.set_version_tags(MODEL, "3", {registry.MODEL_ARTIFACT_SHA_TAG: "0" * 64})  # as if the file were replaced
    with pytest.raises(registry.PromotionRefused, match=r"MLflow's model file .* is not the file registered"):
        hook.promote(registered, decision, approvers=["ops"])
    hook.set_version_tags(MODEL, "3", {registry.MODEL_ARTIFACT_SHA_TAG: hook.artifact_sha256(MODEL, "3")})
    with pytest.raises(registry.StaleChampionError, match=f"champion of {MODEL} moved from v2 to v1"):
        hook.promote(_registered(v3, champion="2"), decision, approvers=["ops"])
    promotion = hook.promote(registered, decision, approvers=["ops"])
    assert promotion.previous_champion == "1"
    assert hook.version_by_alias(MODEL, registry.PREVIOUS_CHAMPION).version == "1"


def test_a_rejection_is_recorded_and_takes_challenger_away(hook: Any, frame: Any) -> None:
    v4, _ = _register(hook, frame, "run_4", _bits(frame, 2.0))
    assert hook.version_by_alias(MODEL, registry.CHALLENGER).version == v4.version
    registry_decision = _decide(hook, _registered(v4, champion="3"), "Reject", by="timeout")
    assert registry_decision.answer == registry.REJECT_ANSWER
    assert hook.version_by_alias(MODEL, registry.CHALLENGER) is None
    assert hook.get_version(MODEL, "4").tags[registry.DECISION_TAG] == registry.REJECTED
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "3"


def test_rollback_moves_champion_back_with_audit_and_refuses_rejected_versions(hook: Any) -> None:
    plan = hook.rollback(
        MODEL, to_version=None, decided_by="oncall", reason="v3 blocks airport rides", recorded_champion=None
    )
    assert (plan.from_version, plan.to_version) == ("3", "1")
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "1"
    assert hook.version_by_alias(MODEL, registry.PREVIOUS_CHAMPION).version == "3"
    tags = hook.get_version(MODEL, "1").tags
    assert tags[registry.ROLLBACK_REASON_TAG] == "v3 blocks airport rides"
    assert (tags[registry.PROMOTED_BY_TAG], tags[registry.ROLLBACK_FROM_TAG]) == ("oncall", "3")
    no_ledger = {"approvers": ["ops"], "recorded_champion": None}
    with pytest.raises(rollback.RollbackRefused, match="v4 was rejected by timeout"):
        hook.rollback(MODEL, to_version="4", decided_by="ops", reason="try", force=True, **no_ledger)
    with pytest.raises(rollback.RollbackRefused, match="v2 was superseded"):
        hook.rollback(MODEL, to_version="2", decided_by="ops", reason="try", force=True, **no_ledger)
    assert hook.version_by_alias(MODEL, registry.CHAMPION).version == "1"


def test_cli_rollback_and_status(hook: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    from pathlib import Path

    from airflow_ml_provider.tools.cli import main

    configs = tmp_path / "configs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "dags" / "configs", configs)
    (configs / "testcity.yaml").write_text(
        "city: testcity\nregistry: {model_name: eta_testcity}\napproval: {approvers: [ops]}\n"
        f"storage: {{base_uri: {tmp_path / 'runs'}}}\n"  # its ledger, not one in the working directory
    )
    forward = ["rollback", "testcity", "--to", "3", "--reason", "fixed upstream", "--config-dir", str(configs)]
    assert main([*forward, "--by", "oncall"]) == 1
    assert "newer than the champion v1" in capsys.readouterr().out
    assert main([*forward, "--by", "ops"]) == 0
    assert "champion v1 -> v3 (by ops: fixed upstream)" in capsys.readouterr().out
    assert main(["rollback", "testcity", "--to", "4", "--reason", "x", "--config-dir", str(configs)]) == 1
    assert "was rejected" in capsys.readouterr().out
    assert main(["status", str(configs)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("testcity"))
    assert "eta_testcity" in line and " v3 " in line and "ops" in line
    assert any(row.startswith("warsaw") and " none " in row for row in out.splitlines())  # never trained here


def test_a_rerun_that_reuses_an_approved_version_does_not_undo_its_approval(hook: Any, frame: Any) -> None:
    """A cleared DAG run that trains the same bits again reuses its champion's version and asks again. A rejection
    or a timeout of that second request, or a guardrail block, leaves the approval that put the bits live on the
    version, with the report its approver read (audit and rollback rely on it); challenger goes. A new approval
    replaces the old one."""
    model, bits, rerun_report = "eta_rerun", _bits(frame, 1.25), "s" * 64
    first, _ = _register(hook, frame, "run_r", bits, model=model)
    registered = _registered(first, champion=None)
    hook.promote(registered, _decide(hook, registered, "Approve", by="ops"), approvers=["ops"])
    approval = {k: v for k, v in hook.get_version(model, first.version).tags.items() if k in registry.APPROVAL_RECORD}
    assert approval[registry.DECISION_TAG] == registry.APPROVED

    for answer, by in (("Reject", "ops"), ("Reject", registry.TIMEOUT_DECIDER)):
        again, reused = _register(hook, frame, "run_r", bits, model=model, report=rerun_report)
        assert (again.version, reused) == (first.version, True)
        assert hook.version_by_alias(model, registry.CHALLENGER).version == first.version
        rerun = _registered(again, champion=first.version, report=rerun_report)
        _decide(hook, rerun, answer, by=by, at="2026-06-02T10:00:00")
        tags = hook.get_version(model, first.version).tags
        assert {k: v for k, v in tags.items() if k in registry.APPROVAL_RECORD} == approval, by
        assert hook.version_by_alias(model, registry.CHALLENGER) is None
        assert hook.version_by_alias(model, registry.CHAMPION).version == first.version

    blocked, _ = _register(hook, frame, "run_r", bits, model=model, report=rerun_report, needs_approval=False)
    assert {k: v for k, v in blocked.tags.items() if k in registry.APPROVAL_RECORD} == approval

    _register(hook, frame, "run_r", bits, model=model, report=rerun_report)
    rerun = _registered(blocked, champion=first.version, report=rerun_report)
    decision = _decide(hook, rerun, "Approve", by="ops", at="2026-06-03T10:00:00")
    tags = hook.get_version(model, first.version).tags
    assert (tags[registry.DECIDED_AT_TAG], tags[registry.REPORT_SHA_TAG]) == ("2026-06-03T10:00:00", rerun_report)
    assert hook.promote(rerun, decision, approvers=["ops"]).already_done


# ----- a rollback interrupted after any write, then retried -----------------------------------------------------------

RB_CITY, RB_MODEL = "rbcity", "eta_rbcity"
# What a rollback writes, in order; the fault kills the attempt just after write k succeeded.
ROLLBACK_WRITES = ("restored version's tags", "rolled_back_at of the old champion", "champion", "previous_champion")
LEDGER_APPEND = len(ROLLBACK_WRITES) + 1


class Killed(RuntimeError):
    """The worker died (or MLflow restarted) right after a write."""


@pytest.fixture(scope="module")
def rollback_versions(hook: Any, frame: Any) -> tuple[str, str]:
    """v1 and v2 of eta_rbcity, both approved by ops and promoted in turn."""
    versions = []
    for dag_run_id, minutes in (("rb_1", 1.1), ("rb_2", 1.2)):
        version, _ = _register(hook, frame, dag_run_id, _bits(frame, minutes), model=RB_MODEL)
        _decide(hook, _registered(version, champion=None), "Approve")
        versions.append(version.version)
    return versions[0], versions[1]


@pytest.fixture
def rollback_city(hook: Any, rollback_versions: tuple[str, str], tmp_path: Any) -> Any:
    """eta_rbcity as two promotions left it (champion v2, previous_champion v1, both in a fresh ledger)."""
    import shutil
    from pathlib import Path

    from airflow_ml_provider.config import load_city_config
    from airflow_ml_provider.core.ledger import PROMOTE, Move
    from airflow_ml_provider.hooks.ledger import city_ledger

    configs = tmp_path / "configs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "dags" / "configs", configs)
    (configs / f"{RB_CITY}.yaml").write_text(
        f"city: {RB_CITY}\napproval: {{approvers: [ops]}}\nstorage: {{base_uri: {tmp_path / 'runs'}}}\n"
    )
    config = load_city_config(RB_CITY, configs)
    old, new = rollback_versions
    for version in (old, new):
        for key in (registry.ROLLBACK_FROM_TAG, registry.ROLLBACK_REASON_TAG, registry.ROLLED_BACK_AT_TAG):
            if key in hook.get_version(RB_MODEL, version).tags:
                hook.client.delete_model_version_tag(RB_MODEL, version, key)
        hook.set_version_tags(
            RB_MODEL, version, {registry.PROMOTED_AT_TAG: f"2026-06-0{version}", registry.PROMOTED_BY_TAG: "ops"}
        )
        city_ledger(config).append(
            Move(kind=PROMOTE, model_name=RB_MODEL, version=version, from_version=None if version == old else old,
                 to_version=version, who="ops", why="weekly", dag_run_id=f"rb_{version}")
        )  # fmt: skip
    hook.set_alias(RB_MODEL, registry.PREVIOUS_CHAMPION, old)
    hook.set_alias(RB_MODEL, registry.CHAMPION, new)
    return config


def _kill_after_write(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Every MlflowHook (the CLI builds its own) and the ledger count their writes; write ``step`` succeeds, then
    the attempt dies, once."""
    from airflow_ml_provider.core.ledger import Ledger
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    writes = [0]

    def counted(real: Any) -> Any:
        def write(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            writes[0] += 1
            if writes[0] == step:
                raise Killed(f"killed after write {step}")
            return result

        return write

    for owner, name in ((MlflowHook, "set_version_tags"), (MlflowHook, "set_alias"), (Ledger, "append")):
        monkeypatch.setattr(owner, name, counted(getattr(owner, name)))


def _assert_rolled_back_once(hook: Any, config: Any, run_id: str | None) -> None:
    """v2 -> v1 as it happened: aliases, both versions' tags, one ledger event, and audit's checks pass."""
    from airflow_ml_provider.hooks.ledger import city_ledger
    from airflow_ml_provider.tools import audit

    assert hook.version_by_alias(RB_MODEL, registry.CHAMPION).version == "1"
    assert hook.version_by_alias(RB_MODEL, registry.PREVIOUS_CHAMPION).version == "2"
    restored, old = hook.get_version(RB_MODEL, "1").tags, hook.get_version(RB_MODEL, "2").tags
    assert (restored[registry.ROLLBACK_FROM_TAG], restored[registry.PROMOTED_BY_TAG]) == ("2", "oncall")
    assert restored[registry.ROLLBACK_REASON_TAG] == "v2 is slow at the airport"
    assert old[registry.ROLLED_BACK_AT_TAG] == restored[registry.PROMOTED_AT_TAG]
    events = city_ledger(config).events()
    assert [(e.kind, e.from_version, e.to_version) for e in events] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("rollback", "2", "1")
    ]  # fmt: skip
    assert (events[-1].who, events[-1].why, events[-1].dag_run_id) == ("oncall", "v2 is slow at the airport", run_id)
    checks = [audit.check_champions_were_approved, audit.check_previous_champion, audit.check_promotion_ledger]
    assert audit.audit_city(audit.read_city_registry(hook, config), checks).violations == []


@pytest.mark.parametrize("requested", [None, "1"], ids=["previous_champion", "v1"])
@pytest.mark.parametrize("step", range(1, LEDGER_APPEND + 1), ids=[*ROLLBACK_WRITES, "ledger event"])
def test_a_rollback_dag_run_killed_after_any_write_is_finished_by_its_retry(
    hook: Any, rollback_city: Any, monkeypatch: pytest.MonkeyPatch, step: int, requested: str | None
) -> None:
    """The rollback DAG's task dies after write k; Airflow retries it (then a person clears it): champion v1,
    previous_champion v2 (never champion again), one ledger event v2 -> v1."""
    from airflow_ml_provider.hooks.ledger import roll_back

    def attempt() -> rollback.Rollback:
        return roll_back(
            rollback_city, hook, to_version=requested, who="oncall", why="v2 is slow at the airport", force=False,
            dag_id=f"rollback_{RB_CITY}", dag_run_id="manual__1",
        )  # fmt: skip

    _kill_after_write(monkeypatch, step)
    with pytest.raises(Killed):
        attempt()
    for _ in ("retry", "clear"):
        plan = attempt()
        assert (plan.from_version, plan.to_version) == ("2", "1")
    _assert_rolled_back_once(hook, rollback_city, "manual__1")


@pytest.mark.parametrize("step", range(1, LEDGER_APPEND), ids=ROLLBACK_WRITES)
def test_airflow_ml_rollback_killed_after_any_write_is_finished_by_running_it_again(
    rollback_city: Any, hook: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], step: int
) -> None:
    """The command goes the DAG's way (hooks.ledger.roll_back): run again after a crash, it finishes the rollback.
    A request for another version meanwhile is refused and changes nothing."""
    from pathlib import Path

    from airflow_ml_provider.tools.cli import main

    configs = Path(rollback_city.storage.base_uri).parent / "configs"
    command = [
        "rollback",
        RB_CITY,
        "--reason",
        "v2 is slow at the airport",
        "--by",
        "oncall",
        "--config-dir",
        str(configs),
    ]
    _kill_after_write(monkeypatch, step)
    with pytest.raises(Killed):
        main(command)
    moved = hook.version_by_alias(RB_MODEL, registry.CHAMPION).version == "1"
    if moved:  # nothing may bury this rollback
        assert main([*command[:2], "--to", "2", *command[2:]]) == 1
        assert "from v2 to v1 by oncall (v2 is slow at the airport) was interrupted" in capsys.readouterr().out
    assert main(command) == 0
    finished = "; an interrupted rollback, now finished" if moved else ""
    assert f"champion v2 -> v1 (by oncall: v2 is slow at the airport{finished})\n" in capsys.readouterr().out
    _assert_rolled_back_once(hook, rollback_city, None)


# ----- an outage is an error Airflow retries, never "absent" ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client retries HTTP for minutes by default; the task's retries are Airflow's business here."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A tracking URI whose server answers every request with 503, as a proxy does while MLflow restarts."""

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def _fail(self) -> None:
            self.send_response(503)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"upstream restarting")

        do_GET = do_POST = do_PATCH = do_DELETE = _fail

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("endpoint", ["closed port", "503"])
def test_an_unreachable_registry_raises_instead_of_reading_as_absent(
    endpoint: str, no_client_retries: None, failing_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    from airflow_ml_provider.hooks.mlflow import MlflowHook

    uri = f"http://127.0.0.1:{_free_port()}" if endpoint == "closed port" else failing_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    down = MlflowHook("no_such_connection")
    with pytest.raises(MlflowException):
        down.version_by_alias(MODEL, registry.CHAMPION)
    with pytest.raises(MlflowException):
        down.versions(MODEL)
    with pytest.raises(MlflowException):
        down.versions_of_dag_run(MODEL, "run_1")
