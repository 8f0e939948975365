"""The Class board in a browser: a teacher starts a class; a learner opens the class's link, joins, applies a
kernel in the Convolution lab and publishes it; the teacher's board shows it without a click (live); the teacher
hides it, downloads the board and closes the class; the learner's next publish is refused in a sentence. axe-core
reads the board with entries on it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from tests.e2e.test_accessibility import pictures_without_words, serious_violations

pytestmark = pytest.mark.e2e
TIMEOUT = 120_000


def _text(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_a_class_on_the_board_live(browser, app_url, axe, screenshot, page):
    page.get_by_role("tab", name="Class board", exact=True).click()
    page.get_by_text("Teacher: start a class").click()
    _text(page, "board-class-name").fill("Period 3 — CNNs")
    page.locator("#board-create").click()
    made = page.locator("#board-made")
    made.get_by_text("Teacher link").wait_for(timeout=TIMEOUT)
    code = _text(page, "board-code").input_value()
    assert re.fullmatch(r"[A-Z2-9]{6}", code), code
    link = re.search(r"Learners' link: (\S+)", made.inner_text()).group(1)
    assert link.endswith(f"?tab=board&class={code}")
    page.locator("#board-summary").get_by_text("0 learners").wait_for(timeout=TIMEOUT)

    learner_context = browser.new_context(viewport={"width": 1400, "height": 1400})
    learner = learner_context.new_page()
    try:
        learner.goto(link)  # the link opens the board tab, the code filled in and the board shown
        learner.locator("#board-summary").get_by_text("Period 3").wait_for(timeout=TIMEOUT)
        assert _text(learner, "board-code").input_value() == code
        _text(learner, "board-learner").fill("ada")
        learner.locator("#board-join").click()
        learner.locator("#board-said").get_by_text("ada joined the class").wait_for(timeout=TIMEOUT)
        learner.get_by_role("tab", name="Convolution lab", exact=True).click()
        learner.locator("#lab-result img").wait_for(timeout=TIMEOUT)
        learner.locator("#lab-kernel input").click()
        learner.get_by_role("option", name="laplacian", exact=True).click()
        learner.wait_for_timeout(2000)  # the lab applies it and remembers it
        learner.locator("#lab-publish").click()
        learner.locator("#lab-publish-said").get_by_text("Published your kernel").wait_for(timeout=TIMEOUT)

        # The teacher clicks nothing: the board's timer brings the entry.
        page.locator("#board-kernels img").first.wait_for(timeout=TIMEOUT)
        page.locator("#board-summary").get_by_text("1 learner · 1 entry").wait_for(timeout=TIMEOUT)
        assert "ada: laplacian" in page.locator("#board-kernels").inner_text()
        assert "laplacian" in page.locator("#board-entries").inner_text()
        page.add_script_tag(path=str(axe))
        assert serious_violations(page) == [] and pictures_without_words(page) == []
        screenshot("class_board")

        page.locator("#board-csv").click()
        page.locator("#board-teacher-said").get_by_text("The board as CSV").wait_for(timeout=TIMEOUT)
        with page.expect_download() as fetched:
            page.locator("#board-download a").first.click()
        rows = list(csv.DictReader(io.StringIO(Path(fetched.value.path()).read_text(encoding="utf-8"))))
        assert [(r["learner"], r["kind"], r["what"]) for r in rows] == [("ada", "kernel", "laplacian")]

        _text(page, "board-entry").fill(rows[0]["entry"])
        page.locator("#board-hide").click()
        page.locator("#board-teacher-said").get_by_text("is hidden").wait_for(timeout=TIMEOUT)
        page.locator("#board-summary").get_by_text("0 entries").wait_for(timeout=TIMEOUT)
        page.locator("#board-close").click()
        page.locator("#board-summary").get_by_text("is closed").wait_for(timeout=TIMEOUT)

        learner.locator("#lab-publish").click()
        learner.get_by_text("has been closed by its teacher").first.wait_for(timeout=TIMEOUT)
    finally:
        learner_context.close()
