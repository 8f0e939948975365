"""Links to a view in a real browser: a link opens its tab set up, "Link to this view" makes a link that
restores the tab in a fresh browser, and a bad value is named while the tab still opens."""

from __future__ import annotations

import urllib.parse

import pytest

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def _open(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.goto(url)
    page.locator("#lesson-text").get_by_text("Lesson ").first.wait_for(state="attached", timeout=TIMEOUT)  # loaded
    return context, page


def _wait(page, check, what: str) -> None:
    for _ in range(120):
        if check(page):
            return
        page.wait_for_timeout(250)
    raise AssertionError(what)


# (query, the tab it opens, what it set there)
LINKS = [
    ({"tab": "lab", "example": "cat", "kernel": "laplacian", "stride": "2", "pool": "max"}, "Convolution lab",
     lambda p: _value(p, "lab-kernel") == "laplacian" and _value(p, "lab-stride") == "2"
     and p.locator("#lab-pooling").get_by_label("max").is_checked()),
    ({"tab": "architecture", "model": "alexnet2012"}, "Architecture",
     lambda p: p.locator("#arch-summary").get_by_text("60,965,224 parameters").is_visible()),
    ({"tab": "filters", "kernel": "laplacian"}, "Filters", lambda p: _value(p, "filters-kernel") == "laplacian"),
    ({"tab": "activations", "layer": "features.4", "channel": "3"}, "Activations & predictions",
     lambda p: "features.4" in _value(p, "act-layer")),
    ({"tab": "explain", "method": "gradcam"}, "Explain", lambda p: _value(p, "explain-method") == "Grad-CAM"),
    ({"tab": "experiments", "preset": "dropout", "seeds": "3", "epochs": "4"}, "Experiments",
     lambda p: _value(p, "experiment-preset") == "Dropout" and _value(p, "experiment-seeds") == "3"
     and _value(p, "experiment-epochs") == "4"),
    ({"tab": "train", "dataset": "synthetic", "network": "alexnet_compact", "epochs": "7", "lr": "0.01"}, "Train",
     lambda p: _value(p, "train-dataset") == "synthetic" and _value(p, "train-model") == "alexnet_compact"
     and _value(p, "train-epochs") == "7" and _value(p, "train-lr") == "0.01"),
    ({"tab": "units", "layer": "features.3", "channel": "5", "method": "guided_backprop"}, "Units",
     lambda p: "features.3" in _value(p, "units-layer") and _value(p, "units-channel") == "5"
     and p.locator("#units-method").get_by_label("guided backprop").is_checked()),
    ({"tab": "lessons", "lesson": "5"}, "Lessons",
     lambda p: p.locator("#lesson-text").get_by_text("Lesson 5:").is_visible()),
]  # fmt: skip


@pytest.mark.parametrize(("query", "tab", "is_set"), LINKS, ids=[q["tab"] for q, *_ in LINKS])
def test_a_link_opens_its_view_and_link_to_this_view_restores_it(browser, app_url, query, tab, is_set):
    context, page = _open(browser, app_url + "?" + urllib.parse.urlencode(query))
    try:
        page.get_by_role("tab", name=tab, selected=True).wait_for(timeout=TIMEOUT)
        _wait(page, is_set, f"the link did not set the {tab} tab")
        tab_id = query["tab"]
        page.locator(f"#{tab_id}-link-button").click()
        box = page.locator(f"#{tab_id}-link textarea")
        _wait(page, lambda p: "?tab=" in box.input_value(), "no link was made")
        made = box.input_value()
    finally:
        context.close()
    assert made.startswith(app_url) and f"tab={tab_id}" in made
    context, page = _open(browser, made)  # a fresh browser: nothing shared with the first
    try:
        page.get_by_role("tab", name=tab, selected=True).wait_for(timeout=TIMEOUT)
        _wait(page, is_set, f"the link made by the {tab} tab did not restore it: {made}")
    finally:
        context.close()


def test_a_bad_value_is_named_and_the_tab_still_opens(browser, app_url):
    context, page = _open(browser, app_url + "?tab=lab&stride=1e308&kernel=sobel_y")
    try:
        page.get_by_role("tab", name="Convolution lab", selected=True).wait_for(timeout=TIMEOUT)
        page.get_by_text("stride='1e308' is not a whole number from 1 to 8").first.wait_for(timeout=TIMEOUT)
        _wait(page, lambda p: _value(p, "lab-kernel") == "sobel y", "the good value was not applied")
        assert _value(page, "lab-stride") == "1"
    finally:
        context.close()
