"""``report.html`` in a real headless Chromium (Debian's chromium and chromium-driver): it loads with no
console errors, sorting a column reorders the rows, a click shows a row's provenance, a string from a
file is shown and never run, and the page is not blank."""

from __future__ import annotations

import io
import shutil

import pytest

from zoo.comparisons.report import write_outputs

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install zoo[test])")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium / chromedriver: apt-get install chromium chromium-driver"
)

ATTACK = "<script>window.injected = 1</script><img src=x onerror=window.injected=2>"


def row(backbone: str, mean: float, **extra) -> dict:
    return {
        "backbone": backbone,
        "family": "timm",
        "modality": "image",
        "params": 4_000_000,
        "task": "zero-shot",
        "data": "cifar10",
        "mode": "zero-shot",
        "seeds": [0],
        "license": "mit",
        "status": "ok",
        "error": None,
        "metric": "test accuracy",
        "mean": mean,
        "std": 0.0,
        "chance": 0.1,
        "below_chance": mean < 0.1,
        "metrics": {"accuracy": mean},
        "runs": [f"cells/{backbone[-4:]}/run"],
        "provenance": {
            "versions": {"torch": "2.14.1"},
            "device": "cpu (x86_64)",
            "precision": "fp32",
            "seeds": [0],
            "data_fingerprint": "abc",
            "recipe_hash": ["h"],
            "weights": None,
        },
        **extra,
    }


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_report_sorts_shows_provenance_and_runs_nothing_from_the_table(tmp_path, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By

    rows = [
        row("vision/aaaa", 0.52),
        row("vision/bbbb", 0.07),
        row(ATTACK + "cccc", 0.31),
        {**row("vision/dddd", 0.0), "status": "failed", "error": "data root missing", "metric": None, "runs": []},
    ]
    rows[-1].pop("mean")
    write_outputs({"schema": 1, "name": "report test", "rows": rows}, tmp_path)
    browser.get((tmp_path / "report.html").as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    assert browser.execute_script("return window.injected === undefined"), "a string from the table ran"
    assert ATTACK in browser.find_element(By.ID, "detail").text  # shown as text

    def order() -> list[str]:
        return [
            cells[0].text.split("\n")[0][-4:]
            for cells in (
                item.find_elements(By.CSS_SELECTOR, "tr.summary td")
                for item in browser.find_elements(By.CSS_SELECTOR, "#detail tbody.item")
            )
        ]

    assert order() == ["aaaa", "bbbb", "cccc", "dddd"]
    value = next(th for th in browser.find_elements(By.CSS_SELECTOR, "#detail th") if th.text.startswith("value"))
    value.click()
    assert order() == ["bbbb", "cccc", "aaaa", "dddd"]  # ascending, the failed row (no number) last
    value.click()
    assert order()[:3] == ["aaaa", "cccc", "bbbb"]
    below = browser.find_element(By.CSS_SELECTOR, "#matrix td.below")
    assert "below chance 0.1" in below.text
    details = browser.find_elements(By.CSS_SELECTOR, "#detail tr.provenance")
    assert not any(d.is_displayed() for d in details)
    browser.find_elements(By.CSS_SELECTOR, "#detail tr.summary")[0].click()
    shown = [d for d in details if d.is_displayed()]
    assert len(shown) == 1 and '"recipe_hash"' in shown[0].text
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#detail a")]
    assert len(links) == 3 and all(link.startswith((tmp_path / "cells").as_uri()) for link in links)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".plots img")) == 3
    assert browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    screenshot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L")
    low, high = screenshot.getextrema()
    histogram = screenshot.histogram()
    assert high - low > 100 and max(histogram) < 0.97 * sum(histogram), "the page rendered blank"
