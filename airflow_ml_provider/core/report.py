"""The evaluation report for people: Markdown for Airflow's Required Actions screen and MLflow, and a PNG chart.

Both take ``EvaluationReport.to_dict()`` (as stored), so a report can be re-rendered later without the data.
"""

from __future__ import annotations

import io
import math
from typing import Any

_VERDICT_ORDER = {"fail": 0, "pass": 1, "too_small": 2}
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
        f"City `{report['city']}`, model `{report['model']}` ({report['task']}): the candidate was compared with the "
        f"{reference} on {report['rows']:,} eval rows. {counts['judged']} slices judged, {counts['failed']} failed, "
        f"{counts['too_small']} too small to judge (fewer than {report['min_slice_rows']:,} rows or not measurable). "
        f"A slice fails only when its regression beyond tolerance is significant at {report['confidence']:.0%} "
        f"confidence after correcting for all {counts['tests']} tests of this run, so noise alone rarely blocks a "
        "model.",
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
        lines += [f"- [{_cell(label)}]({url})" for label, url in links.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def with_link(markdown: str, label: str, url: str) -> str:
    """The report with one more entry in its Links section (created when the report has none)."""
    entry = f"- [{_cell(label)}]({url})\n"
    if "\n## Links\n" in markdown:
        return markdown.rstrip() + "\n" + entry
    return markdown.rstrip() + "\n\n## Links\n\n" + entry


def _reference_name(report: dict[str, Any]) -> str:
    return "champion" if report["comparison"] == "champion" else "naive baseline"


def _failures(report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    failed = [(g, s) for g in report["guardrails"] for s in g["slices"] if s["verdict"] == "fail"]
    return sorted(failed, key=lambda gs: -_regression_share(gs[0], gs[1]))


def _regression_share(guardrail: dict[str, Any], row: dict[str, Any]) -> float:
    relative = row["relative_delta"]
    if relative is None:
        return 0.0
    return -relative if guardrail["higher_is_better"] else relative


def _verdict_line(report: dict[str, Any]) -> str:
    counts = report["counts"]
    reference = _reference_name(report)
    if report["verdict"] == "pass":
        if not report["guardrails"]:
            return "PASS: no guardrails are configured, nothing was judged"
        if counts["judged"] == 0:
            return f"PASS: no slice had enough rows to judge ({counts['too_small']} too small)"
        line = f"PASS: candidate is no worse than the {reference} on {_plural(counts['judged'], 'slice')}"
        if counts["too_small"]:
            line += f" ({counts['too_small']} too small to judge)"
        return line
    failures = _failures(report)
    only_tolerance = all(s["reasons"] == ["tolerance"] for _, s in failures)
    what = "regressed beyond tolerance" if only_tolerance else "failed a guardrail"
    named = [f"{s['slice']} ({_failure_text(g, s)})" for g, s in failures[:_MAX_NAMED_FAILURES]]
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _overall_table(report: dict[str, Any]) -> list[str]:
    overall = report["overall"]
    models = [name for name in ("candidate", "champion", "baseline") if overall.get(name) is not None]
    lines = [
        "| Metric | " + " | ".join(m.capitalize() for m in models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for metric in overall["candidate"]:
        name = f"**{metric}** (primary)" if metric == report["primary_metric"] else metric
        lines.append(f"| {name} | " + " | ".join(_number(overall[m][metric]) for m in models) + " |")
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
        rules.append(f"{_cell(slice_id)}: {' or '.join(parts) or 'no regression'}{missing}")
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
    rows = sorted(
        guardrail["slices"],
        key=lambda s: (_VERDICT_ORDER[s["verdict"]], -_regression_share(guardrail, s) if s["verdict"] == "fail" else 0),
    )
    for row in rows:
        reference_value = _reference_value(report, row)
        change = "n/a"
        if row["delta"] is not None:
            if row["ci_low"] is not None:
                decimals = _decimals(row["ci_high"] - row["ci_low"])
                change = f"{_signed(row['delta'], decimals)} ({_signed(row['ci_low'], decimals)} to "
                change += f"{_signed(row['ci_high'], decimals)})"
            else:
                change = _signed(row["delta"])
            if row["relative_delta"] is not None:
                change += f", {_percent(row['relative_delta'])}"
        lines.append(
            f"| {_cell(row['slice'])} | {row['rows']:,} | {_number(reference_value)} | {_number(row['candidate'])} "
            f"| {change} | {_verdict_text(report, guardrail, row)} |"
        )
    return lines


def _reference_value(report: dict[str, Any], row: dict[str, Any]) -> float | None:
    return row["champion"] if report["comparison"] == "champion" else row["baseline"]


def _verdict_text(report: dict[str, Any], guardrail: dict[str, Any], row: dict[str, Any]) -> str:
    if row["verdict"] == "pass":
        return "pass"
    if row["verdict"] == "too_small":
        if "few_rows" in row["reasons"]:
            return f"too small: needs {report['min_slice_rows']:,} rows"
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
        rows = sorted(
            judged,
            key=lambda s: (_VERDICT_ORDER[s["verdict"]], -_regression_share(guardrail, s)),
        )[:_MAX_CHART_SLICES]
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
        axes.set_yticks(range(len(rows)), [row["slice"] for row in rows], fontsize=8)
        axes.invert_yaxis()
        reference = "champion" if report["comparison"] == "champion" else "baseline"
        axes.set_xlabel(f"{guardrail['metric']} regression vs the {reference}, % of its value (right is worse)")
        axes.set_title(
            f"{report['city']}: {report['verdict'].upper()}. {guardrail['metric']} per slice "
            f"(bars: {report['confidence']:.0%} intervals, black ticks: tolerated regression)",
            fontsize=10,
        )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
