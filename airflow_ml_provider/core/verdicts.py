"""What a guardrail run concluded: a verdict per (guardrail, slice), the run's report, and the one order in which
slices are listed everywhere (failure lists, report tables, the chart). guardrails.py computes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_ml_provider.core.display import visible

FIRST_RUN_NOTE = "first run: compared with the naive baseline, no champion yet"
# Reasons a slice row carries: why it failed, or why it could not be judged.
TOLERANCE, MIN_VALUE, MAX_VALUE, FEW_ROWS, UNDEFINED = "tolerance", "min_value", "max_value", "few_rows", "undefined"
_VERDICT_ORDER = {"fail": 0, "pass": 1, "too_small": 2}


def regression_share(relative_delta: float | None, higher_is_better: bool) -> float:
    """How much worse the candidate is, as a share of the reference (negative: better; 0 when unknown)."""
    if relative_delta is None:
        return 0.0
    return -relative_delta if higher_is_better else relative_delta


def slice_order(verdict: str, relative_delta: float | None, higher_is_better: bool) -> tuple[int, float]:
    """Sort key of a guardrail's slice: failures, then passes, then slices not judged; the worst regression first."""
    return _VERDICT_ORDER[verdict], -regression_share(relative_delta, higher_is_better)


@dataclass(frozen=True)
class SliceResult:
    """One guardrail on one slice. ``delta`` is candidate minus reference (champion, or baseline on a first run).

    ``allowed`` is the tolerated regression in metric units (None: no comparison rule), ``p_value`` and
    ``limit_p_value`` are Holm-adjusted p-values of the regression and floor/ceiling tests. ``why_not_judged`` says
    why a slice has no verdict other than too few rows (the metric is undefined on it, or has no interval); when
    the metric is undefined its values are None.
    """

    slice: str
    family: str
    rows: int
    candidate: float | None
    champion: float | None
    baseline: float | None
    delta: float | None
    relative_delta: float | None
    ci_low: float | None
    ci_high: float | None
    allowed: float | None
    p_value: float | None
    limit_p_value: float | None
    verdict: str
    reasons: tuple[str, ...]
    why_not_judged: str | None = None


@dataclass(frozen=True)
class GuardrailResult:
    metric: str
    scope: str
    method: str
    higher_is_better: bool
    max_relative_regression: float | None
    max_absolute_regression: float | None
    min_value: float | None
    max_value: float | None
    overrides: dict[str, dict[str, float | None]]
    slices: tuple[SliceResult, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """The guardrail verdicts of one run; ``to_dict()`` is what the report renderers and MLflow store."""

    city: str
    model: str
    task: str
    primary_metric: str
    comparison: str
    confidence: float
    min_slice_rows: int
    threshold: float | None
    tolerance_override: float | None
    rows: int
    tests: int
    overall: dict[str, dict[str, float | None] | None]
    guardrails: tuple[GuardrailResult, ...]
    undefined: dict[str, str]  # overall metrics that are undefined on the eval rows (their values are None): why

    @property
    def verdict(self) -> str:
        """``fail`` when any slice of any guardrail failed, else ``pass``."""
        return "fail" if self.failures() else "pass"

    def failures(self) -> list[tuple[GuardrailResult, SliceResult]]:
        """Failed (guardrail, slice) pairs, the largest relative regression first."""
        failed = [(g, s) for g in self.guardrails for s in g.slices if s.verdict == "fail"]
        return sorted(failed, key=lambda gs: slice_order("fail", gs[1].relative_delta, gs[0].higher_is_better))

    def counts(self) -> dict[str, int]:
        """Distinct slice ids: judged (passed or failed on some guardrail), failed on any, never judged (too small)."""
        every = {s.slice for g in self.guardrails for s in g.slices}
        judged = {s.slice for g in self.guardrails for s in g.slices if s.verdict != "too_small"}
        failed = {s.slice for g in self.guardrails for s in g.slices if s.verdict == "fail"}
        return {
            "slices": len(every),
            "judged": len(judged),
            "passed": len(judged - failed),
            "failed": len(failed),
            "too_small": len(every - judged),
            "tests": self.tests,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to re-render the report, JSON-serialisable (missing values are None)."""
        data = asdict(self)
        data["verdict"] = self.verdict
        data["note"] = FIRST_RUN_NOTE if self.comparison == "baseline" else None
        data["counts"] = self.counts()
        data["guardrails"] = [
            {**g, "slices": [{**s, "reasons": list(s["reasons"])} for s in g["slices"]]} for g in data["guardrails"]
        ]
        return data

    def summary(self) -> dict[str, Any]:
        """A compact dict for XCom (well under 2 KB): verdict, primary metric overall, counts, up to 10 failures."""
        primary = self.primary_metric
        counts = self.counts()
        return {
            "verdict": self.verdict,
            "comparison": self.comparison,
            "primary_metric": primary,
            "candidate": (self.overall["candidate"] or {}).get(primary),
            "champion": (self.overall["champion"] or {}).get(primary),
            "baseline": (self.overall["baseline"] or {}).get(primary),
            "slices_judged": counts["judged"],
            "slices_failed": counts["failed"],
            "slices_too_small": counts["too_small"],
            "failed": [
                {
                    "slice": visible(s.slice, 60),
                    "metric": g.metric,
                    "delta": _round(s.delta),
                    "relative_delta": _round(s.relative_delta),
                }
                for g, s in self.failures()[:10]
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")
