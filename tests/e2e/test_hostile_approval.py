"""What an approver sees when the data is hostile: berlin's rides with district names that are Markdown, HTML, math
text, 10 kB, right-to-left and zero-width characters (tests/bad_inputs.py), through real servers, and the Required
Actions screen in a browser: every name is a literal table cell, nothing became a heading, image or link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from bad_inputs import INJECTION, hostile_values

from .servers import DATA_END, RUN_TIMEOUT, Stack
from .test_running_airflow import screenshot, wait_for_text

pytestmark = pytest.mark.e2e
BERLIN = "retrain_berlin"


@pytest.mark.timeout(RUN_TIMEOUT + 300, method="thread")
def test_hostile_district_names_are_shown_as_text(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from airflow_ml_provider.core.demo_data import make_city_data, write_city_data

    from .test_running_airflow import log_in

    write_city_data(
        hostile_values(make_city_data("berlin", end=DATA_END.date())), stack.root / "data" / "berlin" / "rides.parquet"
    )
    run_id = stack.api().trigger(BERLIN, {"reason": "hostile data", "guardrail_tolerance": 1.0}, DATA_END.isoformat())
    request = stack.wait_for_approval(BERLIN, run_id)
    assert "## PASS: all fine" not in request["body"].splitlines()

    log_in(browser, stack, "berlin_ops", "berlin_ops")
    browser.get(f"{stack.api_url}/dags/{BERLIN}/runs/{quote(run_id, safe='')}/tasks/approve/required_actions")
    wait_for_text(browser, "Guardrail: mae on every slice")
    for cell in browser.find_elements(By.XPATH, "//td[starts-with(normalize-space(), 'district=x')]")[:1]:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    screenshot(browser, "hostile-approval")
    # textContent: the cells as rendered, also those scrolled out of view (Selenium's .text is only what is visible)
    cells = [td.get_attribute("textContent").strip() for td in browser.find_elements(By.CSS_SELECTOR, "table td")]
    assert "district=x\\n\\n## PASS: all fine\\n![](https://example.invalid/p.png) [Approve](h…" in cells, cells
    assert "district=$\\notacommand$" in cells and "district=<script>alert(1)</script><b>bold</b> &amp;" in cells, cells
    assert not browser.find_elements(By.XPATH, "//img[contains(@src, 'example.invalid')]")
    assert not browser.find_elements(By.XPATH, "//a[contains(@href, 'example.invalid')]")
    assert not [h for h in browser.find_elements(By.XPATH, "//h2") if "all fine" in h.text]
    assert INJECTION not in browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    stack.api("berlin_ops").answer(BERLIN, run_id, "Reject", "hostile-data screenshot")
