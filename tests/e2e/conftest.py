"""Fixtures of the end-to-end tests: one set of real servers per module, and a headless browser per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Airflow (api-server, scheduler, dag-processor) and MLflow, started once for the module's tests."""
    with running_stack() as running:
        yield running


@pytest.fixture
def browser(stack: Stack) -> Iterator[Any]:
    """Debian's headless Chromium and chromedriver (nothing downloaded), in a session the watchdog stops."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is missing: `make system-deps` (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={stack.root / 'chromium-profile'}", "--window-size=1400,1400",
    ):  # fmt: skip
        options.add_argument(flag)
    service = Service(
        CHROMEDRIVER, log_output=str(stack.root / "logs" / "chromedriver.log"), popen_kw={"start_new_session": True}
    )
    driver = webdriver.Chrome(options=options, service=service)
    stack.watch(service.process.pid)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
