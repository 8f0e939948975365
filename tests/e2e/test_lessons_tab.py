"""The Lessons tab in a real browser: the page opens on it, exercises are checked, progress survives a reload,
every lesson's "Show me" sets its tab, and lessons 1-4 can be done on a phone-sized screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground import lessons as L

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000
COURSE = L.course(lambda: None)  # the number exercises need no model


def _lesson(page, number: int) -> None:
    # The page's load picks a lesson itself (a link's, or the first not done): wait for it before choosing.
    page.locator("#lesson-text").get_by_text("Lesson ").first.wait_for(timeout=TIMEOUT)
    page.locator("#lesson-list").get_by_role("radio").nth(number - 1).check()
    page.locator("#lesson-text").get_by_text(f"Lesson {number}:").wait_for(timeout=TIMEOUT)


def _verdict_after(page, slot: int, click) -> str:
    """The verdict slot's new sentence after ``click()`` (it must change from what it said before)."""
    verdict = page.locator(f"#lesson-verdict-{slot}")
    before = verdict.inner_text()
    click()
    for _ in range(120):
        text = verdict.inner_text()
        if text != before and re.search("Right|Not yet", text) and not re.search(r"\d\.\ds", text):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"no new verdict in slot {slot}: {verdict.inner_text()!r}")


def _answer(page, slot: int, reply: str) -> str:
    page.locator(f"#lesson-reply-{slot} textarea").fill(reply)
    return _verdict_after(page, slot, page.locator(f"#lesson-check-{slot}").click)


def _picture_drawn(page) -> None:
    picture = page.locator("#lesson-picture")
    picture.locator("img").wait_for(timeout=TIMEOUT)
    for _ in range(240):
        if not re.search("processing|queue", picture.inner_text()):
            return
        page.wait_for_timeout(250)
    raise AssertionError("the lesson's picture was not drawn")


def _selected_tab(page) -> str:
    return page.get_by_role("tab", selected=True).first.inner_text().strip()


def _input_value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def test_the_page_opens_on_the_lessons_and_checks_answers(page, screenshot):
    assert _selected_tab(page) == "Lessons"
    page.locator("#lesson-text").get_by_text("Lesson 1: What a kernel does").wait_for(timeout=TIMEOUT)
    _picture_drawn(page)
    assert "Not yet" in _answer(page, 0, "700")
    assert "Right: 760" in _answer(page, 0, "760")
    page.locator("#lesson-reveal-1").click()
    page.locator("#lesson-verdict-1").get_by_text("The answer: 638").wait_for(timeout=TIMEOUT)
    assert "Right" in _answer(page, 1, "638")
    page.locator("#lesson-progress").get_by_text("1 of 10 lessons done").wait_for(timeout=TIMEOUT)
    screenshot("lesson_1")

    page.reload()  # progress lives in the browser: it survives a reload
    page.locator("#lesson-progress").get_by_text("1 of 10 lessons done").wait_for(timeout=TIMEOUT)
    page.locator("#lesson-text").get_by_text("Lesson 2:").wait_for(timeout=TIMEOUT)  # the first not done
    _lesson(page, 1)
    assert page.locator("#lesson-reply-0 textarea").input_value() == "760"
    page.locator("#lesson-text").get_by_text("✓ done").wait_for(timeout=TIMEOUT)

    page.locator("#lesson-notes-button").click()  # My notes: the answers, in a page to print
    link = page.locator("#lesson-notes a").first
    link.wait_for(timeout=TIMEOUT)
    with page.expect_download() as download:
        link.click()
    notes = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Lesson 1: What a kernel does (done)" in notes and "<b>760</b>" in notes and "<img alt=" in notes

    page.locator("#lesson-reset").click()
    page.locator("#lesson-progress").get_by_text("0 of 10 lessons done").wait_for(timeout=TIMEOUT)


def test_design_and_prediction_exercises_and_three_screenshots(page, screenshot):
    _lesson(page, 2)
    _picture_drawn(page)
    assert "signs are the wrong way round" in _answer(page, 1, "1 0 -1\n2 0 -2\n1 0 -1")
    assert "Right" in _answer(page, 0, "-1 -2 -1\n0 0 0\n1 2 1")
    screenshot("lesson_2")
    _lesson(page, 10)
    page.locator("#lesson-choice-0").get_by_label("slower").check()
    assert "six times faster than tanh" in _verdict_after(page, 0, page.locator("#lesson-check-0").click)
    _picture_drawn(page)
    screenshot("lesson_10")
    _lesson(page, 8)
    page.locator("#lesson-text").get_by_text("no trained weights").wait_for(timeout=TIMEOUT)  # offline: said
    _picture_drawn(page)
    screenshot("lesson_8")
    # The README's screenshots are these three, copied from tests/e2e/artifacts by hand.


# (lesson, the tab it opens, a check of what it set there)
SHOW_ME = [
    (1, "Convolution lab", lambda p: _input_value(p, "lab-kernel") == "sobel x" and _input_value(p, "lab-stride") == "1"),
    (2, "Convolution lab", lambda p: _input_value(p, "lab-kernel") == "flashlight down"),
    (3, "Convolution lab", lambda p: _input_value(p, "lab-stride") == "4"
     and p.locator("#lab-pooling").get_by_label("max").is_checked()),
    (4, "Architecture", lambda p: p.locator("#arch-summary").get_by_text("61,100,840 parameters").is_visible()),
    (5, "Architecture", lambda p: p.locator("#arch-summary").get_by_text("60,965,224 parameters").is_visible()),
    (6, "Filters", lambda p: _input_value(p, "filters-kernel") == "sobel x"),
    (7, "Activations & predictions", lambda p: "features.7" in _input_value(p, "act-layer")),
    (8, "Explain", lambda p: _input_value(p, "explain-method") == "Saliency"),
    (9, "Train", lambda p: _input_value(p, "train-dataset") == "five-flowers" and _input_value(p, "train-epochs") == "10"),
    (10, "Experiments", lambda p: _input_value(p, "experiment-preset") == "ReLU vs tanh"),
]  # fmt: skip


@pytest.mark.parametrize(("lesson", "tab", "is_set"), SHOW_ME, ids=[f"lesson{n}" for n, *_ in SHOW_ME])
def test_show_me_opens_the_lessons_tab_set_up(page, lesson, tab, is_set):
    _lesson(page, lesson)
    page.locator("#lesson-show-me").click()
    page.get_by_role("tab", name=tab, selected=True).wait_for(timeout=TIMEOUT)
    for _ in range(60):
        if is_set(page):
            break
        page.wait_for_timeout(500)
    assert is_set(page), f"lesson {lesson}'s Show me did not set the {tab} tab"


def test_lessons_1_to_4_on_a_phone(browser, app_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(app_url)
    try:
        for number in range(1, 5):
            _lesson(phone, number)
            for slot, exercise in enumerate(COURSE.exercises[number]):
                reply = str(exercise.answer())
                assert "Right" in _answer(phone, slot, reply), (number, exercise.key)
        phone.locator("#lesson-progress").get_by_text("4 of 10 lessons done").wait_for(timeout=TIMEOUT)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page is {width} px wide on a 390 px phone"
        phone.screenshot(path=str(Path(__file__).parent / "artifacts" / "lessons_phone.png"), full_page=False)
    finally:
        context.close()


def test_every_lesson_shows_and_accepts_its_worked_answers(page):
    """All ten lessons in the browser: each exercise's "Show the answer", typed (or chosen) back, is Right."""
    for number, exercises in COURSE.exercises.items():
        _lesson(page, number)
        for slot, exercise in enumerate(exercises):
            page.locator(f"#lesson-question-{slot}").get_by_text(exercise.question[:40]).wait_for(timeout=TIMEOUT)
            shown = _verdict_after_reveal(page, slot)
            answer = re.search(r"The answer: (.*?)\.(\s|$)", shown).group(1)
            if exercise.kind == "prediction":
                page.locator(f"#lesson-choice-{slot}").get_by_label(answer).check()
                verdict = _verdict_after(page, slot, page.locator(f"#lesson-check-{slot}").click)
            else:
                verdict = _answer(page, slot, answer.replace(" / ", "\n"))
            assert "Right" in verdict, (number, exercise.key, answer, verdict)
    page.locator("#lesson-progress").get_by_text("10 of 10 lessons done").wait_for(timeout=TIMEOUT)


def _verdict_after_reveal(page, slot: int) -> str:
    verdict = page.locator(f"#lesson-verdict-{slot}")
    page.locator(f"#lesson-reveal-{slot}").click()
    verdict.get_by_text("The answer:").wait_for(timeout=TIMEOUT)
    return verdict.inner_text()
