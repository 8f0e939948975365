"""The Units tab in a real browser: a click on a channel of the Activations grid lands here with it chosen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import start_app

pytestmark = pytest.mark.e2e
TIMEOUT = 90_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A server of its own: after the Train tab's browser test on the shared one, about one run in three lost a
    Units reply (see the note on the clicks below; not yet understood, and never seen on a fresh server)."""
    with start_app(tmp_path_factory, PLAYGROUND_PROXY_HOPS="1") as (url, _):
        yield url


def test_a_click_in_the_activations_grid_lands_in_units(page, screenshot):
    page.get_by_role("tab", name="Activations & predictions").click()
    grid = page.locator("#act-grid img")
    grid.wait_for(timeout=TIMEOUT)
    caption = page.locator("#act-caption").get_by_text("features.1").first
    caption.wait_for(timeout=TIMEOUT)
    shown = re.search(r"channels ([\d, ]+)\)", page.locator("#act-caption").inner_text()).group(1)
    second = int(shown.split(", ")[1])  # the grid's tiles, row by row: the second is right of the first
    page.wait_for_function(
        "() => { const i = document.querySelector('#act-grid img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    natural = grid.evaluate("image => image.naturalWidth")
    step = (natural - 2) // 4  # 16 tiles, 4 a row, 2 px apart (torchvision's make_grid)
    box = grid.bounding_box()
    x, y = 2 + step + step / 2, 2 + step / 2  # the second tile's centre
    page.mouse.click(box["x"] + box["width"] * x / natural, box["y"] + box["height"] * y / natural)

    page.locator("#units-deconvnet-caption").get_by_text(f"features.0 channel {second}").wait_for(timeout=TIMEOUT)
    assert page.locator("#units-channel input").input_value() == str(second)
    assert "features.0" in page.locator("#units-layer input").input_value()
    assert page.locator("#units-visualise").is_visible()  # the Units tab is the one shown

    page.locator("#units-visualise").click()
    caption = page.locator("#units-featurevis-caption")
    try:
        caption.get_by_text("step 256 of 256").wait_for(timeout=TIMEOUT)
    except PlaywrightTimeout:
        screenshot("units-featurevis-timeout")
        raise AssertionError(f"no final picture; the caption says {caption.inner_text()!r}") from None
    patches = page.locator("#units-patches img").first
    for attempt in range(3):  # see the note on the map's clicks below: a lost reply is clicked for again
        page.locator("#units-top").click()
        try:
            patches.wait_for(timeout=TIMEOUT // 3)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                screenshot("units-top-timeout")
                raise

    field_map = page.locator("#units-map img")
    field_map.wait_for(timeout=TIMEOUT)
    field_caption = page.locator("#units-field-caption").get_by_text("sees pixels")
    # Rarely (1 run in 3 after the Train test, never alone) a reply is lost: Gradio marks every running event of a
    # session as gone when one of its streams closes, then drops their messages. A learner clicks again; so do we.
    for attempt in range(3):
        spot = field_map.bounding_box()
        page.mouse.click(spot["x"] + spot["width"] * 0.5, spot["y"] + spot["height"] * 0.25)
        try:
            field_caption.wait_for(timeout=TIMEOUT // 3)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                screenshot("units-field-timeout")
                raise
    screenshot("units")
