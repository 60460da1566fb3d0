"""`airflow-ml run`'s exit codes: one per way a run ends, listed in --help and in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_ml_provider.core.registry import APPROVE, REJECT
from airflow_ml_provider.tools.cli import main
from airflow_ml_provider.tools.run import EXIT_CODES, _exit_code
from airflow_ml_provider.tools.runner import Answer, Outcome

PROJECT = Path(__file__).resolve().parents[2]
DONE = {"validate_data": "success", "train": "success", "evaluate": "success", "register": "success"}


def outcome(states: dict[str, str], verdict: str = "pass", decision: str = "pending", champion: str = "none", **kw):
    fields = {"candidate": "v1", "why": "", "answered": "", "waiting": False, **kw}
    return Outcome(None, states, verdict=verdict, decision=decision, champion=champion, **fields)


@pytest.mark.parametrize(
    ("result", "answer", "code"),
    [
        (
            outcome({**DONE, "approve": "success", "promote": "success"}, decision="approved by a", champion="v1"),
            APPROVE,
            0,
        ),
        (outcome({**DONE, "approve": "awaiting_input"}, waiting=True, answered="waiting for an answer"), None, 0),
        (outcome({"validate_data": "failed"}, candidate="-", verdict="-", decision="validation failed"), None, 3),
        (outcome({**DONE, "approve": "skipped"}, verdict="fail", decision="blocked"), APPROVE, 4),
        (outcome({**DONE, "approve": "awaiting_input"}, verdict="fail", waiting=True, answered="waiting"), None, 4),
        (outcome({**DONE, "approve": "failed"}, decision="rejected by a"), REJECT, 5),
        (outcome({**DONE, "approve": "awaiting_input"}, waiting=True, answered="Approve as 'b' refused"), APPROVE, 1),
        (outcome({**DONE, "train": "failed"}, candidate="-", verdict="-", decision="run failed"), APPROVE, 1),
    ],
)
def test_each_ending_has_its_code(result: Outcome, answer: str | None, code: int) -> None:
    assert _exit_code(result, None if answer is None else Answer("a", answer, "")) == code


def test_codes_are_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    readme = (PROJECT / "README.md").read_text()
    for code in EXIT_CODES:
        assert re.search(rf"^  {code}  ", help_text, re.M)
        assert re.search(rf"^\| {code} \|", readme, re.M)
