"""The Convolution lab in a real browser: what a learner clicks, and what they see."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
TIMEOUT = 30_000


@pytest.fixture(autouse=True)
def _on_the_lab(page):
    """The page opens on the Lessons; every test here starts in the lab."""
    page.get_by_role("tab", name="Convolution lab").click()


def _choose_kernel(page, label: str) -> None:
    page.locator("#lab-kernel input").click()
    page.get_by_role("option", name=label, exact=True).click()


def _result_src(page) -> str:
    return page.locator("#lab-result img").get_attribute("src")


def _wait_for_new_result(page, before: str) -> str:
    page.wait_for_function(
        "before => document.querySelector('#lab-result img')?.getAttribute('src') !== before",
        arg=before,
        timeout=TIMEOUT,
    )
    return _result_src(page)


def test_coffee_cup_with_sobel_x(page, screenshot):
    page.locator("#lab-result img").wait_for(timeout=TIMEOUT)  # the first result appears on load
    page.get_by_role("button", name="coffee cup").click()
    before = _result_src(page)
    _choose_kernel(page, "laplacian")
    page.locator("#lab-description").get_by_text("Second derivative").wait_for(timeout=TIMEOUT)
    laplacian_src = _wait_for_new_result(page, before)

    _choose_kernel(page, "sobel x")
    page.locator("#lab-description").get_by_text("brighter to the right").wait_for(timeout=TIMEOUT)
    _wait_for_new_result(page, laplacian_src)
    page.locator("#lab-arithmetic").get_by_text("598 × 398").wait_for(timeout=TIMEOUT)
    assert page.locator("#lab-editor textarea").input_value() == "-1 0 1\n-2 0 2\n-1 0 1"

    # Click a pixel of the result: its arithmetic appears.
    page.locator("#lab-result img").click(position={"x": 150, "y": 100})
    page.locator("#lab-explanation").get_by_text("sum of the 9 products").wait_for(timeout=TIMEOUT)
    screenshot("conv_lab_sobel_x")


def test_custom_kernel_and_a_bad_one(page, screenshot):
    page.locator("#lab-result img").wait_for(timeout=TIMEOUT)
    editor = page.locator("#lab-editor textarea")
    editor.fill("1 1 1 1 1\n1 1 1 1 1\n1 1 -24 1 1\n1 1 1 1 1\n1 1 1 1 1")
    editor.dispatch_event("input")
    page.get_by_role("button", name="Apply this kernel").click()
    page.locator("#lab-arithmetic").get_by_text("596 × 396").wait_for(timeout=TIMEOUT)  # a 5 × 5 kernel

    before = _result_src(page)
    editor.fill("1 2 3\n4 five 6")
    page.get_by_role("button", name="Apply this kernel").click()
    # The reason stays beside the editor; the last good result, its scale and the kernel stay on screen.
    page.locator("#lab-kernel-status").get_by_text("Row 2: 'five' is not a number").wait_for(timeout=TIMEOUT)
    assert _result_src(page) == before
    page.locator("#lab-arithmetic").get_by_text("596 × 396").wait_for(timeout=TIMEOUT)
    assert page.locator("#lab-result, #lab-colorbar, #lab-kernel-image, #lab-kernel").get_by_text("Error").count() == 0
    screenshot("conv_lab_bad_kernel")


def test_a_text_file_posing_as_png_gets_a_message_and_the_app_keeps_working(page, tmp_path, screenshot):
    page.locator("#lab-result img").wait_for(timeout=TIMEOUT)
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture")
    page.locator("#lab-input button[aria-label='Remove Image']").click()
    page.locator("#lab-input input[type=file]").set_input_files(str(fake))
    page.get_by_text("not an image we can read").first.wait_for(timeout=TIMEOUT)
    screenshot("conv_lab_bad_file")
    page.get_by_role("button", name="rocket").click()
    page.locator("#lab-arithmetic").get_by_text("638 × 425").wait_for(timeout=TIMEOUT)


def test_the_keyboard_applies_and_a_small_result_is_shown_big_enough_to_click(page, screenshot):
    """Issue #19.12: the stride slider moved with the arrow keys showed 2 while the result stayed stride 1; the
    pixel's number boxes ignored Enter; a 150 × 100 result was shown 150 px wide, the clicked pixel unmarked."""
    arithmetic = page.locator("#lab-arithmetic")
    arithmetic.get_by_text("598 × 398").wait_for(timeout=TIMEOUT)
    stride = page.locator("#lab-stride input[type=range]")
    stride.focus()
    stride.press("ArrowRight")
    arithmetic.get_by_text("299 × 199", exact=True).wait_for(timeout=TIMEOUT)  # stride 2 applied, no pointer involved
    stride.press("ArrowRight")
    stride.press("ArrowRight")
    arithmetic.get_by_text("150 × 100", exact=True).wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        "() => document.querySelector('#lab-result img')?.naturalWidth >= 480", timeout=TIMEOUT
    )  # shown enlarged, in whole pixels

    page.locator("#lab-x input").fill("41")
    page.locator("#lab-y input").fill("17")
    page.locator("#lab-y input").press("Enter")
    explanation = page.locator("#lab-explanation")
    explanation.get_by_text("output (row 17, column 41)").wait_for(timeout=TIMEOUT)
    page.locator("#lab-patch img").wait_for(timeout=TIMEOUT)  # the patch it read, boxed on the photo

    # A click on the enlarged picture finds the result pixel under the pointer, not the screen pixel.
    picture = page.locator("#lab-result img")
    box = picture.bounding_box()
    natural = picture.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    drawn = min(box["width"] / natural[0], box["height"] / natural[1], 1)  # as Gradio fits it into the element
    left, top = (box["width"] - natural[0] * drawn) / 2, (box["height"] - natural[1] * drawn) / 2
    where = {"x": left + natural[0] * drawn * 100.5 / 150, "y": top + natural[1] * drawn * 60.5 / 100}
    picture.click(position=where)
    explanation.get_by_text("output (row 60, column 100)").wait_for(timeout=TIMEOUT)
    assert page.locator("#lab-x input").input_value() == "100"
    screenshot("conv_lab_small_result_clicked")
