"""Every reader (issue #19.16, WCAG 2.2 AA): axe-core finds no serious or critical violation on any tab at a
laptop's and a phone's width, every picture says what it shows, and the keyboard reaches and closes
everything."""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import expect

from tests.conftest import start_app

pytestmark = pytest.mark.e2e
TIMEOUT = 120_000
WIDTHS = {"laptop": 1440, "phone": 390}
FOCUSED = """() => {
  const e = document.activeElement;
  return {tag: e.tagName, footer: !!e.closest("footer"), role: e.getAttribute("role"), name: e.getAttribute("aria-label") || e.innerText.slice(0, 40),
          control: e.matches("a[href], button, input, select, textarea, summary, [role=tab], [role=option],"
                             + " [contenteditable=true], [role=slider], [role=button], [role=img][tabindex], canvas")};
}"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with start_app(tmp_path_factory) as (url, _):
        yield url


def open_page(browser, app_url, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(app_url)
    page.locator("#lesson-picture img").wait_for(state="attached", timeout=TIMEOUT)  # the first tab has drawn
    return context, page


def tab_names(page) -> list[str]:
    shown = page.get_by_role("tab").all_inner_texts()
    hidden = page.locator(".overflow-dropdown button").all_inner_texts()  # a phone lists the rest under "More tabs"
    return [name.strip() for name in shown + hidden]


def show_tab(page, name):
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text=name).click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true", timeout=TIMEOUT)


def settled(page) -> None:
    """Wait (at most 60 s) until no output on the page is still waiting for its event."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # still busy on a loaded machine: axe reads the page as it is
        page.wait_for_function(
            """() => ![...document.querySelectorAll('.pending, .progress-text, .eta-bar')].some(e => e.offsetParent)""",
            timeout=TIMEOUT,
        )


def serious_violations(page) -> list[str]:
    violations = page.evaluate("""async () => (await axe.run(document)).violations
        .filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => `${v.impact} ${v.id} (${v.help}): ` + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join("; "))""")
    return violations


def pictures_without_words(page) -> list[str]:
    """Every visible picture the app draws (results, examples, galleries) needs an alt text that says what it is."""
    return page.evaluate("""() => [...document.querySelectorAll(".block img")]
        .filter(img => img.offsetParent !== null && !(img.getAttribute("alt") || "").trim())
        .map(img => img.closest("[id]") ? img.closest("[id]").id : img.src.slice(-40))""")


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_no_serious_violation_on_any_tab(browser, app_url, axe, width):
    context, page = open_page(browser, app_url, width)
    try:
        page.add_script_tag(path=str(axe))
        names = tab_names(page)
        assert len(names) == 10, names
        found = {}
        for name in names:
            show_tab(page, name)
            page.wait_for_timeout(1500)  # the tab's first results arrive
            settled(page)  # and nothing is still drawn faded as "pending" (axe would read its contrast)
            problems = serious_violations(page) + [f"picture with no text: {p}" for p in pictures_without_words(page)]
            if problems:
                found[name] = problems
        assert not found, "\n".join(f"{tab}:\n  " + "\n  ".join(problems) for tab, problems in found.items())
    finally:
        context.close()


def test_the_keyboard_reaches_every_control_and_never_the_page(page):
    """Tab from the top lands on the first control (the model chooser); from there to the end of the page focus
    never falls onto the page itself or onto something that is not a control."""
    page.locator("#lesson-picture img").wait_for(state="attached", timeout=TIMEOUT)
    page.keyboard.press("Tab")
    first = page.evaluate(FOCUSED)
    assert first["control"] and "Model" in first["name"], first
    stops = []
    while len(stops) < 200 and not (stops and stops[-1]["footer"]):  # to Gradio's footer, the page's last controls
        page.keyboard.press("Tab")
        page.wait_for_timeout(50)
        stops.append(page.evaluate(FOCUSED))
    assert stops[-1]["footer"], "Tab never reached the end of the page"
    lost = [(stops[i - 1] if i else first, stop) for i, stop in enumerate(stops) if not stop["control"]]
    assert not lost, "focus landed on non-controls (after, on): " + "; ".join(f"{a['name']!r} -> {b}" for a, b in lost)


def test_escape_closes_lists_and_typing_replaces_a_dropdowns_text(page, browser, app_url):
    page.get_by_role("tab", name="Convolution lab").click()
    kernel = page.locator("#lab-kernel input")
    kernel.click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible(timeout=TIMEOUT)
    page.keyboard.press("Escape")
    expect(options).to_have_count(0)

    before = kernel.input_value()
    assert before
    kernel.focus()
    page.keyboard.type("sob")
    assert kernel.input_value() == "sob"  # not "<old name>sob"
    page.keyboard.press("Escape")

    context, phone = open_page(browser, app_url, WIDTHS["phone"])
    try:
        more = phone.get_by_role("button", name="More tabs")
        more.click()
        listed = phone.locator(".overflow-dropdown")
        expect(listed).to_be_visible()
        phone.keyboard.press("Escape")
        expect(listed).to_be_hidden()
        assert phone.evaluate("() => document.activeElement.getAttribute('aria-label')") == "More tabs"
    finally:
        context.close()
