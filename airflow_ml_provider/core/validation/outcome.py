"""What validation found, and its texts: the failed task's message, the XCom summary and the HTML report.

The outcome says in one place what is wrong (column, count, share, sample values) so a data scientist can act on it
without opening the task log, and carries the exact rows that were checked: the snapshot later steps train on.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.validation.values import count_text, jsonable, percent_of, window_text

if TYPE_CHECKING:
    import pandas as pd

    from airflow_ml_provider.core.windows import Windows


@dataclass(frozen=True)
class Failure:
    """One failed (or warned) check: a built-in check name or a GE expectation type, and where it failed."""

    check: str
    message: str
    column: str | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: list[Any] = field(default_factory=list)


class Findings:
    """Collects the outcome of each check as it runs."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []
        self.warnings: list[Failure] = []
        self.passed: list[str] = []

    def record(self, failure: Failure, warning: bool = False) -> None:
        (self.warnings if warning else self.failures).append(failure)

    def fail(self, check: str, message: str, column: str | None = None, **details: Any) -> None:
        self.record(_failure(check, message, column, **details))

    def rows(
        self,
        check: str,
        column: str | None,
        count: int,
        total: int,
        problem: str,
        samples: list[Any],
        *,
        what: str = "rows",
        warning: bool = False,
    ) -> None:
        """``count`` of ``total`` rows break the check: "<count> of <total> rows (<share>%) <problem>", with the
        count, share and sample values the HTML report shows."""
        message = f"{count_text(count, total, what)} {problem}"
        details = {"unexpected_count": count, "unexpected_percent": percent_of(count, total), "samples": samples}
        self.record(_failure(check, message, column, **details), warning)

    def ok(self, check: str, column: str | None = None) -> None:
        self.passed.append(f"{check} ({column})" if column else check)


def _failure(check: str, message: str, column: str | None = None, **details: Any) -> Failure:
    where = f"{check} on column {column!r}" if column else check
    return Failure(check=check, column=column, message=f"{where}: {message}", **details)


@dataclass
class ValidationOutcome:
    """What validate found, and the checked rows (``frame``) that become the run's snapshot when ``success``."""

    city: str
    windows: Windows
    success: bool
    train_rows: int
    eval_rows: int
    rows_outside_windows: int
    frame: pd.DataFrame
    failures: list[Failure]
    warnings: list[Failure]
    passed: list[str]  # one line per check that passed, for the HTML report
    ge_result: dict[str, Any]

    def message(self) -> str:
        """What failed, where, how much and examples: the text of the failed task and of the alert."""
        if self.success:
            head = (
                f"Data validation passed for {self.city}: {self.train_rows:,} train rows, "
                f"{self.eval_rows:,} eval rows, {len(self.passed)} checks passed"
            )
            return "\n".join([head, *(f"warning: {w.message}" for w in self.warnings)])
        count = len(self.failures)
        lines = [f"Data validation failed for {self.city} ({count} problem{'s' * (count != 1)}):"]
        lines += [f"  - {f.message}" for f in self.failures]
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}, not failing the run):")
            lines += [f"  - {w.message}" for w in self.warnings]
        lines.append(
            f"Rows checked: {self.train_rows:,} train + {self.eval_rows:,} eval ({window_text(self.windows)}). "
            f"Nothing was trained. Fix the source data, or the `validation` section of {self.city}.yaml "
            "if an expectation is wrong."
        )
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Small JSON for XCom (< 2 KB): counts and the names of failed checks, never rows."""
        return {
            "success": self.success,
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "rows_outside_windows": self.rows_outside_windows,
            "checks_passed": len(self.passed),
            "failures": len(self.failures),
            "warnings": len(self.warnings),
            "failed_checks": [_check_id(f) for f in self.failures[:8]],
            "warning_checks": [_check_id(w) for w in self.warnings[:8]],
        }

    def html(self) -> str:
        """A self-contained HTML report of every check, for people who do not read task logs."""
        status = "passed" if self.success else "FAILED"
        rows = [_html_row("failed", f) for f in self.failures]
        rows += [_html_row("warning", w) for w in self.warnings]
        rows += [
            f'<tr class="passed"><td>passed</td><td colspan="5">{html.escape(name)}</td></tr>' for name in self.passed
        ]
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data validation: {html.escape(self.city)}</title>
<style>
{_STYLE}</style></head><body>
<h1>Data validation {status}: {html.escape(self.city)}</h1>
<p>{self.train_rows:,} train rows and {self.eval_rows:,} eval rows ({html.escape(window_text(self.windows))});
{self.rows_outside_windows:,} rows outside the windows were not used.
{len(self.failures)} failed, {len(self.warnings)} warnings, {len(self.passed)} passed.</p>
<table><thead><tr><th>status</th><th>check</th><th>column</th><th>unexpected</th><th>samples</th><th>message</th></tr>
</thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


_STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 14px; }
th { background: #f0f0f0; }
tr.failed td:first-child { background: #f8d7da; font-weight: bold; }
tr.warning td:first-child { background: #fff3cd; }
tr.passed td:first-child { background: #d4edda; }
code { font-size: 13px; }
"""


def _check_id(failure: Failure) -> str:
    name = f"{failure.check}:{failure.column}" if failure.column else failure.check
    return name[:80]


def _html_row(status: str, failure: Failure) -> str:
    unexpected = ""
    if failure.unexpected_count is not None:
        unexpected = f"{failure.unexpected_count}"
        if failure.unexpected_percent is not None:
            unexpected += f" ({failure.unexpected_percent:.2f}%)"
    cells = [
        status,
        f"<code>{html.escape(failure.check)}</code>",
        html.escape(failure.column or ""),
        unexpected,
        html.escape(", ".join(repr(jsonable(v)) for v in failure.samples)),
        html.escape(failure.message),
    ]
    return f'<tr class="{status}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
