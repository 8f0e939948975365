"""The Lessons tab: /lessons and /check_answer over real HTTP, and its handlers (progress, notes, Show me)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from playground import lessons as L
from ui import course
from ui.tabs import lessons as T


@pytest.mark.http
def test_the_lessons_endpoint_lists_the_course(client):
    listed = client.predict(api_name="/lessons")
    assert [lesson["number"] for lesson in listed] == list(range(1, 11))
    assert listed[0]["title"] == "What a kernel does"
    kinds = {e["kind"] for lesson in listed for e in lesson["exercises"]}
    assert kinds == set(L.KINDS)
    tanh = next(e for e in listed[9]["exercises"] if e["key"] == "tanh")
    assert tanh["choices"] == ["faster", "slower"] and "tanh" in tanh["question"]


@pytest.mark.http
def test_check_answer_says_right_or_not_yet(client):
    assert client.predict(3, "conv1-size", "55", api_name="/check_answer") == "Right: 55."
    wrong = client.predict(4, "paper-conv2", "614656", api_name="/check_answer")
    assert wrong.startswith("Not yet") and "5 × 5 × 48" in wrong
    assert client.predict(2, "top-edge", "-1 -2 -1\n0 0 0\n1 2 1", api_name="/check_answer").startswith("Right")
    assert client.predict(6, "filter-weights", "363", api_name="/check_answer").startswith("Right")  # alexnet's
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="There is no lesson 11"):
        client.predict(11, "x", "1", api_name="/check_answer")
    with pytest.raises(AppError, match="no exercise 'nope' in lesson 1"):
        client.predict(1, "nope", "1", api_name="/check_answer")


def test_a_right_answer_is_kept_and_completing_a_lesson_marks_it_done():
    verdict, progress, line = T.check_slot(0, 3, "alexnet", "55", None, None)
    assert verdict.startswith("✓ Right") and progress["answers"]["3/conv1-size"] == {"reply": "55", "right": True}
    assert 3 not in progress["done"]  # one of two exercises
    verdict, progress, line = T.check_slot(1, 3, "alexnet", "26", None, progress)
    assert verdict.startswith("✗ Not yet") and 3 not in progress["done"]
    _, progress, line = T.check_slot(1, 3, "alexnet", "27", None, progress)
    assert progress["done"] == [3] and "1 of 10 lessons done (3)" in line and "2 of 20 answers right" in line
    opened = T.open_lesson(3, "alexnet", progress)
    assert "✓ done" in opened[0] and opened[4]["value"] == "55"  # the first slot's reply comes back


def test_a_hand_edited_progress_is_cleaned_not_trusted():
    clean = T.clean_progress(
        {"done": [1, 99, "x", 2, 2], "answers": {"1/a": {"reply": "x" * 5000, "right": 1}, "b": 3}}
    )
    assert clean["done"] == [1, 2] and clean["answers"] == {"1/a": {"reply": "x" * 400, "right": True}}
    assert T.clean_progress("nonsense") == T.empty_progress()


def test_predictions_are_checked_from_the_choice():
    verdict, *_ = T.check_slot(0, 10, "alexnet", "", "slower", None)
    assert verdict.startswith("✓ Right") and "six times faster than tanh" in verdict
    with pytest.raises(gr.Error, match="Type an answer"):
        T.check_slot(0, 10, "alexnet", "slower", None, None)  # a typed reply is not a choice


def test_my_notes_hold_the_answers_and_pictures():
    progress = {"done": [1], "answers": {"1/sobel-patch": {"reply": "760", "right": True},
                                         "4/fc6": {"reply": "<b>3</b>", "right": False}}}  # fmt: skip
    notes = T.notes_html(progress, "alexnet")
    assert "Lesson 1: What a kernel does (done)" in notes and "<b>760</b> (<span class='right'>right" in notes
    assert "Lesson 4: Parameters by hand</h2>" in notes and "&lt;b&gt;3&lt;/b&gt;" in notes  # escaped
    assert notes.count("<img alt=") == 2 and "Lesson 2" not in notes  # only lessons touched
    path = T.my_notes(progress, "alexnet")
    assert path.endswith(".html") and Path(path).read_text(encoding="utf-8") == notes


def test_every_lessons_picture_is_drawn_from_the_model():
    for lesson in course.LESSONS:
        picture = T.lesson_picture(lesson.number, "alexnet_compact")
        assert isinstance(picture, Image.Image) and picture.width >= 200, lesson.number


class _Layout:
    """A tab's layout as the Show me wiring sees it: any field is a component."""

    def __getattr__(self, name):
        return f"component:{name}"


def test_show_me_selects_the_tab_and_sets_only_that_lessons_controls():
    views = {view: _Layout() for view in {lesson.show_me.tab for lesson in course.LESSONS}}
    targets = T.show_me_targets(views)
    for lesson in course.LESSONS:
        tab, model, *values = T.show_me_values(lesson.number, targets)
        assert tab.selected == lesson.show_me.tab
        assert model == lesson.show_me.values.get("model", gr.skip())
        set_here = {(t, f): v for (t, f, _), v in zip(targets, values) if not isinstance(v, dict)}
        wanted = {(lesson.show_me.tab, f): v for f, v in lesson.show_me.values.items() if f != "model"}
        assert set(set_here) == set(wanted), lesson.number
        if ("lab", "photo") in wanted:
            assert set_here[("lab", "photo")].endswith(".png") or "cup" in set_here[("lab", "photo")]


def test_a_link_opens_its_lesson_and_a_bad_one_the_first():
    request = type("R", (), {"query_params": {"lesson": "7"}})()
    assert T.lesson_from_link(None, request) == 7
    assert T.lesson_from_link(None, type("R", (), {"query_params": {"lesson": "99'; DROP"}})()) == 1
    assert T.lesson_from_link({"done": [1, 2]}, type("R", (), {"query_params": {}})()) == 3


def test_the_checklist_checks_this_server():
    text = T.checklist()
    assert "No ImageNet weights" in text or "ImageNet weights are present" in text
    assert "The example photos load" in text and "No GPU" in text
