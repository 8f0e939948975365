"""The README's screenshots, taken from the running app in headless Chromium.

``.venv/bin/python docs/screenshots.py [names...]`` starts ``app.py`` on a free port (offline, so AlexNet is
untrained and says so), drives each tab as a learner would and writes ``docs/<name>.png`` (1440 px wide) and,
for a few tabs, ``docs/phone-<name>.png`` (390 px, a phone).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM_ARGS  # noqa: E402  (the browser settings the tests use)

TIMEOUT = 300_000
PHONE = {"width": 390, "height": 844}  # a phone's width: docs/phone-<name>.png
PHONE_SHOTS = ("conv_lab", "architecture", "activations", "explain")


def show_tab(page, name):
    """Click a tab; on a phone the tabs past the first two are listed under "More tabs"."""
    page.get_by_role("tab").first.wait_for(timeout=TIMEOUT)  # the page has drawn its tabs
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text=name).click()


def conv_lab(page):
    page.locator("#lab-result").scroll_into_view_if_needed()  # on a phone it is below the fold, and lazily loaded
    page.locator("#lab-result img").wait_for(timeout=TIMEOUT)
    page.locator("#lab-result img").click(position={"x": 200, "y": 120})
    page.locator("#lab-explanation").get_by_text("sum").first.wait_for(timeout=TIMEOUT)


def architecture(page):
    show_tab(page, "Architecture")
    page.locator("#arch-summary").get_by_text("parameters").wait_for(timeout=TIMEOUT)


def filters(page):
    show_tab(page, "Filters")
    page.locator("#filters-comparison").get_by_text("against learned filter").wait_for(timeout=TIMEOUT)


def activations(page):
    show_tab(page, "Activations & predictions")
    page.locator("#act-caption").get_by_text("features.1").first.wait_for(timeout=TIMEOUT)


def units(page):
    """From a click on the Activations grid to the Units tab: feature visualisation, top patches, fc7 map."""
    show_tab(page, "Activations & predictions")
    grid = page.locator("#act-grid img")
    grid.wait_for(timeout=TIMEOUT)
    page.locator("#act-caption").get_by_text("features.1").first.wait_for(timeout=TIMEOUT)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 169 / 450, box["y"] + box["height"] * 57 / 450)  # the second tile
    page.locator("#units-deconvnet-caption").get_by_text("features.0 channel").wait_for(timeout=TIMEOUT)
    for button, done in [
        ("#units-visualise", page.locator("#units-featurevis-caption").get_by_text("step 256 of 256")),
        ("#units-top", page.locator("#units-patches img").first),
        ("#units-map-button", page.locator("#units-fc7 img")),
        ("#units-neighbours-button", page.locator("#units-neighbours img").first),
    ]:
        page.locator(button).click()
        done.wait_for(timeout=TIMEOUT)
    spot = page.locator("#units-map img").bounding_box()
    page.mouse.click(spot["x"] + spot["width"] * 0.5, spot["y"] + spot["height"] * 0.25)
    page.locator("#units-field-caption").get_by_text("sees pixels").wait_for(timeout=TIMEOUT)
    time.sleep(1)


def explain(page):
    show_tab(page, "Explain")
    page.locator("#explain-button").click()
    page.locator("#explain-facts").get_by_text("Convergence delta").wait_for(timeout=TIMEOUT)
    page.locator("#compare-button").click()
    page.locator("#compare-status").get_by_text("agrees most").wait_for(timeout=TIMEOUT)


def train(page):
    """A real run: compact AlexNet learns the synthetic stripes/rings/checkerboards from scratch."""
    show_tab(page, "Train")
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name="synthetic", exact=True).click()
    page.locator("#train-model input").click()
    page.get_by_role("option", name="alexnet_compact", exact=True).click()
    page.get_by_test_id("full-radio-label").first.click()
    epochs = page.locator("#train-epochs input[type=number]")
    epochs.fill("15")
    epochs.press("Enter")
    page.get_by_label("Learning rate").fill("0.0001")  # Adam at 1e-3 stalls a from-scratch AlexNet here
    page.locator("#train-button").click()
    page.locator("#train-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
    page.locator("#train-downloads").get_by_text(".onnx").wait_for(timeout=TIMEOUT)
    time.sleep(2)  # let the plots settle


def experiments(page):
    """A real experiment: the ReLU-vs-tanh preset on the synthetic set, two seeds, as it stands."""
    show_tab(page, "Experiments")
    page.locator("#experiment-dataset input").click()
    page.get_by_role("option", name="synthetic", exact=True).click()
    seeds = page.locator("#experiment-seeds input[type=number]")
    seeds.fill("2")
    seeds.press("Enter")
    page.locator("#experiment-button").click()
    page.locator("#experiment-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
    page.locator("#experiment-downloads").get_by_text("summary.csv").wait_for(timeout=TIMEOUT)
    time.sleep(2)


SHOTS = {"conv_lab": conv_lab, "architecture": architecture, "filters": filters, "activations": activations,
         "units": units, "explain": explain, "train": train, "experiments": experiments}  # fmt: skip


def load_every_picture(page):
    """A full-page shot does not scroll, so pictures below the fold (Gradio loads them lazily) would be blank."""
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=TIMEOUT)
    time.sleep(0.5)


def _serve() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), PLAYGROUND_OFFLINE="1")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(360):
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the app did not start")


def main(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    process, url = _serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name in names or SHOTS:
                sizes = [("", {"width": 1440, "height": 1000})] + ([("phone-", PHONE)] if name in PHONE_SHOTS else [])
                for prefix, viewport in sizes:
                    page = browser.new_page(viewport=viewport)
                    page.goto(url)
                    SHOTS[name](page)
                    load_every_picture(page)
                    path = ROOT / "docs" / f"{prefix}{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(path.relative_to(ROOT), flush=True)
                    page.close()
            browser.close()
    finally:
        process.terminate()


if __name__ == "__main__":
    main(sys.argv[1:])
