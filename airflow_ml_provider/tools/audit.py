"""``airflow-ml audit``: check each city's MLflow registry against what the retraining DAG promises.

The promises (docs/runbooks.md): only bits that were evaluated and approved by a listed approver, or restored by a
recorded rollback, ever hold ``champion``; the report the approver read and the model file MLflow serves are the
ones whose sha256 the version records; ``previous_champion`` is a version that held ``champion`` legitimately; a DAG
run keeps at most one current version per distinct model. Teams run it in CI or a cron: exit 0 when every promise
holds, 1 listing each violation as ``city: model vN: what is wrong``, 2 when a registry could not be read (an
outage is not a clean bill of health).

Each check is a function of one city's :class:`CityRegistry` yielding :class:`Violation`; :data:`CHECKS` lists
them in the order they are reported; the last one checks the promotion ledger's hash chain (``core/ledger.py``) and
that its last champion is the registry's. A new invariant is one more function appended to :data:`CHECKS`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from airflow_ml_provider.core import ledger, registry
from airflow_ml_provider.core.ledger import StoredEvent
from airflow_ml_provider.core.storage import sha256_hex
from airflow_ml_provider.hooks.ledger import city_ledger
from airflow_ml_provider.hooks.mlflow import MODEL_FILE, MlflowHook, VersionInfo, is_absent

if TYPE_CHECKING:
    from airflow_ml_provider.config import CityConfig

T = TypeVar("T")

REPORT_ARTIFACT = "evaluation/report.json"  # logged by evaluate to the version's run; its sha256 is REPORT_SHA_TAG


@dataclass(frozen=True)
class Violation:
    city: str
    model_name: str
    version: str | None  # None: about the model as a whole (e.g. an alias)
    problem: str

    def __str__(self) -> str:
        where = f"{self.model_name} v{self.version}" if self.version else self.model_name
        return f"{self.city}: {where}: {self.problem}"


@dataclass
class CityRegistry:
    """One city's registry as the checks see it: its config, every version (newest first) and their artifacts.

    ``reports(version)`` yields ``(run_id, report.json bytes)`` of the MLflow runs that evaluated the version's bits
    in its DAG run, its own run first (a rerun with the same bits reuses the version and logs its report to the new
    attempt's run); ``model_file_sha256(version)`` is the sha256 of the model file MLflow serves for it, None when
    missing. Any other failure (network, permission) raises, so an outage never reads as a violation or as clean.
    """

    config: CityConfig
    versions: list[VersionInfo]
    aliases: dict[str, str]  # alias -> version number (MLflow's version search does not return aliases)
    reports: Callable[[VersionInfo], Iterator[tuple[str, bytes]]]
    model_file_sha256: Callable[[VersionInfo], str | None]
    read_ledger: Callable[[], list[StoredEvent]] = list  # the city's promotion ledger (core/ledger.py)
    _by_number: dict[str, VersionInfo] = field(init=False)

    def __post_init__(self) -> None:
        self._by_number = {v.version: v for v in self.versions}

    @property
    def city(self) -> str:
        return self.config.city

    @property
    def model_name(self) -> str:
        return self.config.model_name

    def alias(self, name: str) -> VersionInfo | None:
        return self._by_number.get(self.aliases.get(name, ""))

    def has_alias(self, version: VersionInfo, name: str) -> bool:
        return self.aliases.get(name) == version.version

    def violation(self, version: VersionInfo | None, problem: str) -> Violation:
        return Violation(self.city, self.model_name, version.version if version else None, problem)

    def held_champion(self) -> list[VersionInfo]:
        """Every version that ever held ``champion``: promote and rollback stamp PROMOTED_AT_TAG on it."""
        return [v for v in self.versions if registry.PROMOTED_AT_TAG in v.tags or self.has_alias(v, registry.CHAMPION)]


Check = Callable[[CityRegistry], Iterable[Violation]]


# ----- checks ---------------------------------------------------------------------------------------------------------


def check_champions_were_approved(city: CityRegistry) -> Iterable[Violation]:
    """Every version that held ``champion`` was approved by a listed approver, or restored by a recorded rollback
    (of a rejected, blocked or superseded version only by a listed approver)."""
    approvers = set(city.config.approval.approvers)
    for version in city.held_champion():
        tags = version.tags
        decision = tags.get(registry.DECISION_TAG)
        decided_by = tags.get(registry.DECIDED_BY_TAG, "nobody")
        rolled_back_by = (
            tags.get(registry.PROMOTED_BY_TAG, "nobody") if tags.get(registry.ROLLBACK_REASON_TAG) else None
        )
        if decision == registry.APPROVED and decided_by not in approvers and rolled_back_by is None:
            yield city.violation(
                version,
                f"held champion, approved by {decided_by!r}, who is not in approval.approvers of {city.city}.yaml "
                f"({', '.join(sorted(approvers))})",
            )
        elif decision != registry.APPROVED and rolled_back_by is None:
            yield city.violation(
                version,
                f"held champion without an approval (decision: {decision or 'none'}) and without a recorded rollback",
            )
        elif decision in (registry.REJECTED, registry.BLOCKED, registry.SUPERSEDED) and rolled_back_by not in approvers:
            yield city.violation(
                version,
                f"was {decision}, then restored as champion by a rollback by {rolled_back_by!r}, who is not in "
                f"approval.approvers of {city.city}.yaml",
            )
        if city.has_alias(version, registry.CHAMPION) and registry.SUPERSEDED_BY_TAG in tags:
            replaced_by = tags[registry.SUPERSEDED_BY_TAG]
            yield city.violation(version, f"is champion but its DAG run replaced it with v{replaced_by} (superseded)")


def check_report_hashes(city: CityRegistry) -> Iterable[Violation]:
    """The report of every version that held ``champion`` is the one its approver read (sha256 in its tag)."""
    for version in city.held_champion():
        expected = version.tags.get(registry.REPORT_SHA_TAG)
        if not expected:
            yield city.violation(version, f"held champion but has no {registry.REPORT_SHA_TAG} tag")
            continue
        found = []
        for run_id, report in city.reports(version):
            digest = sha256_hex(report)
            found.append(f"{digest[:12]} in run {run_id}")
            if digest == expected:
                break
        else:
            where = "; ".join(found) or f"none in run {version.run_id}"
            yield city.violation(
                version,
                f"no {REPORT_ARTIFACT} has the sha256 {expected[:12]} the approver read ({registry.REPORT_SHA_TAG}): "
                f"{where}",
            )


def check_model_hashes(city: CityRegistry) -> Iterable[Violation]:
    """The model file MLflow serves for every version that held ``champion`` is the one recorded at registration,
    which holds the bits ``evaluate`` scored."""
    for version in city.held_champion():
        evaluated = version.tags.get(registry.MODEL_SHA_TAG)
        expected = version.tags.get(registry.MODEL_ARTIFACT_SHA_TAG)
        if not evaluated or not expected:
            missing = [
                t
                for t, v in ((registry.MODEL_SHA_TAG, evaluated), (registry.MODEL_ARTIFACT_SHA_TAG, expected))
                if not v
            ]
            yield city.violation(version, f"held champion but has no {' or '.join(missing)} tag: its bits are unknown")
            continue
        served = city.model_file_sha256(version)
        if served is None:
            yield city.violation(version, f"held champion but MLflow has no {MODEL_FILE} for it")
        elif served != expected:
            yield city.violation(
                version,
                f"{MODEL_FILE} has sha256 {served[:12]}, not the {expected[:12]} registered for the evaluated "
                f"model {evaluated[:12]} ({registry.MODEL_ARTIFACT_SHA_TAG}): these are not the approved bits",
            )


def check_previous_champion(city: CityRegistry) -> Iterable[Violation]:
    """``previous_champion`` (what rollback restores) held ``champion`` before and is not the champion."""
    previous, champion = city.alias(registry.PREVIOUS_CHAMPION), city.alias(registry.CHAMPION)
    if previous is None:
        return
    if champion is None:
        yield city.violation(previous, "is previous_champion but the model has no champion")
    elif champion.version == previous.version:
        yield city.violation(previous, "is both champion and previous_champion")
    if registry.PROMOTED_AT_TAG not in previous.tags:
        yield city.violation(previous, f"is previous_champion but never held champion (no {registry.PROMOTED_AT_TAG})")


def check_one_version_per_model_per_run(city: CityRegistry) -> Iterable[Violation]:
    """A DAG run never holds two current (not superseded) versions of the same bits."""
    seen: dict[tuple[str, str], VersionInfo] = {}
    for version in reversed(city.versions):  # oldest first
        dag_run, bits = version.tags.get(registry.DAG_RUN_TAG), version.tags.get(registry.MODEL_SHA_TAG)
        if not dag_run or not bits or registry.SUPERSEDED_BY_TAG in version.tags:
            continue
        first = seen.setdefault((dag_run, bits), version)
        if first is not version:
            yield city.violation(
                version,
                f"holds the same model (sha256 {bits[:12]}) as v{first.version} of DAG run {dag_run}: "
                "a retry or rerun registered it twice",
            )


def check_challenger(city: CityRegistry) -> Iterable[Violation]:
    """``challenger`` is a candidate still waiting for its decision."""
    challenger = city.alias(registry.CHALLENGER)
    if challenger is None:
        return
    decision = challenger.tags.get(registry.DECISION_TAG)
    if decision in (registry.REJECTED, registry.BLOCKED, registry.SUPERSEDED):
        yield city.violation(challenger, f"is challenger but was {decision}")
    elif registry.SUPERSEDED_BY_TAG in challenger.tags:
        yield city.violation(
            challenger, f"is challenger but was superseded by v{challenger.tags[registry.SUPERSEDED_BY_TAG]}"
        )


def check_promotion_ledger(city: CityRegistry) -> Iterable[Violation]:
    """The ledger's hash chain holds (no event changed, removed or reordered) and its last champion is the
    registry's."""
    champion = city.aliases.get(registry.CHAMPION)
    for problem in ledger.chain_problems(city.read_ledger(), champion):
        yield city.violation(None, problem)


CHECKS: list[Check] = [
    check_champions_were_approved,
    check_report_hashes,
    check_model_hashes,
    check_previous_champion,
    check_one_version_per_model_per_run,
    check_challenger,
    check_promotion_ledger,
]


# ----- running --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CityAudit:
    city: str
    model_name: str
    versions: int
    champion: str | None
    violations: list[Violation]

    def summary(self) -> str:
        champion = f"champion v{self.champion}" if self.champion else "no champion"
        verdict = "OK" if not self.violations else f"{len(self.violations)} violation(s)"
        return f"{self.city}: {self.model_name}: {self.versions} version(s), {champion}: {verdict}"


def audit_city(city: CityRegistry, checks: Sequence[Check] = CHECKS) -> CityAudit:
    violations = [violation for check in checks for violation in check(city)]
    champion = city.alias(registry.CHAMPION)
    return CityAudit(city.city, city.model_name, len(city.versions), champion.version if champion else None, violations)


def read_city_registry(hook: MlflowHook, config: CityConfig) -> CityRegistry:
    """The city's versions and artifact readers, through MlflowHook (the package's one way to MLflow)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in CI logs
    aliases = (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS_CHAMPION)
    held = {alias: hook.version_by_alias(config.model_name, alias) for alias in aliases}
    return CityRegistry(
        config=config,
        versions=hook.versions(config.model_name),
        aliases={alias: version.version for alias, version in held.items() if version is not None},
        reports=lambda version: _reports(hook, version),
        model_file_sha256=lambda version: _unless_absent(lambda: hook.artifact_sha256(version.name, version.version)),
        read_ledger=lambda: city_ledger(config).read(),
    )


def _reports(hook: MlflowHook, version: VersionInfo) -> Iterator[tuple[str, bytes]]:
    """report.json of the version's run, then of the other runs of its DAG run that trained the same bits."""
    if not version.run_id:
        return
    runs = [version.run_id]
    dag_run, bits = version.tags.get(registry.DAG_RUN_TAG), version.tags.get(registry.MODEL_SHA_TAG)
    for run_id in runs:
        report = _download(lambda dst, run_id=run_id: hook.client.download_artifacts(run_id, REPORT_ARTIFACT, dst))
        if report is not None:
            yield run_id, report
        if run_id == version.run_id and dag_run and bits:  # only needed when the first one does not match
            experiment_id = hook.client.get_run(version.run_id).info.experiment_id
            same_bits = f"tags.`{registry.DAG_RUN_TAG}` = '{dag_run}' and tags.`{registry.MODEL_SHA_TAG}` = '{bits}'"
            siblings = hook.client.search_runs([experiment_id], filter_string=same_bits)
            runs.extend(run.info.run_id for run in siblings if run.info.run_id != version.run_id)


def _download(fetch: Callable[[str], str]) -> bytes | None:
    """The downloaded file's bytes; None only when MLflow says it does not exist."""
    with tempfile.TemporaryDirectory() as dst:
        return _unless_absent(lambda: Path(fetch(dst)).read_bytes())


def _unless_absent(read: Callable[[], T]) -> T | None:
    """What ``read`` returns; None only when MLflow says it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return read()
    except MlflowException as exc:
        if is_absent(exc):
            return None
        raise
