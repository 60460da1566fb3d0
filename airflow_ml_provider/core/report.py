"""The evaluation report for people: Markdown for Airflow's Required Actions screen and MLflow, and a PNG chart.

Both take ``EvaluationReport.to_dict()`` (as stored), so a report can be re-rendered later without the data. Slice
ids and every other value that comes from the data or a city's YAML go through core/display.py: shown as text, never
as markup; a metric that is undefined on the rows shows as "undefined (why)".
"""

from __future__ import annotations

import io
import math
from typing import Any

from airflow_ml_provider.core.display import code, markdown, visible
from airflow_ml_provider.core.verdicts import slice_order

_MAX_NAMED_FAILURES = 5
_MAX_CHART_SLICES = 40


def render_markdown(report: dict[str, Any], links: dict[str, str] | None = None) -> str:
    """GitHub-flavoured Markdown: the verdict line, overall metrics, one table per guardrail (failures first), links."""
    reference = _reference_name(report)
    counts = report["counts"]
    lines = [_verdict_line(report), ""]
    if report.get("note"):
        lines += [f"Note: {report['note']}.", ""]
    lines += [
        f"City {code(report['city'])}, model {code(report['model'])} ({report['task']}): the candidate was compared "
        f"with the {reference} on {report['rows']:,} eval rows. {counts['judged']} slices judged, {counts['failed']} "
        f"failed, {counts['too_small']} too small to judge (fewer than {report['min_slice_rows']:,} rows or not "
        f"measurable). A slice fails only when its regression beyond tolerance is significant at "
        f"{report['confidence']:.0%} confidence after correcting for all {counts['tests']} tests of this run, so noise "
        "alone rarely blocks a model.",
        "",
    ]
    if report.get("tolerance_override") is not None:
        lines += [
            f"The relative tolerance was set to {report['tolerance_override']:.1%} for this run when it was triggered "
            "(per-slice overrides still apply).",
            "",
        ]
    if report.get("threshold") is not None:
        source = (
            "set on the champion's scores at the configured false-positive rate"
            if report["comparison"] == "champion"
            else "no champion to set it from yet"
        )
        lines += [
            f"Accuracy, f1, precision and recall use the decision threshold {report['threshold']:.4g} for every model "
            f"({source}).",
            "",
        ]
    lines += ["## Overall metrics", "", *_overall_table(report), ""]
    for guardrail in report["guardrails"]:
        lines += [*_guardrail_section(report, guardrail), ""]
    if links:
        lines += ["## Links", ""]
        lines += [_link(label, url) for label, url in links.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def with_link(markdown: str, label: str, url: str) -> str:
    """The report with one more entry in its Links section (created when the report has none)."""
    entry = _link(label, url) + "\n"
    if "\n## Links\n" in markdown:
        return markdown.rstrip() + "\n" + entry
    return markdown.rstrip() + "\n\n## Links\n\n" + entry


def _link(label: str, url: str) -> str:
    """A list item linking ``url`` (made by the provider, not from data) under a literal ``label``."""
    return f"- [{markdown(label)}]({url})"


def _reference_name(report: dict[str, Any]) -> str:
    return "champion" if report["comparison"] == "champion" else "naive baseline"


def _order(guardrail: dict[str, Any], row: dict[str, Any]) -> tuple[int, float]:
    return slice_order(row["verdict"], row["relative_delta"], guardrail["higher_is_better"])


def _failures(report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    failed = [(g, s) for g in report["guardrails"] for s in g["slices"] if s["verdict"] == "fail"]
    return sorted(failed, key=lambda gs: _order(*gs))


def _verdict_line(report: dict[str, Any]) -> str:
    counts = report["counts"]
    reference = _reference_name(report)
    if report["verdict"] == "pass":
        if not report["guardrails"]:
            return "PASS: no guardrails are configured, nothing was judged"
        if counts["judged"] == 0:
            return (
                f"PASS: nothing could be judged ({_plural(counts['too_small'], 'slice')} too small or with an "
                "undefined metric)"
            )
        line = f"PASS: candidate is no worse than the {reference} on {_plural(counts['judged'], 'slice')}"
        if counts["too_small"]:
            line += f" ({counts['too_small']} too small to judge)"
        return line
    failures = _failures(report)
    only_tolerance = all(s["reasons"] == ["tolerance"] for _, s in failures)
    what = "regressed beyond tolerance" if only_tolerance else "failed a guardrail"
    named = [f"{markdown(s['slice'])} ({_failure_text(g, s)})" for g, s in failures[:_MAX_NAMED_FAILURES]]
    if len(failures) > _MAX_NAMED_FAILURES:
        named.append(f"and {len(failures) - _MAX_NAMED_FAILURES} more")
    return f"BLOCKED: {_plural(counts['failed'], 'slice')} {what}: {', '.join(named)}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _failure_text(guardrail: dict[str, Any], row: dict[str, Any]) -> str:
    metric = guardrail["metric"]
    parts = []
    if "tolerance" in row["reasons"]:
        change = _percent(row["relative_delta"]) if row["relative_delta"] is not None else _signed(row["delta"])
        parts.append(f"{metric} {change}")
    if "min_value" in row["reasons"]:
        parts.append(f"{metric} {_number(row['candidate'])} below the floor {_number(guardrail['min_value'])}")
    if "max_value" in row["reasons"]:
        parts.append(f"{metric} {_number(row['candidate'])} above the ceiling {_number(guardrail['max_value'])}")
    return "; ".join(parts)


def _number(value: float | None) -> str:
    """Four significant digits, without exponents (people read these)."""
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.4g}"
    return f"{value:.4f}" if "e" in text else text


def _signed(value: float | None, decimals: int | None = None) -> str:
    if value is None:
        return "n/a"
    if decimals is None:
        decimals = _decimals(abs(value))
    return f"{value:+,.{decimals}f}"


def _decimals(scale: float) -> int:
    """Decimals that show three significant digits of ``scale``; an interval's width sets them for its numbers."""
    if not scale > 0 or not math.isfinite(scale):
        return 2
    return min(6, max(0, 2 - math.floor(math.log10(scale))))


def _percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.0%}" if abs(value) >= 0.1 else f"{value:+.1%}"


def _undefined(why: str) -> str:
    """``why`` is the provider's own text (metrics.undefined_reason), made of counts, never of data values."""
    return f"undefined ({why})"


def _overall_table(report: dict[str, Any]) -> list[str]:
    overall = report["overall"]
    models = [name for name in ("candidate", "champion", "baseline") if overall.get(name) is not None]
    lines = [
        "| Metric | " + " | ".join(m.capitalize() for m in models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    undefined = report.get("undefined") or {}
    for metric in overall["candidate"]:
        name = f"**{metric}** (primary)" if metric == report["primary_metric"] else metric
        if metric in undefined:
            values = [_undefined(undefined[metric])] * len(models)
        else:
            values = [_number(overall[m][metric]) for m in models]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return lines


def _tolerance_text(report: dict[str, Any], guardrail: dict[str, Any]) -> str:
    reference = "champion's" if report["comparison"] == "champion" else "baseline's"
    relative, absolute = guardrail["max_relative_regression"], guardrail["max_absolute_regression"]
    judged = {row["slice"] for row in guardrail["slices"]}
    rules = []
    if relative is not None and absolute is not None:
        rules.append(f"tolerated regression: the larger of {relative:.1%} of the {reference} value and {absolute:g}")
    elif relative is not None:
        rules.append(f"tolerated regression: {relative:.1%} of the {reference} value")
    elif absolute is not None:
        rules.append(f"tolerated regression: {absolute:g}")
    for slice_id, tolerance in guardrail["overrides"].items():
        parts = []
        if tolerance["max_relative_regression"] is not None:
            parts.append(f"{tolerance['max_relative_regression']:.1%}")
        if tolerance["max_absolute_regression"] is not None:
            parts.append(f"{tolerance['max_absolute_regression']:g}")
        missing = "" if slice_id in judged else " (no such slice in this eval data; check the id)"
        rules.append(f"{markdown(slice_id)}: {' or '.join(parts) or 'no regression'}{missing}")
    if guardrail["min_value"] is not None:
        rules.append(f"floor {_number(guardrail['min_value'])}")
    if guardrail["max_value"] is not None:
        rules.append(f"ceiling {_number(guardrail['max_value'])}")
    return "; ".join(rules)


def _guardrail_section(report: dict[str, Any], guardrail: dict[str, Any]) -> list[str]:
    scope = "every slice" if guardrail["scope"] == "slices" else "all rows"
    direction = "higher is better" if guardrail["higher_is_better"] else "lower is better"
    confidence = f"{report['confidence']:.0%}"
    reference = "Champion" if report["comparison"] == "champion" else "Baseline"
    lines = [
        f"## Guardrail: {guardrail['metric']} on {scope}",
        "",
        f"{guardrail['metric']}: {direction}; {_tolerance_text(report, guardrail)}. Method: {guardrail['method']}. "
        f"Change is candidate minus {reference.lower()} with its {confidence} interval.",
        "",
        f"| Slice | Rows | {reference} | Candidate | Change ({confidence} interval) | Verdict |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in sorted(guardrail["slices"], key=lambda s: _order(guardrail, s)):
        reference_value, candidate = _number(_reference_value(report, row)), _number(row["candidate"])
        change = "n/a"
        undefined = _metric_undefined(row)
        if undefined:
            reference_value = candidate = change = _undefined(undefined)
        elif row["delta"] is not None:
            if row["ci_low"] is not None:
                decimals = _decimals(row["ci_high"] - row["ci_low"])
                change = f"{_signed(row['delta'], decimals)} ({_signed(row['ci_low'], decimals)} to "
                change += f"{_signed(row['ci_high'], decimals)})"
            else:
                change = _signed(row["delta"])
            if row["relative_delta"] is not None:
                change += f", {_percent(row['relative_delta'])}"
        lines.append(
            f"| {markdown(row['slice'])} | {row['rows']:,} | {reference_value} | {candidate} "
            f"| {change} | {_verdict_text(report, guardrail, row)} |"
        )
    return lines


def _metric_undefined(row: dict[str, Any]) -> str | None:
    """Why the metric has no value on this slice (its values are None), or None."""
    why = row.get("why_not_judged")
    return why if why and row["candidate"] is None else None


def _reference_value(report: dict[str, Any], row: dict[str, Any]) -> float | None:
    return row["champion"] if report["comparison"] == "champion" else row["baseline"]


def _verdict_text(report: dict[str, Any], guardrail: dict[str, Any], row: dict[str, Any]) -> str:
    if row["verdict"] == "pass":
        return "pass"
    if row["verdict"] == "too_small":
        if "few_rows" in row["reasons"]:
            return f"too small: needs {report['min_slice_rows']:,} rows"
        if row.get("why_not_judged"):
            return f"not judged: {row['why_not_judged']}"
        if guardrail["metric"] == "roc_auc":
            return "too small: needs 2 positive and 2 negative rows"
        if guardrail["metric"] == "r2":
            return "too small: the target is constant"
        return "too small: not measurable"
    reasons = []
    if "tolerance" in row["reasons"]:
        reasons.append(f"regressed by more than the allowed {_number(row['allowed'])}")
    if "min_value" in row["reasons"]:
        reasons.append(f"below the floor {_number(guardrail['min_value'])}")
    if "max_value" in row["reasons"]:
        reasons.append(f"above the ceiling {_number(guardrail['max_value'])}")
    return "FAIL: " + ", ".join(reasons)


def _primary_guardrail(report: dict[str, Any]) -> dict[str, Any] | None:
    guardrails = report["guardrails"]
    primary = [g for g in guardrails if g["metric"] == report["primary_metric"]]
    return (primary or guardrails or [None])[0]


def render_chart(report: dict[str, Any]) -> bytes:
    """PNG of the primary metric guardrail: each slice's regression (% of the reference, right is worse) with its
    interval and the tolerated regression, failures first. Uses matplotlib's Agg canvas without pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    guardrail = _primary_guardrail(report)
    rows = []
    if guardrail is not None:
        judged = [s for s in guardrail["slices"] if s["relative_delta"] is not None]
        rows = sorted(judged, key=lambda s: _order(guardrail, s))[:_MAX_CHART_SLICES]
    figure = Figure(figsize=(8, 1.5 + 0.28 * max(len(rows), 1)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if guardrail is None or not rows:
        axes.text(0.5, 0.5, "no guardrail slice to chart", ha="center", va="center")
        axes.set_axis_off()
    else:
        sign = -1.0 if guardrail["higher_is_better"] else 1.0
        colours = {"fail": "#c0392b", "pass": "#2c7fb8", "too_small": "#aaaaaa"}
        for y, row in enumerate(rows):
            scale = 100 * sign / abs(_reference_value(report, row))
            centre = row["delta"] * scale
            colour = colours[row["verdict"]]
            if row["ci_low"] is not None:
                low, high = sorted((row["ci_low"] * scale, row["ci_high"] * scale))
                axes.plot([low, high], [y, y], color=colour, linewidth=2)
            axes.plot([centre], [y], "o", color=colour)
            if row["allowed"] is not None:
                axes.plot([row["allowed"] * abs(scale)], [y], "|", color="black", markersize=14, markeredgewidth=2)
        axes.axvline(0, color="grey", linewidth=0.8)
        if guardrail["max_relative_regression"] is not None:
            axes.axvline(100 * guardrail["max_relative_regression"], color="black", linestyle="--", linewidth=1)
        axes.set_yticks(range(len(rows)), [visible(row["slice"], 40) for row in rows], fontsize=8, parse_math=False)
        axes.invert_yaxis()
        reference = "champion" if report["comparison"] == "champion" else "baseline"
        axes.set_xlabel(f"{guardrail['metric']} regression vs the {reference}, % of its value (right is worse)")
        axes.set_title(
            f"{visible(report['city'], 40)}: {report['verdict'].upper()}. {guardrail['metric']} per slice "
            f"(bars: {report['confidence']:.0%} intervals, black ticks: tolerated regression)",
            fontsize=10,
            parse_math=False,
        )
    if guardrail is not None and (note := _undefined_note(report, guardrail)):
        figure.text(0.01, 0.005, note, fontsize=7, parse_math=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _undefined_note(report: dict[str, Any], guardrail: dict[str, Any]) -> str | None:
    """The chart's footnote for slices it cannot place because the metric is undefined on them."""
    metric = guardrail["metric"]
    overall = (report.get("undefined") or {}).get(metric)
    if overall:
        return f"{metric} is undefined ({visible(overall)}): not charted"
    undefined = [s for s in guardrail["slices"] if _metric_undefined(s)]
    if not undefined:
        return None
    return (
        f"{metric} is undefined on {len(undefined)} slice(s), not charted, e.g. "
        f"{visible(undefined[0]['slice'], 40)}: {visible(_metric_undefined(undefined[0]))}"
    )


def schema_change_note(champion: dict[str, str] | None, candidate: dict[str, str]) -> str | None:
    """A report paragraph when the candidate's input columns or types differ from the champion's (serving breaks
    if callers are not told), or None when they match or there is no champion."""
    if champion is None or champion == candidate:
        return None
    changes = [f"`{c}` added ({candidate[c]})" for c in candidate if c not in champion]
    changes += [f"`{c}` removed" for c in champion if c not in candidate]
    changes += [
        f"`{c}` {champion[c]} -> {candidate[c]}" for c in candidate if c in champion and champion[c] != candidate[c]
    ]
    return (
        "**Schema change:** the candidate's input differs from the champion's: "
        + ", ".join(changes)
        + (". Callers of the serving endpoint must send the new input before this is promoted.")
    )
