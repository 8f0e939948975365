"""What every screen looks like, on a 390 px phone and a 1440 px desktop: the model chooser's note stacks under
it on a phone, no table shows Gradio's "1 2 3" before anything ran, no Share button off a Hugging Face Space,
and the Experiments table keeps its words whole, shows its last row and keeps its plot's label off the plot."""

from __future__ import annotations

import contextlib

import pytest

from tests.conftest import start_app
from tests.test_app_experiments import make_folder

pytestmark = pytest.mark.e2e
TIMEOUT = 240_000
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1440, "height": 900}
TABS = ("Lessons", "Convolution lab", "Architecture", "Filters", "Activations & predictions", "Units", "Explain", "Train",
        "Experiments", "Class board")  # fmt: skip

# Each word of every visible header and cell of the table is on one line: a cell wraps only between words.
BROKEN_WORDS = """
(table) => {
  const broken = [];
  for (const cell of document.querySelectorAll(`${table} th, ${table} td`)) {
    if (!cell.offsetParent || cell.closest('.sizing-body')) continue;  // Gradio's hidden copy that sizes columns
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}
"""
# Boxes inside the table that scroll up and down: rows hidden behind an inner scroll bar.
INNER_SCROLL = """
(table) => [...document.querySelectorAll(`${table} *`)]
  .filter((e) => e.offsetParent && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))
  .filter((e) => e.scrollHeight > e.clientHeight + 2)
  .map((e) => `${e.className}: ${e.scrollHeight} > ${e.clientHeight}`)
"""
# Tables on the screen whose headers are Gradio's placeholders 1, 2, 3, ...
PLACEHOLDER_TABLES = """
() => [...document.querySelectorAll('[role=grid]')].filter((grid) => grid.offsetParent).filter((grid) => {
  const headers = [...grid.querySelectorAll('thead th')].map((th) => th.innerText.trim());
  return headers.length > 0 && headers.every((text, i) => text === String(i + 1));
}).map((grid) => grid.getAttribute('aria-label'))
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A server of its own, off a Space (no SPACE_ID), as ``make run`` starts it on a laptop."""
    with start_app(tmp_path_factory, PLAYGROUND_PROXY_HOPS="1") as (url, _):
        yield url


@contextlib.contextmanager
def _page(browser, app_url, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_url)
    page.locator("#model-status").get_by_text("alexnet").first.wait_for(timeout=TIMEOUT)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_on_a_phone_the_model_note_sits_below_the_chooser_at_full_width(browser, app_url):
    with _page(browser, app_url, PHONE) as page:
        chooser = page.locator("#model-chooser").bounding_box()
        note = page.locator("#model-status").bounding_box()
        assert note["width"] >= 300, f"the note beside the chooser is squeezed to {note['width']:.0f} px"
        assert note["y"] >= chooser["y"] + chooser["height"] - 1, "the note is beside the chooser, not below it"


def test_no_tab_shows_placeholder_tables_or_a_share_button_off_a_space(browser, app_url):
    with _page(browser, app_url, DESKTOP) as page:
        page.get_by_role("tab", name="Convolution lab", exact=True).click()
        page.locator("#lab-result img").wait_for(timeout=TIMEOUT)  # a result, with its toolbar
        assert page.locator("#lab-result").get_by_label("Download").count() == 1  # the toolbar is there ...
        found = {}
        for tab in TABS:
            page.get_by_role("tab", name=tab, exact=True).click()
            page.wait_for_timeout(1500)  # the tab's load events (architecture table, previews) arrive
            placeholders = page.evaluate(PLACEHOLDER_TABLES)
            shares = page.get_by_role("button", name="Share", exact=True).filter(visible=True).count()
            if placeholders or shares:
                found[tab] = (placeholders, shares)
        assert not found, f"tables headed 1 2 3, and Share buttons, by tab: {found}"  # ... without Share


def test_the_experiments_table_keeps_words_whole_and_every_row_in_view(browser, app_url, tmp_path):
    make_folder(tmp_path, top="pets")
    with _page(browser, app_url, DESKTOP) as page:
        page.get_by_role("tab", name="Experiments", exact=True).click()
        page.locator("#experiment-folder input[type=file]").set_input_files(str(tmp_path / "pets"))
        page.locator("#experiment-folder").get_by_text(".jpg", exact=True).nth(17).wait_for(timeout=TIMEOUT)
        page.locator("#experiment-dataset input").click()
        page.get_by_role("option", name="your folder", exact=True).click()
        epochs = page.locator("#experiment-epochs input[type=number]")
        epochs.fill("2")
        epochs.press("Enter")
        page.get_by_text("Compose your own runs").click()
        page.locator("#experiment-values textarea").fill("relu, tanh, sigmoid")
        page.locator("#experiment-button").click()
        page.locator("#experiment-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
        table = page.locator("#experiment-table")
        # (a hidden copy of the table sizes its columns: the first match is in it)
        table.locator("text=activation=sigmoid >> visible=true").first.wait_for(timeout=TIMEOUT)
        for viewport in (DESKTOP, PHONE):
            page.set_viewport_size(viewport)
            page.wait_for_timeout(1000)  # the table measures its columns again
            width = viewport["width"]
            assert page.evaluate(BROKEN_WORDS, "#experiment-table") == [], f"words cut across lines at {width} px"
            assert page.evaluate(INNER_SCROLL, "#experiment-table") == [], f"rows hidden by a scroll at {width} px"
            label = page.locator("#experiment-curves [data-testid=block-label]").bounding_box()
            picture = page.locator("#experiment-curves img").bounding_box()
            assert label["y"] + label["height"] <= picture["y"] + 1, f"the label covers the plot at {width} px"
