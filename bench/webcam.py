"""The live webcam in a real browser: how many times a second the feature maps on screen change.

``python -m bench.webcam`` starts ``app.py``, opens it in headless Chromium with a fake camera (Chromium's
moving test pattern), switches on the Activations tab's live webcam and counts, for ten seconds, the
distinct pictures shown in "Feature maps, live": that is frames per second end to end (capture, upload,
the network, the picture back on screen), not the handler's speed alone.
"""

from __future__ import annotations

import argparse
import time

from bench.load import _start_server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",  # allow the camera without asking
    "--use-fake-device-for-media-stream",  # Chromium's own moving test pattern as the camera
]
COUNT_PICTURES = """() => {
    window.__pictures = 0; window.__last = null;
    const look = () => {
        const img = document.querySelector('#act-live img');
        if (img && img.complete && img.src !== window.__last) { window.__pictures++; window.__last = img.src; }
        requestAnimationFrame(look);
    };
    requestAnimationFrame(look);
}"""


def frames_per_second(url: str, seconds: float = 10.0, layer: str | None = None) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1600}, permissions=["camera"]).new_page()
        page.goto(url)
        page.get_by_role("tab", name="Activations & predictions").click()
        page.get_by_text("Live webcam").click()
        page.locator("#act-webcam").get_by_text("Click to Access Webcam").click()
        page.locator("#act-webcam").get_by_label("capture photo").click()  # start streaming
        page.evaluate(COUNT_PICTURES)
        page.locator("#act-live img").wait_for(timeout=60_000)
        time.sleep(2)  # past the first frames
        before, started = page.evaluate("window.__pictures"), time.monotonic()
        time.sleep(seconds)
        shown = page.evaluate("window.__pictures") - before
        elapsed = time.monotonic() - started
        browser.close()
    return shown / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webcam", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--url", help="a running app (default: start app.py on a free port)")
    args = parser.parse_args(argv)
    process, url = (None, args.url) if args.url else _start_server()
    try:
        fps = frames_per_second(url, args.seconds)
        print(f"live webcam, headless Chromium with a fake camera: {fps:.1f} frames/s on screen (target >= 10)")
    finally:
        if process:
            process.terminate()


if __name__ == "__main__":
    main()
