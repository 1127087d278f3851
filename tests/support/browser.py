"""Headless Chromium (Debian's chromium and chromedriver, driven by Selenium), for tests of
pages: ``scripts/test`` installs both; without them a test fails under CI and is skipped
elsewhere, saying how to get them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
# Screenshots and other artifacts of a run (CI keeps the directory).
ARTIFACTS = Path(os.environ.get("FUSOU_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 2200) -> Iterator[webdriver.Chrome]:
    browser = _binary("chromium", "chromium-browser")
    driver = _binary("chromedriver")
    if browser is None or driver is None:
        message = (
            "needs Debian's chromium and chromium-driver: scripts/test installs them "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
