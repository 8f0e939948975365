"""The Explain tab in a real browser: one method, all methods, and painting over the photo."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
TIMEOUT = 90_000


def test_explain_compare_and_occlude(page, screenshot):
    page.get_by_role("tab", name="Explain").click()
    page.locator("#explain-button").click()
    page.locator("#explain-detail img").wait_for(timeout=TIMEOUT)
    page.locator("#explain-facts").get_by_text("Convergence delta").wait_for(timeout=TIMEOUT)

    page.locator("#compare-button").click()
    page.locator("#compare-status").get_by_text("All 10 methods").wait_for(timeout=TIMEOUT)
    page.locator("#compare-agreement").get_by_text("Guided Grad-CAM").first.wait_for(timeout=TIMEOUT)
    screenshot("explain_compare")

    page.get_by_text("Cover part of the photo").click()
    editor = page.locator("#occlude-editor")
    canvas = editor.locator("canvas").first
    canvas.wait_for(timeout=TIMEOUT)
    editor.scroll_into_view_if_needed()  # the mouse can only paint what is on screen
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 60, cy - 30)
    page.mouse.down()
    for step in range(12):
        page.mouse.move(cx - 60 + step * 10, cy - 30 + (step % 2) * 40, steps=3)
    page.mouse.up()
    page.locator("#occlude-button").click()
    page.locator("#occlude-summary").get_by_text("Covering").wait_for(timeout=TIMEOUT)
    page.locator("#occlude-summary").scroll_into_view_if_needed()
    screenshot("explain_occlusion")
