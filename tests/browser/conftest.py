"""Headless Chromium from Debian's packages (``chromium``, ``chromium-driver``), driven with
Selenium. A machine without them fails these tests, naming what to install: a skip would hide
that the pages were never tried in a browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

pytestmark = pytest.mark.browser


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if Path(name).exists() else None)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    browser = _binary("chromium", "/usr/bin/chromium")
    driver_path = _binary("chromedriver", "/usr/bin/chromedriver")
    if browser is None or driver_path is None:
        pytest.fail(
            "headless Chromium is missing: apt-get install chromium chromium-driver",
            pytrace=False,
        )
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-proxy-server",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
