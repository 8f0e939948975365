"""Save my work / Open my work in a real browser: a session's settings, its own photo and its lesson progress
come back in a fresh browser from the file it downloaded."""

from __future__ import annotations

import urllib.request

import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def _wait(page, check, what: str) -> None:
    for _ in range(240):
        if check(page):
            return
        page.wait_for_timeout(250)
    raise AssertionError(what)


def _fresh(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.goto(url)
    page.locator("#lesson-text").get_by_text("Lesson ").first.wait_for(state="attached", timeout=TIMEOUT)
    return context, page


def test_saved_work_comes_back_in_a_fresh_browser(browser, app_url, tmp_path):
    photo = tmp_path / "my-mug.png"
    Image.new("RGB", (320, 200), (30, 120, 200)).save(photo)
    context, page = _fresh(browser, app_url + "?tab=lab&kernel=laplacian&stride=2")
    try:
        page.get_by_role("tab", name="Convolution lab", selected=True).wait_for(timeout=TIMEOUT)
        _wait(page, lambda p: _value(p, "lab-stride") == "2", "the link did not set the stride")
        page.locator("#lab-input button[aria-label='Remove Image']").click()
        page.locator("#lab-input input[type=file]").set_input_files(str(photo))
        page.locator("#lab-arithmetic").get_by_text("320 × 200").first.wait_for(timeout=TIMEOUT)
        page.get_by_role("tab", name="Lessons").click()
        page.locator("#lesson-done").click()  # lesson 1 marked done: progress to keep
        page.locator("#lesson-progress").get_by_text("1 of 10 lessons done").wait_for(timeout=TIMEOUT)
        page.locator("#my-work").get_by_text("My work").first.click()
        page.locator("#save-work").click()
        said = page.locator("#work-said")
        try:
            said.get_by_text("Saved").wait_for(timeout=TIMEOUT)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "my_work_not_saved.png"), full_page=True)
            raise
        assert "1 photo of yours" in said.inner_text() and "your lesson progress" in said.inner_text()
        page.screenshot(path=str(ARTIFACTS / "my_work_saved.png"), full_page=True)
        href = page.locator("#saved-work a").first.get_attribute("href")
        saved = tmp_path / "alexnet-playground-project.zip"
        with urllib.request.urlopen(href if href.startswith("http") else app_url.rstrip("/") + href) as response:
            saved.write_bytes(response.read())
    finally:
        context.close()
    context, page = _fresh(browser, app_url)  # nothing shared with the first browser
    try:
        assert "0 of 10 lessons done" in page.locator("#lesson-progress").inner_text()
        page.locator("#my-work").get_by_text("My work").first.click()
        page.locator("#open-work input[type=file]").set_input_files(str(saved))
        page.locator("#work-said").get_by_text("Opened").wait_for(timeout=TIMEOUT)
        page.locator("#lesson-progress").get_by_text("1 of 10 lessons done").wait_for(timeout=TIMEOUT)
        page.get_by_role("tab", name="Convolution lab").click()
        page.locator("#lab-arithmetic").get_by_text("320 × 200").first.wait_for(
            timeout=TIMEOUT
        )  # my photo, not the cup
        _wait(
            page,
            lambda p: _value(p, "lab-kernel") == "laplacian" and _value(p, "lab-stride") == "2",
            "the lab's settings did not come back",
        )
        page.screenshot(path=str(ARTIFACTS / "my_work_opened.png"), full_page=True)
    finally:
        context.close()
