"""The Class board tab's handlers, in process: what the page shows is the board's numbers (re-derived here), a
live page redraws only when the board changed, names are shown as written and never as Markdown, a closed class
says so, and a kernel's picture is the convolution scipy computes."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.signal

from playground import kernels as K
from tests.test_board import KERNEL, _result


@pytest.fixture
def tab(tmp_path, monkeypatch):
    """The tab's module on a board of its own (a SQLite file in a temporary folder)."""
    from ui import class_board
    from ui.tabs import class_board as tab

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PLAYGROUND_DATABASE_URL", raising=False)
    class_board.board.cache_clear()
    tab._drawn.cache_clear()
    yield tab
    class_board.board().engine.dispose()
    class_board.board.cache_clear()


def _request(session: str):
    """A page's request: its session, and a network address of its own."""
    return SimpleNamespace(
        session_hash=session, headers={}, client=SimpleNamespace(host=f"10.0.0.{len(session)}-{session}")
    )


def test_the_tab_shows_the_pooled_table_of_the_whole_class(tab):
    from ui import class_board

    started = tab.create("Period 3", "http://school.example/app/?tab=lab#x")
    code, key = started["code"], started["key"]
    assert f"?tab=board&class={code}" in started["made"] and f"#key={key}" in started["made"]
    assert started["made"].count(key) == 2  # shown once as the key, once inside the teacher's link
    mine = {"ada": {"ReLU": [0.8, 0.7], "tanh": [0.6, 0.65]}, "bo": {"ReLU": [0.75, 0.5], "tanh": [0.5, 0.4]}}
    for learner, seeds in mine.items():
        joined = tab.join(code, learner, _request(learner))
        assert joined["membership"] == {"code": code, "learner": learner} and "joined the class" in joined["said"]
        class_board.board().publish(code, learner, "experiment", _result(seeds))
    shown = tab.look(code.lower(), _request("t"))
    assert "2 learners · 2 entries" in shown["summary"]
    for label in ("ReLU", "tanh"):
        accuracies = [a for seeds in mine.values() for a in seeds[label]]
        expected = f"{statistics.mean(accuracies):.1%} ± {statistics.stdev(accuracies):.1%}"
        row = next(line for line in shown["pooled"].splitlines() if line.startswith(f"| {label} |"))
        assert expected in row.replace("\\", ""), row
    assert "2 learners, 8 runs pooled" in shown["pooled"]
    assert shown["curves"]["visible"] and len(shown["curves"]["value"]) == 1
    assert not shown["kernels"]["visible"] and not shown["trainings"]["visible"]  # nothing of those yet: hidden
    assert list(shown["entries"]["value"]["learner"]) == ["bo", "ada"]  # newest first


def test_a_live_page_redraws_only_when_the_board_changed(tab):
    from ui import class_board

    started = tab.create("c", "")
    code = started["code"]
    seen = started["seen"]
    assert tab.refresh(code, seen) == {}  # nothing new: nothing is sent
    tab.join(code, "ada", _request("a"))
    class_board.board().publish(code, "ada", "kernel", KERNEL)
    again = tab.refresh(code, seen)
    assert again["seen"] != seen and again["kernels"]["visible"] and len(again["kernels"]["value"]) == 1
    assert tab.refresh(code, again["seen"]) == {}
    closed = tab.close(code, started["key"])
    assert "is closed" in closed["teacher_said"] and closed["timer"].active is False
    ended = tab.refresh(code, again["seen"])
    assert "closed by its teacher" in ended["summary"] and ended["timer"].active is False
    assert tab.refresh("", "")["timer"].active is False  # no code: the page stops ticking


def test_names_are_shown_as_written_never_as_markdown(tab):
    from ui import class_board

    started = tab.create("[click me](http://evil.example) <script>x</script> # big", "")
    code = started["code"]
    tab.join(code, "**bold** _bo_", _request("b"))
    class_board.board().publish(code, "**bold** _bo_", "kernel", KERNEL)
    shown = tab.look(code, _request("t"))
    assert "\\[click me\\]\\(http://evil\\.example\\)" in shown["summary"]
    assert "<script>" not in shown["summary"] and "\\<script\\>" in shown["summary"]
    assert shown["kernels"]["value"][0][1].startswith("**bold** _bo_: laplacian")  # a caption is plain text already
    assert shown["entries"]["value"]["learner"][0] == "**bold** _bo_"


def test_publishing_from_a_tab_needs_a_class_and_a_result(tab):
    from ui.state import KERNELS

    publish = tab.publisher("kernel")
    assert "Join your class first" in publish(None, _request("s"))
    started = tab.create("c", "")
    member = tab.join(started["code"], "ada", _request("s"))["membership"]
    with pytest.raises(ValueError, match="Apply a kernel in the Convolution lab first"):
        publish(member, _request("s"))
    KERNELS.remember("s", "laplacian", KERNEL["kernel"])
    try:
        assert "Published your kernel" in publish(member, _request("s"))
    finally:
        KERNELS.forget("s")
    with pytest.raises(ValueError, match="Type the number of the entry"):
        tab.hide(started["code"], started["key"], None)
    assert "is hidden" in tab.hide(started["code"], started["key"], 1.0)
    assert "0 entries" in tab.look(started["code"], _request("t"))["summary"]


def test_the_teachers_download_is_the_boards_export(tab):
    import csv
    import io
    from pathlib import Path

    from ui import class_board

    started = tab.create("c", "")
    tab.join(started["code"], "ada", _request("a"))
    class_board.board().publish(started["code"], "ada", "kernel", KERNEL)
    path, said = tab.download("csv", started["code"], started["key"])
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert [(r["learner"], r["kind"], r["what"]) for r in rows] == [("ada", "kernel", "laplacian")] and "CSV" in said
    with pytest.raises(ValueError, match="does not open this class"):
        tab.download("json", started["code"], "not the key")


def test_a_kernels_picture_is_the_convolution_scipy_computes():
    """The gallery draws each kernel on a small gray cup: the same numbers as scipy's correlation ("valid")."""
    from playground.images import shrink_to_working_size
    from playground.lab import input_values, kernel_on, render_output
    from ui.course import cup

    weights = np.array(KERNEL["kernel"], dtype=np.float32)
    gray = input_values(shrink_to_working_size(cup(), 90_000), "gray")
    expected = scipy.signal.correlate2d(gray.astype(np.float64), weights, mode="valid")
    drawn = np.asarray(kernel_on(cup(), weights, "laplacian"))
    assert drawn.shape[:2] == expected.shape
    assert np.array_equal(drawn, np.asarray(render_output(expected.astype(np.float32))[0]))
    sobel = K.KERNELS["sobel_x"]
    light = kernel_on(cup(), sobel.weights, "sobel_x")
    assert np.array_equal(np.asarray(light), np.asarray(render_output(
        K.convolve(gray, sobel.weights), light_and_shadow=sobel.light_and_shadow)[0]))  # fmt: skip
    with pytest.raises(ValueError, match="larger than the photo"):
        kernel_on(cup().resize((4, 4)), np.ones((5, 5)))


def test_a_database_outage_keeps_the_live_board_asking(tab, monkeypatch):
    from playground.sharing.board import UNREACHABLE, Board

    started = tab.create("c", "")

    def down(self, code):
        raise ValueError(UNREACHABLE)

    with monkeypatch.context() as patched:
        patched.setattr(Board, "version", down)
        said = tab.refresh(started["code"], started["seen"])
    assert "cannot be reached" in said["summary"] and "timer" not in said and said["seen"] == ""
    back = tab.refresh(started["code"], said["seen"])
    assert "Class code" in back["summary"]  # redrawn once the database answers again


def test_guessing_class_codes_and_joining_are_bounded_per_address(tab, monkeypatch):
    from ui import class_board

    monkeypatch.setattr(class_board, "MISSES", class_board.PerMinute(3, "Too many class codes"))
    monkeypatch.setattr(class_board, "JOINS", class_board.PerMinute(4, "Too many joins"))
    started = tab.create("c", "")
    for guess in ("AAAAAA", "BBBBBB", "CCCCCC"):
        with pytest.raises(ValueError, match="no class with the code"):
            tab.look(guess, _request("guesser"))
    with pytest.raises(ValueError, match="Too many class codes"):
        tab.look(started["code"], _request("guesser"))  # even a right code, once the guesses are spent
    assert "Class code" in tab.look(started["code"], _request("t"))["summary"]  # another address is not held up
    for n in range(4):
        tab.join(started["code"], f"learner {n}", _request("school"))
    with pytest.raises(ValueError, match="Too many joins"):
        tab.join(started["code"], "learner 5", _request("school"))


def test_a_run_label_in_a_pooled_note_is_never_a_link():
    from ui.tabs.class_board import _note

    shown = _note("**[click](http://evil.example)** needed 1.5× the epochs of <b>ReLU</b>")
    assert shown == "**\\[click\\](http://evil.example)** needed 1.5× the epochs of \\<b\\>ReLU\\</b\\>"


def test_a_training_entry_says_its_accuracy_and_over_how_many_images(tab):
    from tests.test_project import _training
    from ui import class_board

    started = tab.create("c", "")
    tab.join(started["code"], "ada", _request("a"))
    training = {**_training(), "val_accuracy": 0.6}
    class_board.board().publish(started["code"], "ada", "training", training)
    shown = tab.look(started["code"], _request("t"))
    images = sum(map(sum, training["confusion"]))
    assert shown["entries"]["value"]["result"][0] == f"60.0% of {images} validation images"
    spread = shown["trainings"]["value"]
    assert spread["mean accuracy"][0] == "60.0%" and spread["trainings"][0] == 1
