"""The promotion ledger: hash chain, tamper detection that names the event, racing writers, "champion at T".

Stored through the real DatasetHook, on local disk and on S3 (moto, with S3's conditional write)."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import records
from records import append_history

from airflow_ml_provider.core import ledger, registry, rollback
from airflow_ml_provider.core.handoff import Promoted
from airflow_ml_provider.core.ledger import Ledger, LedgerError, Move, champion_at, champion_mismatch, verify
from airflow_ml_provider.hooks.dataset import DatasetHook

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _history(book: Ledger) -> None:
    """v1 promoted, v2 rejected, v3 promoted, rolled back to v1 (kind, version, from -> to, who, why, day)."""
    events = [
        ("promote", "1", None, "1", "berlin_ops", "first", 0),
        ("reject", "2", "1", "1", "berlin_ops", "worse in mitte", 7),
        ("promote", "3", "1", "3", "ops_lead", "better", 14),
        ("rollback", "1", "3", "1", "oncall", "incident 42", 15),
    ]
    append_history(book, "eta_berlin", events, start=T0, report_sha256="r" * 64, model_sha256="m" * 64)


@pytest.fixture
def book(tmp_path: Path) -> Ledger:
    return Ledger(DatasetHook(), str(tmp_path / "runs"), "berlin")


def test_events_are_one_object_each_chained_by_sha256(book: Ledger, tmp_path: Path) -> None:
    _history(book)
    folder = tmp_path / "runs" / "berlin" / "_ledger"
    assert sorted(p.name for p in folder.iterdir()) == [f"000000000{i}.json" for i in (1, 2, 3, 4)]
    stored = book.read()
    assert verify(stored) is None
    assert stored[0].event.previous_sha256 == ledger.GENESIS
    assert stored[2].event.previous_sha256 == ledger.sha256_hex(stored[1].data)
    first = json.loads((folder / "0000000001.json").read_text())
    assert first["who"] == "berlin_ops" and first["why"] == "first" and first["to_version"] == "1"
    assert first["dag_run_id"] == "manual__0" and first["model_sha256"] == "m" * 64
    assert (folder / "0000000001.json").read_bytes() == stored[0].event.to_bytes()  # canonical JSON is what's stored


def test_tampering_with_one_event_is_named(book: Ledger, tmp_path: Path) -> None:
    _history(book)
    target = tmp_path / "runs" / "berlin" / "_ledger" / "0000000002.json"
    event = json.loads(target.read_text())
    event["who"] = "someone_else"  # rewrite history: who rejected v2
    target.write_bytes(ledger.canonical_json(event))

    problem = verify(book.read())
    assert problem is not None
    assert problem.uri == str(target) and problem.sequence == 2
    assert "changed after it was written" in problem.message and "event 3" in problem.message


def test_deleted_and_garbled_events_are_named(book: Ledger, tmp_path: Path) -> None:
    _history(book)
    folder = tmp_path / "runs" / "berlin" / "_ledger"
    (folder / "0000000003.json").write_text("{not json")
    problem = verify(book.read())
    assert problem is not None and problem.uri.endswith("0000000003.json") and "not a JSON ledger event" in str(problem)

    (folder / "0000000003.json").unlink()
    problem = verify(book.read())
    assert problem is not None and problem.uri.endswith("0000000004.json")
    assert "event 3 is missing" in problem.message


def test_a_broken_chain_is_not_extended(book: Ledger, tmp_path: Path) -> None:
    _history(book)
    (tmp_path / "runs" / "berlin" / "_ledger" / "0000000002.json").unlink()
    with pytest.raises(LedgerError, match="ledger of berlin is broken, nothing appended"):
        book.append(
            Move(kind="promote", model_name="m", version="5", from_version="1", to_version="5", who="x", why="y")
        )
    assert len(book.read()) == 3


def test_racing_writers_never_fork_the_chain(book: Ledger, tmp_path: Path) -> None:
    """Writers that read the same last event race for the same name: exclusive create lets one win, the others
    re-read and chain after it."""
    start = threading.Barrier(6)

    def writer(n: int) -> None:
        start.wait()
        Ledger(DatasetHook(), str(tmp_path / "runs"), "berlin").append(
            Move(
                kind="promote",
                model_name="m",
                version=str(n),
                from_version=None,
                to_version=str(n),
                who=f"w{n}",
                why="race",
            )
        )

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = book.read()
    assert [s.event.sequence for s in stored] == [1, 2, 3, 4, 5, 6]
    assert sorted(s.event.who for s in stored) == [f"w{n}" for n in range(6)]
    assert verify(stored) is None


def test_champion_at_a_time(book: Ledger) -> None:
    _history(book)
    events = book.events()
    assert champion_at(events, T0 - timedelta(seconds=1)) is None
    assert champion_at(events, T0).to_version == "1"
    at_day_10 = champion_at(events, T0 + timedelta(days=10))  # v2 was rejected in between: v1 still
    assert (at_day_10.to_version, at_day_10.who) == ("1", "berlin_ops")
    assert champion_at(events, T0 + timedelta(days=14, hours=1)).who == "ops_lead"
    assert champion_at(events, T0 + timedelta(days=30)).kind == "rollback"


def test_ledger_and_registry_disagreeing_is_reported(book: Ledger) -> None:
    _history(book)
    events = book.events()
    assert champion_mismatch(events, "1") is None
    assert "last champion is v1 (event 4)" in champion_mismatch(events, "3")
    assert champion_mismatch([], "3") is None


def test_a_rollback_dag_run_that_recorded_its_event_is_done(book: Ledger) -> None:
    """Its retry or clear must not roll back again, also after later events; other runs are not done."""
    _history(book)
    events = book.events()
    assert ledger.last_move(events).to_version == "1" and ledger.last_move([]) is None
    recorded = ledger.rollback_of_run(events, "retrain_berlin", "manual__15")
    last = events[-1]
    assert recorded == rollback.Rollback(
        last.model_name, last.to_version, last.from_version, last.model_sha256, last.who, last.why, last.at
    )
    assert ledger.rollback_of_run([*events, events[1]], "retrain_berlin", "manual__15") == recorded
    assert ledger.rollback_of_run(events, "retrain_berlin", "manual__14") is None  # a promotion's run
    assert ledger.rollback_of_run(events, "rollback_berlin", "manual__15") is None
    assert ledger.rollback_of_run(events, None, None) is None  # airflow-ml rollback: each command is a new request


def test_parse_when() -> None:
    assert ledger.parse_when("2026-03-03") == datetime(2026, 3, 3, 23, 59, 59, tzinfo=timezone.utc)
    assert ledger.parse_when("2026-03-03T14:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="not an ISO date"):
        ledger.parse_when("last tuesday")


def test_on_s3_with_conditional_writes(mocked_s3: str) -> None:
    hook = DatasetHook()
    book = Ledger(hook, f"s3://{mocked_s3}/runs", "berlin")
    _history(book)
    assert hook.list_uris(f"s3://{mocked_s3}/runs/berlin/_ledger/")[0] == (
        f"s3://{mocked_s3}/runs/berlin/_ledger/0000000001.json"
    )
    with pytest.raises(FileExistsError):
        hook.write_new(f"s3://{mocked_s3}/runs/berlin/_ledger/0000000001.json", b"{}")
    assert verify(book.read()) is None
    assert [e.kind for e in book.events()] == ["promote", "reject", "promote", "rollback"]


def test_a_promotion_moves_from_the_champion_evaluation_saw_also_on_a_retry() -> None:
    registered, decision = records.registered(version="3", champion_version="2"), records.approval(version="3")
    moved = Promoted("eta_berlin", "3", previous_champion="2", approved_by="berlin_ops", model_sha256="m" * 64,
                     already_done=False)  # fmt: skip
    # A retry after the alias moved but before the ledger append: promote finds the move done.
    retried = dataclasses.replace(moved, previous_champion=None, already_done=True)
    for promoted in (moved, retried):
        move = ledger.decided(registered, decision, promoted, dag_id="retrain_berlin", dag_run_id="r1")
        assert (move.kind, move.from_version, move.to_version) == ("promote", "2", "3")
    rejected = dataclasses.replace(decision, answer=registry.REJECT_ANSWER)
    move = ledger.decided(registered, rejected, None, dag_id="retrain_berlin", dag_run_id="r1")
    assert (move.kind, move.from_version, move.to_version) == ("reject", "2", "2")
