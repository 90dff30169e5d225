"""``report.html`` in a real headless Chromium (Debian's chromium and chromium-driver): it loads with no
console errors, is titled by the spec's name, sorting a column reorders the rows, a click shows a row's
provenance as a definition list, run links read by backbone and cell, a string from a file is shown and
never run, every plot has its chance line, and the page is not blank."""

from __future__ import annotations

import io
import shutil
import warnings

import pytest

from zoo.comparisons.plots import figures
from zoo.comparisons.report import write_outputs

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
try:
    from selenium import webdriver
except ImportError:  # the browser test skips; the plot tests still run
    webdriver = None
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and webdriver),
    reason="no chromium / chromedriver / selenium: apt-get install chromium chromium-driver; pip install zoo[test]",
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


def _is_red(pixel) -> bool:
    r, g, b = pixel
    return r > 150 and g < 90 and b < 90


@pytest.fixture
def browser(tmp_path):
    assert webdriver is not None
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


@needs_browser
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
    rows[0].update(seeds=[0, 1], std=0.0123, runs=["cells/aaaa/run", "cells/aaa1/run"], params=84_900)
    write_outputs({"schema": 1, "name": "report test", "rows": rows}, tmp_path)
    browser.get((tmp_path / "report.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "report test"  # the spec's name, not a metric's
    assert browser.title.startswith("report test")
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
    assert below.text == "0.070 ⚠ below chance 0.100"  # one seed: no "±"
    matrix = browser.find_element(By.ID, "matrix").text
    assert "0.520 ± 0.012" in matrix and "failed: data root missing" in matrix  # two seeds: ±; a failure: why
    detail = browser.find_element(By.ID, "detail").text
    assert "84,900" in detail and "4,000,000" in detail and "e+0" not in detail
    details = browser.find_elements(By.CSS_SELECTOR, "#detail tr.provenance")
    assert not any(d.is_displayed() for d in details)
    browser.find_elements(By.CSS_SELECTOR, "#detail tr.summary")[0].click()
    shown = [d for d in details if d.is_displayed()]
    assert len(shown) == 1 and not shown[0].find_elements(By.TAG_NAME, "pre")  # a list of fields, not a JSON dump
    terms = [dt.text for dt in shown[0].find_elements(By.CSS_SELECTOR, "dl.record dt")]
    assert {"provenance", "versions", "torch", "device", "recipe_hash", "metrics"} <= set(terms), terms
    assert "cpu (x86_64)" in shown[0].text and "{" not in shown[0].text
    anchors = browser.find_elements(By.CSS_SELECTOR, "#detail a")
    links = [a.get_attribute("href") for a in anchors]
    assert len(links) == 4 and all(link.startswith((tmp_path / "cells").as_uri()) for link in links)
    assert [a.text for a in anchors[:2]] == [
        "vision/aaaa · zero-shot / cifar10 / zero-shot, seed 0",
        "vision/aaaa · zero-shot / cifar10 / zero-shot, seed 1",
    ]
    assert len(browser.find_elements(By.CSS_SELECTOR, ".plots img")) == 3
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".plots figcaption")]
    assert len(captions) == 3 and all("chance" in caption for caption in captions)
    bars = Image.open(tmp_path / "per_task.png").convert("RGB")  # the chance line's red (#b3261e), drawn
    red = sum(1 for x in range(bars.width) for y in range(bars.height) if _is_red(bars.getpixel((x, y))))
    assert red > 50, red
    assert browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    screenshot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L")
    low, high = screenshot.getextrema()
    histogram = screenshot.histogram()
    assert high - low > 100 and max(histogram) < 0.97 * sum(histogram), "the page rendered blank"


def chance_lines(figure) -> list[tuple[str, list[float]]]:
    """Each axes' lines labelled as chance: (label, the data they are drawn at)."""
    return [
        (line.get_label(), sorted({*line.get_xdata(), *line.get_ydata()} - {0, 1}) or [0.0])
        for axes in figure.axes
        for line in axes.get_lines()
        if line.get_label().startswith("chance")
    ]


def test_every_plot_draws_the_chance_level_with_readable_axes_and_no_warning():
    import matplotlib.pyplot as plt

    rows = [
        row("vision/aaaa", 0.52),
        row("vision/bbbb", 0.31, params=84_900),
        {**row("text/cccc", 0.8), "task": "text-classification", "data": "sst2", "chance": 0.5, "mode": "probe"},
        {**row("text/dddd", 0.0), "status": "failed", "error": "x"},  # not plotted
    ]
    rows[0]["inference_samples_per_s"] = 1234.5  # one row measured for the throughput plot; the others not
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's warnings would reach a user's terminal
        made = figures({"schema": 1, "name": "plots", "rows": rows})
    try:
        assert set(made) == {"metric_vs_params.png", "metric_vs_throughput.png", "per_task.png"}
        for name, figure in made.items():
            lines = chance_lines(figure)
            drawn_at = sorted(value for _, values in lines for value in values)
            assert drawn_at == [0.1, 0.5], (name, lines)  # the image cell's chance and the text cell's
            for axes in figure.axes:
                assert axes.get_xlabel(), name
                legend = axes.get_legend()
                assert legend is not None and any(t.get_text().startswith("chance") for t in legend.get_texts())
        bars = made["per_task.png"].axes
        assert [axes.get_title() for axes in bars] == [
            "zero-shot / cifar10 / zero-shot",
            "text-classification / sst2 / probe",
        ]
        scatter = made["metric_vs_params.png"].axes[0]
        assert scatter.get_xscale() == "log" and "parameters" in scatter.get_xlabel() and scatter.get_ylabel()
        made["metric_vs_params.png"].canvas.draw()
        ticks = [t.get_text() for t in scatter.get_xticklabels() if t.get_text()]
        assert ticks and not any("^" in t or "e+" in t for t in ticks), ticks  # 100k, 1M: not 10^5
    finally:
        for figure in made.values():
            plt.close(figure)


def test_plots_draw_each_row_s_interval_as_its_error_bar():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    rows = [
        {**row("vision/aaaa", 0.52), "interval": {"low": 0.47, "high": 0.58}},
        {**row("vision/bbbb", 0.31, params=84_900), "interval": {"low": 0.28, "high": 0.33}},
    ]
    made = figures({"schema": 1, "name": "plots", "rows": rows})
    try:
        for name in ("per_task.png", "metric_vs_params.png"):
            segments = [
                segment
                for axes in made[name].axes
                for collection in axes.collections
                if isinstance(collection, LineCollection)
                for segment in collection.get_segments()
            ]
            vertical = name != "per_task.png"  # bars are horizontal: their error bars run along x
            spans = sorted(
                (round(float(s[:, int(vertical)].min()), 6), round(float(s[:, int(vertical)].max()), 6))
                for s in segments
            )
            assert spans == [(0.28, 0.33), (0.47, 0.58)], (name, spans)
    finally:
        for figure in made.values():
            plt.close(figure)
