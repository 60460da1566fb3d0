"""The promotion ledger: every move of a city's ``champion`` (and every rejection) as an append-only, hash-chained
event, because MLflow aliases keep no history and version tags keep only the last decision.

One object per event under ``<storage.base_uri>/<city>/_ledger/``, named by its sequence number
(``0000000001.json``, ...), so appending never rewrites anything. Each event carries the sha256 of the previous
event's stored bytes: changing, removing or reordering an event breaks the chain at that event. An event is created
only if its name is still free (exclusive create); two writers racing for the same sequence number cannot both win,
and the loser re-reads the chain and appends after the winner instead of forking it.

Airflow- and MLflow-free: the store is anything with ``list_uris``, ``read_bytes`` and ``write_new`` (``DatasetHook``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_ml_provider.core import registry, rollback
from airflow_ml_provider.core.handoff import Decision, Promoted, Registered
from airflow_ml_provider.core.storage import sha256_hex

PROMOTE = "promote"
REJECT = "reject"
ROLLBACK = "rollback"
TIMEOUT = "timeout"
KINDS = (PROMOTE, REJECT, ROLLBACK, TIMEOUT)

GENESIS = "0" * 64  # the "previous event" of the first one
FOLDER = "_ledger"
APPEND_ATTEMPTS = 10


class LedgerError(RuntimeError):
    """The ledger cannot be read or appended to; the message says which event and what to do."""


class LedgerStore(Protocol):
    def list_uris(self, prefix_uri: str) -> list[str]: ...
    def read_bytes(self, uri: str) -> bytes: ...
    def write_new(self, uri: str, data: bytes) -> None:
        """Create the object; raise ``FileExistsError`` when it exists already (never replace it)."""


@dataclass(frozen=True, kw_only=True)
class Move:
    """One decision about a city's model, as its writer tells it. ``from_version`` -> ``to_version`` is the champion
    before and after (equal for a rejection or a timeout); ``version`` is the version decided on."""

    kind: str
    model_name: str
    version: str
    from_version: str | None
    to_version: str | None
    who: str
    why: str
    report_sha256: str | None = None
    model_sha256: str | None = None
    dag_id: str | None = None
    dag_run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LedgerEvent(Move):
    """A move as the ledger stores it: numbered, stamped, in its city's chain."""

    sequence: int
    city: str
    at: str
    previous_sha256: str

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8; the bytes that are stored and hashed."""
        return canonical_json(asdict(self))

    @property
    def name(self) -> str:
        return f"{self.sequence:010d}.json"

    @property
    def at_datetime(self) -> datetime:
        return _parse_time(self.at)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> LedgerEvent:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerError(f"{where}: not a JSON ledger event ({exc})") from None
        expected = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) != expected:
            found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise LedgerError(f"{where}: not a ledger event (fields {found}, expected {sorted(expected)})")
        if raw["kind"] not in KINDS:
            raise LedgerError(f"{where}: unknown event kind {raw['kind']!r}; one of {list(KINDS)}")
        return cls(**raw)


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def ledger_uri(base_uri: str, city: str) -> str:
    """The folder (local) or prefix (S3) holding a city's events, beside its runs under ``storage.base_uri``."""
    return f"{base_uri.rstrip('/')}/{city}/{FOLDER}/"


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back: its object URI and the exact bytes, which the next event's hash covers."""

    uri: str
    data: bytes
    event: LedgerEvent | None  # None when the bytes do not parse (verification names it)
    problem: str | None = None


@dataclass(frozen=True)
class ChainProblem:
    """The first event at which the chain does not hold."""

    uri: str
    sequence: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.uri}: {self.message}"


def verify(stored: Sequence[StoredEvent]) -> ChainProblem | None:
    """The first broken event (by name order), or None when every event parses, the sequence numbers run 1, 2, ...
    without gaps and each event's ``previous_sha256`` is the sha256 of the event before it.

    An event whose bytes were changed is named by the link that no longer holds: the event after it recorded
    another hash. The last event has no successor; compare it with the registry (``champion_mismatch``)."""
    previous_sha = GENESIS
    for position, item in enumerate(stored, start=1):
        if item.event is None:
            return ChainProblem(item.uri, position, item.problem or "unreadable event")
        event = item.event
        if event.sequence != position:
            what = "missing (deleted?)" if event.sequence > position else "repeated"
            return ChainProblem(item.uri, event.sequence, f"event {position} is {what}: found {event.sequence} here")
        if not item.uri.endswith("/" + event.name):
            return ChainProblem(item.uri, event.sequence, f"says it is event {event.sequence} ({event.name})")
        if event.previous_sha256 != previous_sha:
            before = stored[position - 2].uri if position > 1 else "(start)"
            return ChainProblem(
                before,
                position - 1,
                f"changed after it was written: its sha256 is {previous_sha}, but event {position} "
                f"({item.uri}) recorded {event.previous_sha256}",
            )
        previous_sha = sha256_hex(item.data)
    return None


def champion_at(events: Sequence[LedgerEvent], when: datetime) -> LedgerEvent | None:
    """The event that put the champion of ``when`` in place (a promotion or rollback at or before it)."""
    found = None
    for event in events:
        if event.at_datetime > when:
            break
        if event.kind in (PROMOTE, ROLLBACK):
            found = event
    return found


class Ledger:
    """A city's chain of events in a store (``DatasetHook``): read it, verify it, append to it."""

    def __init__(self, store: LedgerStore, base_uri: str, city: str) -> None:
        self.store = store
        self.city = city
        self.uri = ledger_uri(base_uri, city)

    def read(self) -> list[StoredEvent]:
        """Every event object in name order, parsed where possible (verification reports the others)."""
        stored = []
        for uri in sorted(u for u in self.store.list_uris(self.uri) if u.endswith(".json")):
            data = self.store.read_bytes(uri)
            try:
                stored.append(StoredEvent(uri, data, LedgerEvent.from_bytes(data, uri)))
            except LedgerError as exc:
                stored.append(StoredEvent(uri, data, None, str(exc)))
        return stored

    def events(self) -> list[LedgerEvent]:
        return [item.event for item in self.read() if item.event is not None]

    def append(self, move: Move, *, at: datetime | None = None) -> LedgerEvent:
        """Append one event after the current last one. Refuses to extend a broken chain (it would hide the break);
        when another writer takes the sequence number first, re-reads and appends after it."""
        if move.kind not in KINDS:
            raise ValueError(f"unknown ledger event kind {move.kind!r}; one of {list(KINDS)}")
        when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
        told = {f.name: getattr(move, f.name) for f in fields(Move)}
        told.update(version=str(move.version), from_version=_str(move.from_version), to_version=_str(move.to_version))
        for _ in range(APPEND_ATTEMPTS):
            stored = self.read()
            problem = verify(stored)
            if problem is not None:
                raise LedgerError(
                    f"the promotion ledger of {self.city} is broken, nothing appended: {problem}. "
                    "Investigate (airflow-ml history --verify) before moving the champion's history on"
                )
            last = stored[-1] if stored else None
            event = LedgerEvent(
                **told,
                sequence=(last.event.sequence + 1) if last and last.event else 1,
                city=self.city,
                at=when,
                previous_sha256=sha256_hex(last.data) if last else GENESIS,
            )
            try:
                self.store.write_new(self.uri + event.name, event.to_bytes())
            except FileExistsError:
                continue  # another writer appended event N first: chain after it
            return event
        raise LedgerError(
            f"{self.uri}: could not append after {APPEND_ATTEMPTS} attempts; other writers keep taking the next "
            "sequence number"
        )


def last_move(events: Sequence[LedgerEvent]) -> LedgerEvent | None:
    """The last promotion or rollback: its ``to_version`` is the ledger's champion. None before the first one."""
    moves = [e for e in events if e.kind in (PROMOTE, ROLLBACK)]
    return moves[-1] if moves else None


def rollback_of_run(
    events: Sequence[LedgerEvent], dag_id: str | None, dag_run_id: str | None
) -> rollback.Rollback | None:
    """The rollback this DAG run recorded, if any, as it was recorded: a DAG run rolls back once, and a retry or a
    clear of it must not roll back again (to ``previous_champion``, that would swap back), whatever happened since."""
    if dag_run_id is None:
        return None
    mine = [e for e in events if (e.kind, e.dag_id, e.dag_run_id) == (ROLLBACK, dag_id, dag_run_id)]
    if not mine or mine[-1].to_version is None:
        return None
    return rollback.Rollback(**_common_fields(mine[-1], rollback.Rollback))


def champion_mismatch(events: Sequence[LedgerEvent], champion_version: str | None) -> str | None:
    """Why the ledger's last champion differs from the registry's ``champion`` alias, or None when they agree
    (an alias moved outside the provider, or the last event was removed)."""
    move = last_move(events)
    if move is None:
        return None  # nothing recorded yet: a champion from before the ledger
    if move.to_version != champion_version:
        return (
            f"the ledger's last champion is v{move.to_version} (event {move.sequence}) but the registry's champion "
            f"alias points at {'v' + champion_version if champion_version else 'nothing'}"
        )
    return None


def chain_problems(stored: Sequence[StoredEvent], champion_version: str | None) -> list[str]:
    """What is wrong with a ledger: its first broken event, and a registry champion it did not record. Empty when
    the chain holds and agrees with the registry."""
    problems = []
    broken = verify(stored)
    if broken is not None:
        problems.append(f"promotion ledger broken at {broken}")
    mismatch = champion_mismatch([item.event for item in stored if item.event is not None], champion_version)
    if mismatch:
        problems.append(mismatch)
    return problems


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_when(text: str) -> datetime:
    """A user's ``--at``: an ISO date or timestamp; naive means UTC; a bare date means the end of that day."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--at {text!r}: not an ISO date or timestamp (e.g. 2026-03-03 or 2026-03-03T14:00Z)"
        ) from None
    if len(text) == 10:  # a date: who was champion on that day, at its end
        parsed = parsed.replace(hour=23, minute=59, second=59)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def decided(
    registered: Registered, decision: Decision, promoted: Promoted | None, *, dag_id: str, dag_run_id: str
) -> Move:
    """What an approval led to: ``promote`` once promote moved champion to the version (or found it there), else
    ``reject`` or ``timeout``, which leave champion where evaluation saw it. Champion moves only from the version
    evaluation saw (compare-and-set), so that is the ``from_version`` of a promotion, also when a retried promote
    found the move done and its result names no previous champion."""
    if promoted is not None:
        kind, before, after = PROMOTE, registered.champion_version, registered.version
    else:
        kind = TIMEOUT if decision.decided_by == registry.TIMEOUT_DECIDER else REJECT
        before = after = registered.champion_version
    return Move(
        kind=kind,
        model_name=registered.model_name,
        version=registered.version,
        from_version=before,
        to_version=after,
        who=decision.decided_by,
        why=decision.reason,
        dag_id=dag_id,
        dag_run_id=dag_run_id,
        report_sha256=registered.report_sha256,
        model_sha256=registered.model_sha256,
    )


def rolled_back(plan: rollback.Rollback, *, dag_id: str | None, dag_run_id: str | None) -> Move:
    """A rollback's event: who and why as the restored version records them, so a finished interrupted rollback is
    its first request's; where (DAG run) is the run that finished it."""
    return Move(
        kind=ROLLBACK, version=plan.to_version, dag_id=dag_id, dag_run_id=dag_run_id, **_common_fields(plan, Move)
    )


def _common_fields(source: object, kind: type) -> dict[str, Any]:
    """``source``'s values of the dataclass fields ``kind`` shares with it: a rollback plan and its event say the
    same model, versions, bits, who and why under the same names."""
    shared = {f.name for f in fields(kind)} & {f.name for f in fields(source)}  # type: ignore[arg-type]
    return {name: getattr(source, name) for name in shared}


def _str(version: str | None) -> str | None:
    return None if version is None else str(version)
