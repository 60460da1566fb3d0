import json

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
        "- [Airflow run](http://af/run)\n- [MLflow model version eta_berlin v3](http://mlflow/#/models/eta_berlin/versions/3)\n"
    )
    started = with_link(render_markdown(blocked), *version)
    assert started.endswith(
        "\n\n## Links\n\n- [MLflow model version eta_berlin v3](http://mlflow/#/models/eta_berlin/versions/3)\n"
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
