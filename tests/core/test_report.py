import json
import re

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.core.guardrails import evaluate
from airflow_ml_provider.core.report import render_chart, render_markdown, with_link

LINKS = {
    "MLflow run": "http://mlflow/#/runs/abc",
    "Model version": "http://mlflow/models/eta/3",
    "Airflow run": "http://af/run",
}


@pytest.fixture
def blocked(make_config, rides, regression_predictions):
    """A stored (JSON round-tripped) report: d03 is wrecked, d19 is too small, the rest is as good as the champion."""
    frame = pd.concat([rides(n_districts=19, rows_per_district=400), rides(n_districts=1, rows_per_district=120)])
    frame["district"] = [*frame["district"].iloc[:-120], *["d|19"] * 120]
    scale = np.where(frame["district"] == "d03", 1.6, 1.0)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0), candidate_scale=scale)
    config = make_config(
        guardrails=[{"metric": "mae", "max_relative_regression": 0.02}, {"metric": "r2", "min_value": 0.1}]
    )
    report = evaluate(config, data, candidate, champion, np.full(len(frame), 750.0))
    return json.loads(json.dumps(report.to_dict()))


@pytest.fixture
def passing(make_config, rides, regression_predictions):
    data, candidate, champion = regression_predictions(rides(n_districts=5), np.random.default_rng(1))
    return evaluate(make_config(), data, candidate, champion, np.full(len(data), 750.0)).to_dict()


def test_blocked_report_starts_with_the_verdict_naming_the_slice(blocked):
    first = render_markdown(blocked).splitlines()[0]
    assert first.startswith("BLOCKED: ")
    assert "district=d03 (mae +" in first


def test_passing_report_says_how_many_slices_were_judged(passing):
    judged = passing["counts"]["judged"]
    assert (
        render_markdown(passing).splitlines()[0] == f"PASS: candidate is no worse than the champion on {judged} slices"
    )


def test_overall_table_lists_candidate_champion_and_baseline(blocked):
    text = render_markdown(blocked)
    assert "| Metric | Candidate | Champion | Baseline |" in text
    assert "| **mae** (primary) |" in text
    for metric in ("rmse", "mape", "r2"):
        assert f"| {metric} |" in text


def test_guardrail_tables_put_failures_first_and_too_small_last(blocked):
    text = render_markdown(blocked)
    section = text.split("## Guardrail: mae on every slice")[1].split("## Guardrail:")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Slice")]
    verdicts = [row.rsplit("|", 2)[1].strip().split(":")[0] for row in rows]
    assert verdicts[0] == "FAIL" and rows[0].startswith("| district=d03 |")
    assert verdicts[-1] == "too small" and rows[-1].startswith("| district=d\\|19 | 120 |")  # pipes escaped
    assert verdicts == sorted(verdicts, key=["FAIL", "pass", "too small"].index)
    assert "| Slice | Rows | Champion | Candidate | Change (95% interval) | Verdict |" in section
    assert " to " in rows[0] and "%" in rows[0]


def test_links_come_last_and_there_is_no_html(blocked):
    text = render_markdown(blocked, LINKS)
    assert text.rstrip().endswith("- [Airflow run](http://af/run)")
    assert "- [MLflow run](http://mlflow/#/runs/abc)" in text
    assert "<" not in text and ">" not in text.replace("->", "")


def test_with_link_adds_to_the_links_section_or_starts_one(blocked):
    """The approval screen adds the model version's link, which exists only after evaluate wrote the report."""
    version = ("MLflow model version eta_berlin v3", "http://mlflow/#/models/eta_berlin/versions/3")
    linked = with_link(render_markdown(blocked, LINKS), *version)
    assert linked.count("## Links") == 1
    assert linked.endswith(
        "- [Airflow run](http://af/run)\n- [MLflow model version eta\\_berlin v3](http://mlflow/#/models/eta_berlin/versions/3)\n"
    )
    started = with_link(render_markdown(blocked), *version)
    assert started.endswith(
        "\n\n## Links\n\n- [MLflow model version eta\\_berlin v3](http://mlflow/#/models/eta_berlin/versions/3)\n"
    )


def test_first_run_report_names_the_baseline(make_config, rides, regression_predictions):
    data, candidate, _ = regression_predictions(rides(n_districts=3), np.random.default_rng(0))
    report = evaluate(make_config(), data, candidate, None, np.full(len(data), 750.0)).to_dict()
    text = render_markdown(report)
    assert text.startswith("PASS: candidate is no worse than the naive baseline on")
    assert "first run: compared with the naive baseline, no champion yet" in text
    assert "| Metric | Candidate | Baseline |" in text
    assert "| Slice | Rows | Baseline | Candidate |" in text


def test_chart_is_a_png_for_pass_fail_and_no_guardrails(blocked, passing, make_config, rides, regression_predictions):
    data, candidate, champion = regression_predictions(rides(n_districts=2), np.random.default_rng(0))
    empty = evaluate(make_config(guardrails=[]), data, candidate, champion, np.full(len(data), 750.0)).to_dict()
    assert render_markdown(empty).startswith("PASS: no guardrails are configured")
    for report in (blocked, passing, empty):
        png = render_chart(report)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_schema_change_is_flagged_only_when_the_input_differs() -> None:
    from airflow_ml_provider.core.report import schema_change_note

    champion = {"distance_km": "double", "district": "string"}
    assert schema_change_note(None, champion) is None
    assert schema_change_note(champion, dict(champion)) is None
    note = schema_change_note(champion, {"distance_km": "long", "weather": "string"})
    assert note.startswith("**Schema change:**")
    assert (
        "`weather` added (string)" in note and "`district` removed" in note and "`distance_km` double -> long" in note
    )


HOSTILE = [
    "x\n\n## PASS: all fine\n![](https://example.invalid/p.png) [Approve](https://example.invalid)",
    "$\\notacommand$",
    "back\\slash\\",
    "<img src=x onerror=alert(1)>",
    "y" * 10_000,
    "\u202eevil",
    "zero\u200bwidth",
    "nan",
    "None",
    "",
]


@pytest.fixture
def hostile(make_config, rides, regression_predictions):
    """A blocked report whose district values are hostile: the first one regressed, so it is named in the verdict."""
    frame = rides(n_districts=len(HOSTILE), rows_per_district=300)
    frame["district"] = np.repeat(HOSTILE, 300)
    scale = np.where(frame["district"] == HOSTILE[0], 1.6, 1.0)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0), candidate_scale=scale)
    report = evaluate(make_config(), data, candidate, champion, np.full(len(frame), 750.0))
    return json.loads(json.dumps(report.to_dict()))


def test_hostile_slice_ids_stay_text_inside_their_cells(hostile):
    from markdown_it import MarkdownIt

    text = render_markdown(hostile, LINKS)
    assert text.startswith("BLOCKED: 1 slice regressed beyond tolerance: district=x\\\\n\\\\n\\#\\# PASS\\: all fine")
    lines = text.splitlines()
    assert not any(line.startswith(("## PASS", "![", "[Approve")) for line in lines)
    section = text.split("## Guardrail: mae on every slice")[1].split("## Links")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Slice")]
    assert len(rows) == len(HOSTILE) + 1 + 3 + 1 + 5  # districts, overall, vehicle types, rush hour, hour bands
    assert all(row.count(" | ") == 5 for row in rows)  # six cells each: no value added or closed a cell
    html = MarkdownIt("gfm-like").render(text)
    assert "<img" not in html and "<h2>PASS" not in html
    assert 'href="https://example.invalid' not in html
    cell = "<td>district=x\\n\\n## PASS: all fine\\n![](https://example.invalid/p.png) [Approve](h…</td>"
    assert cell in html
    assert "<td>district=$\\notacommand$</td>" in html
    assert "<td>district=&lt;img src=x onerror=alert(1)&gt;</td>" in html
    assert "<td>district=\\u202eevil</td>" in html and "<td>district=zero\\u200bwidth</td>" in html
    assert "<td>district=" + "y" * 70 + "…</td>" in html
    for value in ("nan", "None", ""):
        assert f"<td>district={value}</td>" in html
    assert max(len(line) for line in lines) < 1000  # the 10 kB value is cut


def test_hostile_slice_ids_chart_as_literal_labels(hostile):
    png = render_chart(hostile)  # matplotlib would raise on $\notacommand$ parsed as math text
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_undefined_metrics_say_why_and_are_not_judged(make_config, rides, regression_predictions):
    """Arrival delays: many targets are 0, so mape is undefined overall and on every slice with a zero; one district's
    target is constant (and never 0), so r2 is undefined there. Neither prints a number, neither is judged."""
    frame = rides(n_districts=4, rows_per_district=300)
    data, candidate, champion = regression_predictions(frame, np.random.default_rng(0))
    data["eta_seconds"] = np.where(np.arange(len(data)) % 3 == 0, 0.0, data["eta_seconds"])
    data.loc[data["district"] == "d02", "eta_seconds"] = 600.0
    config = make_config(
        guardrails=[
            {"metric": "mape", "max_relative_regression": 0.02},
            {"metric": "r2", "max_relative_regression": 0.02},
        ]
    )
    report = json.loads(json.dumps(evaluate(config, data, candidate, champion, np.full(len(data), 750.0)).to_dict()))
    assert report["undefined"] == {"mape": "the target is 0 in 300 of 1,200 rows"}
    assert report["overall"]["candidate"]["mape"] is None
    mape, r2 = ({s["slice"]: s for s in g["slices"]} for g in report["guardrails"])
    assert (mape["district=d00"]["verdict"], mape["district=d00"]["candidate"]) == ("too_small", None)
    assert mape["district=d00"]["why_not_judged"] == "the target is 0 in 100 of 300 rows"
    assert mape["district=d02"]["verdict"] == "pass"  # its target is never 0
    assert (r2["district=d02"]["verdict"], r2["district=d02"]["why_not_judged"]) == (
        "too_small",
        "the target is constant",
    )
    assert r2["district=d02"]["candidate"] is None and r2["district=d01"]["verdict"] == "pass"
    text = render_markdown(report)
    assert "| mape | undefined (the target is 0 in 300 of 1,200 rows) | undefined" in text
    assert "| district=d02 | 300 | undefined (the target is constant) | undefined (the target is constant) |" in text
    assert "not judged: the target is constant" in text
    assert "not judged: the target is 0 in 100 of 300 rows" in text
    only_mape = make_config(guardrails=[{"metric": "mape", "max_relative_regression": 0.02}])
    data["eta_seconds"] = np.where(np.arange(len(data)) % 2 == 0, 0.0, data["eta_seconds"])  # zeros in every slice
    report = evaluate(only_mape, data, candidate, champion, np.full(len(data), 750.0)).to_dict()
    assert render_markdown(report).startswith(
        "PASS: nothing could be judged (14 slices too small or with an undefined metric)"
    )
    assert not re.search(r"\d{1,3}(,\d{3}){4,}", text)  # no 1,032,523,049,576,374
    assert render_chart(report).startswith(b"\x89PNG")


def test_roc_auc_with_one_class_says_so(make_config, classification_data):
    config = make_config("classification", min_slice_rows=10)
    frame, candidate, champion = classification_data(n=3000, seed=2)
    frame.loc[frame["district"] == "d01", "late"] = 0
    report = evaluate(config, frame, candidate, champion, np.full(len(frame), 0.3)).to_dict()
    text = render_markdown(report)
    assert "undefined (only one class: none of 500 rows are positive)" in text
