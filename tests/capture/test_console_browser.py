"""The web console in a real headless browser (Debian chromium + chromium-driver, driven by
selenium) on a demo-like fleet: the page loads, lists the charge points, a charge point's live
tail grows once its capture is switched on, its trace downloads, and the browser's console
shows no error."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from interop.conftest import running_gateway
from kit import WAIT
from ocpp_gateway.server import RunningGateway
from ocpp_gateway.simulate import FleetStats, run_fleet
from ocpp_gateway.simulate.profile import Profile

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
TOKEN = "console-test-token-0123"
#: Each wait in the browser: a headless Chromium on a shared machine is slow to start.
BROWSER_WAIT = 2 * WAIT
SCREENSHOT = os.environ.get("CONSOLE_SCREENSHOT")  # a path: save the page there (README image)

needs_browser = pytest.mark.skipif(
    (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("REQUIRE_TEST_TOOLS"),
    reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver); "
    "required when REQUIRE_TEST_TOOLS is set",
)

FLEET = Profile(
    heartbeat_interval=0.5,
    status_interval=1.0,
    transaction_interval=1.0,
    transaction_duration=2.0,
    meter_interval=0.5,
    boot_retry_interval=0.5,
    misbehave_fraction=0.5,
    misbehave_probability=0.5,
    vendor="Demo Vendor",
    model="DC-150",
)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """A gateway (local responder, admin API, violation log, capture files) with a small
    simulated fleet of both versions, some of it misbehaving."""
    overrides = {
        "admin.host": "127.0.0.1",
        "admin.port": 0,
        "admin.token": TOKEN,
        "validation.violation_log": str(tmp_path / "violations.json"),
        "capture.directory": str(tmp_path / "traces"),
        "security.message_rate": 0,
    }
    async with running_gateway(None, **overrides) as gateway:
        stop = asyncio.Event()
        runs = [
            asyncio.create_task(
                run_fleet(
                    f"{gateway.url}/ocpp",
                    [f"demo16-{n}" for n in range(4)],
                    FLEET,
                    stats=FleetStats(),
                    stop=stop,
                    seed=7,
                )
            ),
            asyncio.create_task(
                run_fleet(
                    f"{gateway.url}/ocpp",
                    [f"demo201-{n}" for n in range(3)],
                    FLEET.with_version("ocpp2.0.1"),
                    stats=FleetStats(),
                    stop=stop,
                    seed=8,
                )
            ),
        ]
        try:
            yield gateway
        finally:
            stop.set()
            await asyncio.gather(*runs, return_exceptions=True)


def _browse(admin_url: str, downloads: Path) -> dict[str, Any]:
    """Drive the console (blocking: run in a thread, the gateway serves meanwhile)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    seen: dict[str, Any] = {}
    try:
        driver.set_page_load_timeout(BROWSER_WAIT)
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        wait = WebDriverWait(driver, BROWSER_WAIT, poll_frequency=0.1)
        driver.get(f"{admin_url}/console/#token={TOKEN}")
        rows = "#charge-points tbody tr"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 7)
        seen["ids"] = sorted(
            r.get_attribute("data-id") for r in driver.find_elements(By.CSS_SELECTOR, rows)
        )
        # The boots filled in vendor and model.
        wait.until(
            lambda d: "DC-150" in d.find_element(By.CSS_SELECTOR, "#charge-points tbody").text
        )
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-id="demo16-0"]')
        row.find_element(By.TAG_NAME, "button").click()
        toggle = driver.find_element(By.ID, "tail-capture")
        wait.until(lambda d: toggle.text == "Start capture")
        toggle.click()
        wait.until(lambda d: toggle.text == "Stop capture")
        tail = "#tail tbody tr"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, tail)) >= 2)
        first = len(driver.find_elements(By.CSS_SELECTOR, tail))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, tail)) >= first + 4)
        seen["tail"] = driver.find_element(By.CSS_SELECTOR, "#tail tbody").text
        seen["verdicts"] = {
            e.get_attribute("class")
            for e in driver.find_elements(By.CSS_SELECTOR, "#tail tbody td[class^='v-']")
        }
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#violations tbody tr")) > 0)
        seen["violations"] = driver.find_element(By.CSS_SELECTOR, "#violations tbody").text
        seen["backends"] = driver.find_element(By.CSS_SELECTOR, "#backends tbody").text
        driver.find_element(By.ID, "tail-download").click()
        target = downloads / "demo16-0.trace.jsonl"
        wait.until(lambda d: target.exists() and target.stat().st_size > 0)
        seen["download"] = target.read_bytes()
        if SCREENSHOT:
            driver.save_screenshot(SCREENSHOT)
        seen["log"] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    finally:
        driver.quit()
    return seen


@needs_browser
async def test_the_console_in_a_browser(fleet: RunningGateway, tmp_path: Path) -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("REQUIRE_TEST_TOOLS is set but chromium or chromedriver is missing")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    assert fleet.admin_url is not None
    seen = await asyncio.wait_for(asyncio.to_thread(_browse, fleet.admin_url, downloads), 240)
    assert seen["ids"] == [f"demo16-{n}" for n in range(4)] + [f"demo201-{n}" for n in range(3)]
    assert "CP → CSMS" in seen["tail"] and "CSMS → CP" in seen["tail"]
    assert "v-forwarded" in seen["verdicts"]
    assert "DC-150" in seen["violations"]
    assert "default" in seen["backends"] and "ready" in seen["backends"]
    records = [json.loads(line) for line in seen["download"].splitlines()]
    assert records and {r["chargePointId"] for r in records} == {"demo16-0"}
    assert all(r["schemaVersion"] == "1.1" for r in records)
    errors = [entry for entry in seen["log"] if entry.get("level") == "SEVERE"]
    assert errors == [], errors
