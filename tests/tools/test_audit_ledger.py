"""``airflow-ml audit``'s promotion-ledger check: a tampered event is a violation naming it, and a registry champion
the ledger never recorded is one too."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_ml_provider.config import load_city_config
from airflow_ml_provider.core import ledger
from airflow_ml_provider.core.ledger import Ledger, Move
from airflow_ml_provider.hooks.dataset import DatasetHook
from airflow_ml_provider.tools.audit import CityRegistry, check_promotion_ledger


def _city(book: Ledger, champion: str | None) -> CityRegistry:
    return CityRegistry(
        config=load_city_config("berlin"),
        versions=[],
        aliases={"champion": champion} if champion else {},
        reports=lambda version: iter(()),
        model_file_sha256=lambda version: None,
        read_ledger=book.read,
    )


def test_ledger_check(tmp_path: Path) -> None:
    book = Ledger(DatasetHook(), str(tmp_path), "berlin")
    assert list(check_promotion_ledger(_city(book, "3"))) == []  # nothing recorded yet: nothing to compare
    for version, before in (("1", None), ("2", "1")):
        book.append(
            Move(
                kind="promote", model_name="eta_berlin", version=version, from_version=before, to_version=version,
                who="berlin_ops", why="weekly",
            )
        )  # fmt: skip
    assert list(check_promotion_ledger(_city(book, "2"))) == []

    (moved,) = check_promotion_ledger(_city(book, "3"))
    assert str(moved) == (
        "berlin: eta_berlin: the ledger's last champion is v2 (event 2) but the registry's champion alias points at v3"
    )

    first = book.read()[0]
    event = json.loads(first.data)
    event["why"] = "rewritten"
    Path(first.uri).write_bytes(ledger.canonical_json(event))
    (broken,) = check_promotion_ledger(_city(book, "2"))
    assert str(broken).startswith(f"berlin: eta_berlin: promotion ledger broken at {first.uri}: changed after")
